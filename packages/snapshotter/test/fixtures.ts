/** Hand-built tar fixtures (node-tar Header) and small tree helpers for the tests. */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync, gunzipSync } from 'node:zlib';
import { Header } from 'tar';
import { readTar, type TarEntry } from '../src/tar-reader.js';

export interface FixtureEntry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'FIFO' | 'CharacterDevice';
  body?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  linkpath?: string;
  mtime?: number;
  xattrs?: Record<string, string>;
}

function pax(records: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(records)) {
    const rest = Buffer.byteLength(` ${k}=${v}\n`);
    let len = rest + String(rest).length;
    if (String(len).length !== String(rest).length) len = rest + String(len).length;
    parts.push(Buffer.from(`${len} ${k}=${v}\n`));
  }
  const body = Buffer.concat(parts);
  const h = Buffer.alloc(512);
  new Header({ path: 'PaxHeader', type: 'ExtendedHeader', size: body.length, mode: 0o644, mtime: new Date(0) }).encode(h);
  return Buffer.concat([h, body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

export function makeTar(entries: FixtureEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? 'File';
    const body = Buffer.from(e.body ?? '');
    if (e.xattrs) {
      blocks.push(pax(Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [`SCHILY.xattr.${k}`, v]))));
    }
    const h = Buffer.alloc(512);
    new Header({
      path: e.path,
      type,
      size: type === 'File' ? body.length : 0,
      mode: e.mode ?? (type === 'Directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: new Date((e.mtime ?? 1_600_000_000) * 1000),
      linkpath: e.linkpath ?? '',
    }).encode(h);
    blocks.push(h);
    if (type === 'File') blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export function stream(buf: Buffer, gzip = false): Readable {
  const data = gzip ? gzipSync(buf) : buf;
  // Small chunks: exercise reassembly across header/body boundaries.
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += 700) chunks.push(data.subarray(i, i + 700));
  return Readable.from(chunks);
}

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Entries of a .tar.gz layer file. */
export async function listLayer(file: string): Promise<TarEntry[]> {
  const tar = gunzipSync(readFileSync(file));
  const out: TarEntry[] = [];
  async function* one(): AsyncGenerator<Buffer> {
    yield tar;
  }
  for await (const item of readTar(one())) out.push(item.entry);
  return out;
}

/** A comparable description of a tree: path → "type mode uid:gid content/target". */
export function describeTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = join(root, r);
      const st = lstatSync(p);
      const meta = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isDirectory()) {
        out[r] = `dir ${meta}`;
        walk(r);
      } else if (st.isSymbolicLink()) out[r] = `link ${st.uid}:${st.gid} -> ${readlinkSync(p)}`;
      else if (st.isFile()) out[r] = `file ${meta} ${readFileSync(p, 'utf8')}`;
      else out[r] = `other ${meta}`;
    }
  };
  walk('');
  return out;
}
