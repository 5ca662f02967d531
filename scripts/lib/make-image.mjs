#!/usr/bin/env node
// Writes a deterministic OCI image layout from one or more rootfs directories.
//
//   node scripts/lib/make-image.mjs SPEC.json
//
// SPEC.json:
//   {
//     "out": "/abs/path/to/layout",        // replaced if it exists
//     "ref": "latest",                     // org.opencontainers.image.ref.name in index.json
//     "index": true,                       // wrap the manifests in an image index blob
//                                          // (forced when there is more than one image)
//     "mtime": 1704067200,                 // optional, seconds; every entry gets it
//     "created": "2024-01-01T00:00:00Z",   // optional, config "created"
//     "images": [{
//       "platform": { "os": "linux", "architecture": "amd64" },
//       "layers": [{ "dir": "/abs/rootfs", "comment": "...",
//                    "owners": { "home/app": [1000, 1000] } }],   // default owner 0:0
//       "config": { "Cmd": ["sh"], "Env": ["PATH=..."], "WorkingDir": "/" }
//     }]
//   }
//
// Layers are tar+gzip, entries in depth-first order with sorted children (byte
// order), numeric owners only (no uname/gname), fixed mtime, modes taken from the
// files on disk, hard links preserved, PAX headers for long names. Only node:
// built-ins are used so that it runs before `pnpm install`. Prints a JSON summary.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';

const MT = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
};

// ---------------------------------------------------------------- tar writer

function octal(value, width) {
  // width includes the terminating NUL
  const s = value.toString(8);
  if (s.length > width - 1) throw new Error(`value ${value} does not fit in a ${width}-byte tar field`);
  return s.padStart(width - 1, '0') + '\0';
}

function header({ name, mode, uid, gid, size, mtime, type, linkname = '' }) {
  const b = Buffer.alloc(512, 0);
  const put = (str, off, len) => {
    const buf = Buffer.from(str, 'utf8');
    if (buf.length > len) throw new Error(`tar field too long: ${str}`);
    buf.copy(b, off);
  };
  put(name, 0, 100);
  put(octal(mode & 0o7777, 8), 100, 8);
  put(octal(uid, 8), 108, 8);
  put(octal(gid, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(mtime, 12), 136, 12);
  b.fill(0x20, 148, 156); // checksum placeholder: spaces
  put(type, 156, 1);
  put(linkname, 157, 100);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  // uname/gname left empty: numeric owners only
  put(octal(0, 8), 329, 8);
  put(octal(0, 8), 337, 8);
  let sum = 0;
  for (const byte of b) sum += byte;
  put(octal(sum, 7) + ' ', 148, 8);
  return b;
}

function paxRecords(fields) {
  let body = '';
  for (const [k, v] of fields) {
    const rest = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(rest) + 1;
    while (String(len).length + Buffer.byteLength(rest) !== len) len = String(len).length + Buffer.byteLength(rest);
    body += `${len}${rest}`;
  }
  return Buffer.from(body, 'utf8');
}

const pad = (n) => Buffer.alloc((512 - (n % 512)) % 512, 0);
const fits = (s) => Buffer.byteLength(s) <= 100 && /^[\x20-\x7e]*$/.test(s);

function* entryHeaders(e, mtime) {
  const pax = [];
  if (!fits(e.name)) pax.push(['path', e.name]);
  if (e.linkname && !fits(e.linkname)) pax.push(['linkpath', e.linkname]);
  if (pax.length) {
    const body = paxRecords(pax);
    const base = path.posix.basename(e.name.replace(/\/$/, '')).replace(/[^\x20-\x7e]/g, '_').slice(0, 80);
    yield header({ name: `PaxHeader/${base}`, mode: 0o644, uid: 0, gid: 0, size: body.length, mtime, type: 'x' });
    yield body;
    yield pad(body.length);
  }
  const short = (s) => (fits(s) ? s : Buffer.from(s).subarray(0, 100).toString('latin1').replace(/[^\x20-\x7e]/g, '_'));
  yield header({ ...e, name: short(e.name), linkname: short(e.linkname ?? ''), mtime });
}

async function* walk(root, rel, out) {
  const names = (await fs.readdir(path.join(root, rel))).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const n of names) {
    const r = rel ? `${rel}/${n}` : n;
    const st = await fs.lstat(path.join(root, r));
    yield { rel: r, st };
    if (st.isDirectory()) yield* walk(root, r, out);
  }
}

async function* tarStream(dir, { owners = {}, mtime }) {
  const links = new Map(); // dev:ino -> first name (hard links)
  for await (const { rel, st } of walk(dir, '')) {
    const [uid, gid] = owners[rel] ?? [0, 0];
    const mode = st.mode & 0o7777;
    const base = { mode, uid, gid, size: 0 };
    if (st.isDirectory()) {
      yield* entryHeaders({ ...base, name: `${rel}/`, type: '5' }, mtime);
    } else if (st.isSymbolicLink()) {
      yield* entryHeaders({ ...base, name: rel, type: '2', linkname: await fs.readlink(path.join(dir, rel)) }, mtime);
    } else if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      if (st.nlink > 1 && links.has(key)) {
        yield* entryHeaders({ ...base, name: rel, type: '1', linkname: links.get(key) }, mtime);
        continue;
      }
      if (st.nlink > 1) links.set(key, rel);
      yield* entryHeaders({ ...base, name: rel, type: '0', size: st.size }, mtime);
      let n = 0;
      for await (const chunk of createReadStream(path.join(dir, rel))) {
        n += chunk.length;
        yield chunk;
      }
      if (n !== st.size) throw new Error(`${rel} changed size while being archived`);
      yield pad(n);
    } else {
      process.stderr.write(`make-image: skipping special file ${rel}\n`);
    }
  }
  yield Buffer.alloc(1024, 0);
}

function hasher() {
  const h = createHash('sha256');
  let size = 0;
  const t = new Transform({
    transform(chunk, _enc, cb) {
      h.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  return { t, done: () => ({ digest: `sha256:${h.digest('hex')}`, size }) };
}

// ------------------------------------------------------------------- layout

async function writeBlob(blobs, data) {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  const hex = createHash('sha256').update(buf).digest('hex');
  await fs.writeFile(path.join(blobs, hex), buf, { mode: 0o644 });
  return { digest: `sha256:${hex}`, size: buf.length };
}

async function writeLayer(blobs, layer, mtime) {
  const tmp = path.join(blobs, `.tmp-${process.pid}-${Math.random().toString(16).slice(2)}`);
  const diff = hasher();
  const comp = hasher();
  await pipeline(
    Readable.from(tarStream(layer.dir, { owners: layer.owners, mtime })),
    diff.t,
    zlib.createGzip({ level: 6 }),
    comp.t,
    createWriteStream(tmp, { mode: 0o644 }),
  );
  const d = comp.done();
  await fs.rename(tmp, path.join(blobs, d.digest.slice('sha256:'.length)));
  return { diffId: diff.done().digest, digest: d.digest, size: d.size };
}

async function main() {
  const specPath = process.argv[2];
  if (!specPath) {
    process.stderr.write('usage: make-image.mjs SPEC.json\n');
    process.exit(2);
  }
  const spec = JSON.parse(await fs.readFile(specPath, 'utf8'));
  const mtime = spec.mtime ?? 1704067200;
  const created = spec.created ?? new Date(mtime * 1000).toISOString().replace('.000Z', 'Z');
  const out = path.resolve(spec.out);
  await fs.rm(out, { recursive: true, force: true });
  const blobs = path.join(out, 'blobs', 'sha256');
  await fs.mkdir(blobs, { recursive: true, mode: 0o755 });
  await fs.writeFile(path.join(out, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));

  const summary = { out, manifests: [] };
  const descs = [];
  for (const img of spec.images) {
    const layers = [];
    for (const l of img.layers) layers.push({ ...(await writeLayer(blobs, l, mtime)), comment: l.comment });
    const platform = img.platform ?? { os: 'linux', architecture: 'amd64' };
    const config = {
      created,
      architecture: platform.architecture,
      ...(platform.variant ? { variant: platform.variant } : {}),
      os: platform.os,
      config: img.config ?? {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((l, i) => ({ created, created_by: l.comment ?? `stowage test fixture layer ${i + 1}` })),
    };
    const cfg = await writeBlob(blobs, JSON.stringify(config));
    const manifest = {
      schemaVersion: 2,
      mediaType: MT.manifest,
      config: { mediaType: MT.config, ...cfg },
      layers: layers.map((l) => ({ mediaType: MT.layer, digest: l.digest, size: l.size })),
    };
    const m = await writeBlob(blobs, JSON.stringify(manifest));
    descs.push({ mediaType: MT.manifest, ...m, platform });
    summary.manifests.push({ ...m, platform, config: cfg.digest, layers });
  }

  let top;
  if (spec.index || descs.length > 1) {
    const idx = await writeBlob(blobs, JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: descs }));
    top = { mediaType: MT.index, ...idx };
  } else {
    const { platform: _p, ...d } = descs[0];
    top = d;
  }
  if (spec.ref) top.annotations = { 'org.opencontainers.image.ref.name': spec.ref };
  await fs.writeFile(path.join(out, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [top] }));
  summary.top = { mediaType: top.mediaType, digest: top.digest, size: top.size };
  process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
}

main().catch((err) => {
  process.stderr.write(`make-image: ${err.stack ?? err}\n`);
  process.exit(1);
});
