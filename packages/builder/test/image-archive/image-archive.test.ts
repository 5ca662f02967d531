import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { create as createTar } from 'tar';
import { ImageArchive } from '../../src/image-archive/image-archive.js';
import { indexTar, resolveTarFile } from '../../src/image-archive/tar-index.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-archive-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function errorOf(p: Promise<unknown> | (() => unknown)): Promise<{ code?: string; message: string }> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('expected an error');
}

/** Reads a stream to the end; resolves with the bytes, or rejects with its error and how many bytes came first. */
async function drain(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of s as AsyncIterable<Buffer>) chunks.push(c);
  } catch (err) {
    throw Object.assign(err as Error, { received: Buffer.concat(chunks).length });
  }
  return Buffer.concat(chunks);
}

interface Layout {
  dir: string;
  blobs: Map<string, Buffer>;
  manifests: { digest: string; size: number; names: string[] }[];
}

/** An OCI layout dir with one image per entry of `images` (each: a config, one layer, a manifest). */
async function ociLayout(images: { names: string[]; layer: Buffer; corrupt?: boolean }[]): Promise<Layout> {
  const root = join(dir, 'layout');
  await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
  const blobs = new Map<string, Buffer>();
  const put = async (b: Buffer, stored = b) => {
    const d = sha(b);
    blobs.set(d, b);
    await writeFile(join(root, 'blobs', 'sha256', d.slice(7)), stored);
    return { digest: d, size: b.length };
  };
  const entries: object[] = [];
  const manifests: Layout['manifests'] = [];
  for (const [i, img] of images.entries()) {
    const config = await put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(`diff${i}`)] } })));
    const stored = img.corrupt ? Buffer.from(img.layer.map((x, j) => (j === img.layer.length - 3 ? x ^ 0xff : x))) : img.layer;
    const layer = await put(img.layer, stored);
    const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }] }));
    const manifest = await put(m);
    manifests.push({ ...manifest, names: img.names });
    if (img.names.length === 0) entries.push({ mediaType: OCI_MANIFEST, ...manifest });
    for (const n of img.names) {
      entries.push({ mediaType: OCI_MANIFEST, ...manifest, annotations: { 'io.containerd.image.name': `docker.io/library/${n}`, 'org.opencontainers.image.ref.name': n.split(':')[1]! } });
    }
  }
  await writeFile(join(root, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(root, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: entries }));
  return { dir: root, blobs, manifests };
}

async function tarOf(src: string, name: string): Promise<string> {
  const file = join(dir, name);
  await createTar({ file, cwd: src, portable: true }, ['.']);
  return file;
}

describe('indexTar', () => {
  test('offsets and sizes of members, PAX and GNU long names, links resolved', async () => {
    const src = join(dir, 'src');
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}`;
    await mkdir(join(src, 'd'.repeat(120)), { recursive: true });
    await writeFile(join(src, long), 'long name');
    await writeFile(join(src, 'small'), 'x'.repeat(1000));
    await symlink('small', join(src, 'link'));
    for (const [format, name] of [['pax', 'pax.tar'], ['gnu', 'gnu.tar']] as const) {
      const file = join(dir, name);
      expect(spawnSync('tar', [`--format=${format}`, '-C', src, '-cf', file, '.']).status).toBe(0);
      const index = await indexTar(file);
      const f = index.get(long)!;
      expect(f).toMatchObject({ type: 'file', size: 9 });
      const { readFileSync } = await import('node:fs');
      expect(readFileSync(file).subarray(f.offset, f.offset + f.size).toString()).toBe('long name');
      expect(index.get('link')).toMatchObject({ type: 'symlink', linkpath: 'small' });
      expect(resolveTarFile(index, './link')).toMatchObject({ path: 'small', size: 1000 });
      expect(resolveTarFile(index, 'd'.repeat(120))).toBeUndefined(); // a directory
      expect(resolveTarFile(index, 'missing')).toBeUndefined();
    }
  });

  test('a gzip file or a non-tar is refused with an option error', async () => {
    await writeFile(join(dir, 'x.tar.gz'), gzipSync(Buffer.alloc(2048)));
    expect(await errorOf(indexTar(join(dir, 'x.tar.gz')))).toMatchObject({ code: 'E_INVALID_OPTION', message: expect.stringContaining('gzip-compressed') });
    await writeFile(join(dir, 'junk'), Buffer.alloc(1024, 'a'));
    expect(await errorOf(indexTar(join(dir, 'junk')))).toMatchObject({ code: 'E_INVALID_OPTION', message: expect.stringContaining('not a tar archive') });
  });
});

describe('ImageArchive (OCI layout)', () => {
  test('images grouped by digest with their names; --name by tag annotation, full or short name; else the only one', async () => {
    const layout = await ociLayout([{ names: ['hello:1', 'hello:latest'], layer: Buffer.from('layer one') }, { names: ['other:2'], layer: Buffer.from('layer two') }]);
    const a = await ImageArchive.open(await tarOf(layout.dir, 'two.tar'));
    expect(a.format).toBe('oci');
    expect(a.images.map((i) => i.names)).toEqual([['docker.io/library/hello:1', '1', 'docker.io/library/hello:latest', 'latest'], ['docker.io/library/other:2', '2']]);
    const e = await errorOf(() => a.select());
    expect(e).toMatchObject({ code: 'E_INVALID_OPTION' });
    expect(e.message).toMatch(/holds 2 images \(docker\.io\/library\/hello:1, .*; docker\.io\/library\/other:2, 2\); choose one with --name$/);
    expect(a.select('hello:1').descriptor.digest).toBe(layout.manifests[0]!.digest);
    expect(a.select('docker.io/library/other:2').descriptor.digest).toBe(layout.manifests[1]!.digest);
    expect(a.select('2').descriptor.digest).toBe(layout.manifests[1]!.digest);
    expect(a.select('latest').descriptor).toEqual({ mediaType: OCI_MANIFEST, digest: layout.manifests[0]!.digest, size: layout.manifests[0]!.size });
    expect((await errorOf(() => a.select('nope:1'))).message).toMatch(/no image named nope:1/);
    const one = await ImageArchive.open(await tarOf((await ociLayout([{ names: [], layer: Buffer.from('x') }])).dir, 'one.tar'));
    expect(one.select().names).toEqual([]);
  });

  test('blobs are read in place and checked: whole, in sequential ranges, and small ones with readBlob', async () => {
    const layer = Buffer.alloc(300_000, 7);
    const layout = await ociLayout([{ names: ['a:1'], layer }]);
    const a = await ImageArchive.open(await tarOf(layout.dir, 'a.tar'));
    for (const [d, bytes] of layout.blobs) {
      expect(await a.has(d)).toBe(true);
      expect(await a.size(d)).toBe(bytes.length);
      expect((await drain(a.openRead(d))).equals(bytes)).toBe(true); // (toEqual on big buffers is slow)
    }
    const d = sha(layer);
    const parts = [await drain(a.openRead(d, { start: 0, end: 99_999 })), await drain(a.openRead(d, { start: 100_000, end: 299_999 }))];
    expect(Buffer.concat(parts).equals(layer)).toBe(true);
    expect(JSON.parse((await a.readBlob(layout.manifests[0]!.digest)).toString()).layers[0].digest).toBe(d);
    expect(await a.has(sha('absent'))).toBe(false);
    expect(await errorOf(a.size(sha('absent')))).toMatchObject({ code: 'E_BLOB_UNKNOWN' });
  });

  test('a blob that does not match its digest fails before its last bytes are handed out', async () => {
    const layer = Buffer.alloc(200_000, 1);
    const layout = await ociLayout([{ names: ['a:1'], layer, corrupt: true }]);
    const a = await ImageArchive.open(await tarOf(layout.dir, 'bad.tar'));
    const d = sha(layer);
    const err = (await errorOf(drain(a.openRead(d)))) as { code?: string; message: string; received?: number };
    expect(err.code).toBe('E_DIGEST_MISMATCH');
    expect(err.message).toContain(`blob ${d} does not match its digest`);
    expect(err.received).toBeLessThan(layer.length);
    // In chunks: the chunk that ends the blob fails.
    await drain(a.openRead(d, { start: 0, end: 149_999 }));
    expect(await errorOf(drain(a.openRead(d, { start: 150_000, end: 199_999 })))).toMatchObject({ code: 'E_DIGEST_MISMATCH' });
    // A tampered manifest or config is caught whole.
    const cfg = JSON.parse((await a.readBlob(layout.manifests[0]!.digest)).toString()).config.digest;
    await writeFile(join(layout.dir, 'blobs', 'sha256', cfg.slice(7)), '{"tampered":true}');
    const b = await ImageArchive.open(await tarOf(layout.dir, 'bad2.tar'));
    expect(await errorOf(b.readBlob(cfg))).toMatchObject({ code: 'E_DIGEST_MISMATCH' });
  });
});

describe('ImageArchive (docker-archive)', () => {
  test('an OCI manifest is made over the config and the layer files (hashed, symlinked layers followed, gzip noticed)', async () => {
    const src = join(dir, 'docker');
    await mkdir(join(src, 'l1'), { recursive: true });
    await mkdir(join(src, 'l2'), { recursive: true });
    await mkdir(join(src, 'blobs', 'sha256'), { recursive: true });
    const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    const plain = Buffer.alloc(4096, 3);
    const gz = gzipSync(Buffer.from('zipped'));
    await writeFile(join(src, 'cfg.json'), config);
    await writeFile(join(src, 'l1', 'layer.tar'), plain);
    await symlink('../l1/layer.tar', join(src, 'l2', 'layer.tar'));
    await writeFile(join(src, 'blobs', 'sha256', sha(gz).slice(7)), gz);
    await writeFile(join(src, 'manifest.json'), JSON.stringify([{ Config: 'cfg.json', RepoTags: ['app:1'], Layers: ['l1/layer.tar', 'l2/layer.tar', `blobs/sha256/${sha(gz).slice(7)}`] }]));
    const a = await ImageArchive.open(await tarOf(src, 'docker.tar'));
    expect(a.format).toBe('docker');
    const img = a.select('docker.io/library/app:1');
    expect(img.names).toEqual(['app:1']);
    const m = JSON.parse((await a.readBlob(img.descriptor.digest)).toString());
    expect(m).toEqual({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(plain), size: plain.length },
        { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(plain), size: plain.length },
        { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(gz), size: gz.length },
      ],
    });
    expect(img.descriptor.digest).toBe(sha(await a.readBlob(img.descriptor.digest)));
    expect(await drain(a.openRead(sha(plain)))).toEqual(plain);
    expect(await a.readBlob(sha(config))).toEqual(config);
  });

  test('neither layout: an option error', async () => {
    const src = join(dir, 'none');
    await mkdir(src);
    await writeFile(join(src, 'file'), 'x');
    expect(await errorOf(ImageArchive.open(await tarOf(src, 'none.tar')))).toMatchObject({ code: 'E_INVALID_OPTION', message: expect.stringContaining('neither an OCI image layout') });
    expect(await errorOf(ImageArchive.open(join(dir, 'missing.tar')))).toMatchObject({ code: 'E_INVALID_OPTION', message: expect.stringContaining('no such file') });
  });
});
