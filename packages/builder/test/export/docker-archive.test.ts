import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { ContentStore, MediaTypes } from '@stowage/registry-client';
import { dockerArchiveIndex, prepareDockerArchive, repoTags } from '../../src/export/docker-archive.js';

const hex = (c: string) => c.repeat(64);
const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('repoTags', () => {
  test('familiar names with the tag made explicit, as docker save writes RepoTags', () => {
    expect(repoTags(['hello', 'demo:1', 'user/app:2', 'docker.io/library/x:3', 'reg:5000/a/b:v1', 'ghcr.io/o/r'])).toEqual([
      { name: 'hello', tag: 'latest' },
      { name: 'demo', tag: '1' },
      { name: 'user/app', tag: '2' },
      { name: 'x', tag: '3' },
      { name: 'reg:5000/a/b', tag: 'v1' },
      { name: 'ghcr.io/o/r', tag: 'latest' },
    ]);
  });

  test('digest-only references carry no tag; duplicates once', () => {
    expect(repoTags([`a@sha256:${hex('1')}`, 'a', 'docker.io/library/a:latest', `b:1@sha256:${hex('2')}`])).toEqual([
      { name: 'a', tag: 'latest' },
      { name: 'b', tag: '1' },
    ]);
  });
});

describe('dockerArchiveIndex', () => {
  const config = `sha256:${hex('c')}`;
  const layers = [`sha256:${hex('1')}`, `sha256:${hex('2')}`];

  test('manifest.json: Config, RepoTags and Layers point at blobs/sha256/', () => {
    const idx = dockerArchiveIndex(config, layers, ['demo:1', 'hello']);
    expect(idx.manifest).toEqual([
      { Config: `blobs/sha256/${hex('c')}`, RepoTags: ['demo:1', 'hello:latest'], Layers: [`blobs/sha256/${hex('1')}`, `blobs/sha256/${hex('2')}`] },
    ]);
    expect(idx.repositories).toEqual({ demo: { 1: hex('2') }, hello: { latest: hex('2') } });
  });

  test('no tags: RepoTags null (as docker save of an ID), no repositories', () => {
    const idx = dockerArchiveIndex(config, layers, []);
    expect(idx.manifest[0]!.RepoTags).toBeNull();
    expect(idx).not.toHaveProperty('repositories');
  });

  test('no layers (FROM scratch, metadata only)', () => {
    const idx = dockerArchiveIndex(config, [], ['a']);
    expect(idx.manifest[0]!.Layers).toEqual([]);
    expect(idx).not.toHaveProperty('repositories');
  });

  test('only sha256 digests', () => {
    expect(() => dockerArchiveIndex('sha512:abc', [], [])).toThrow(/only sha256/);
  });
});

/** A layer tar (uncompressed) with the given files. */
async function layerTar(dir: string, files: Record<string, string>): Promise<Buffer> {
  const src = await mkdtemp(join(dir, 'src-'));
  for (const [p, c] of Object.entries(files)) await writeFile(join(src, p), c);
  const out = join(dir, `layer-${Math.random()}.tar`);
  await tar.c({ cwd: src, file: out, portable: true, mtime: new Date(0) }, Object.keys(files));
  return readFile(out);
}

describe('prepareDockerArchive', () => {
  let dir: string;
  let store: ContentStore;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-docker-'));
    store = await ContentStore.open(join(dir, 'content'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('gzip layers are stored uncompressed under their diffID, uncompressed ones as they are', async () => {
    const raw1 = await layerTar(dir, { a: 'one' });
    const raw2 = await layerTar(dir, { b: 'two' });
    const gz1 = gzipSync(raw1);
    const b1 = await store.writeBlob(gz1);
    const b2 = await store.writeBlob(raw2);
    const cfg = await store.writeBlob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(raw1), sha(raw2)] } }));
    const layers = [
      { descriptor: { mediaType: MediaTypes.OCI_LAYER_GZIP, digest: b1.digest, size: b1.size }, diffID: sha(raw1) },
      { descriptor: { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: b2.digest, size: b2.size }, diffID: sha(raw2) },
    ];
    const dest = join(dir, 'd.tar');
    const out = await prepareDockerArchive(store, { config: { mediaType: MediaTypes.OCI_CONFIG, ...cfg }, layers }, ['demo:1'], dest, join(dir, 'staging'));
    await expect(readFile(dest)).rejects.toThrow(/ENOENT/); // nothing before commit
    await out.commit();
    const x = join(dir, 'x');
    await rm(x, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(x));
    const names: string[] = [];
    await tar.x({ file: dest, cwd: x, onReadEntry: (e) => names.push(e.path) });
    expect(names).toEqual(['blobs/', 'blobs/sha256/', ...[cfg.digest, sha(raw1), sha(raw2)].map((d) => `blobs/sha256/${d.slice(7)}`).sort(), 'manifest.json', 'repositories']);
    const manifest = JSON.parse(await readFile(join(x, 'manifest.json'), 'utf8'));
    expect(manifest).toEqual([{ Config: `blobs/sha256/${cfg.digest.slice(7)}`, RepoTags: ['demo:1'], Layers: [sha(raw1), sha(raw2)].map((d) => `blobs/sha256/${d.slice(7)}`) }]);
    for (const [i, raw] of [raw1, raw2].entries()) expect(sha(await readFile(join(x, manifest[0].Layers[i])))).toBe(sha(raw));
    expect(sha(await readFile(join(x, manifest[0].Config)))).toBe(cfg.digest);
    expect(JSON.parse(await readFile(join(x, 'repositories'), 'utf8'))).toEqual({ demo: { 1: sha(raw2).slice(7) } });
  });

  test('a layer that does not match its diffID fails and leaves nothing', async () => {
    const raw = await layerTar(dir, { c: 'three' });
    const b = await store.writeBlob(gzipSync(raw));
    const cfg = await store.writeBlob('{}');
    const dest = join(dir, 'bad.tar');
    await expect(
      prepareDockerArchive(store, { config: { mediaType: MediaTypes.OCI_CONFIG, ...cfg }, layers: [{ descriptor: { mediaType: MediaTypes.OCI_LAYER_GZIP, ...b }, diffID: `sha256:${hex('9')}` }] }, [], dest, join(dir, 'staging')),
    ).rejects.toThrow(/not its diffID/);
    const left = (await import('node:fs/promises').then((fs) => fs.readdir(dir))).filter((n) => n.includes('bad.tar'));
    expect(left).toEqual([]);
  });
});
