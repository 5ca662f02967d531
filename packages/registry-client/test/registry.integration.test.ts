/**
 * Pulls through RegistryClient from the real Debian docker-registry.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ContentStore,
  DigestMismatchError,
  ManifestNotFoundError,
  PlatformNotFoundError,
  RegistryClient,
  RegistryUnavailableError,
  parseReference,
  sha256Digest,
  type RegistryClientOptions,
} from '../src/index.js';
import { closeServer, listen, startProxy, type RunningServer } from './helpers/proxy.js';
import { pushImage, pushIndex, type PushedImage } from './helpers/push.js';
import { freePort, startRegistry, type RunningRegistry } from './helpers/registry.js';

// ESM jest has no \`jest\` global here; pass timeouts explicitly.
const T = 20_000;
const it = (name: string, fn: () => Promise<void>): void => test(name, fn, T);

let registry: RunningRegistry;
let single: PushedImage;
let amd64: PushedImage;
let arm64: PushedImage;
let indexDigest: string;
let root: string;
const servers: RunningServer[] = [];

beforeAll(async () => {
  registry = await startRegistry();
  single = await pushImage(registry.url, 'test/single', { tag: 'v1', architecture: 'amd64', fileContent: 'single layer image' });
  amd64 = await pushImage(registry.url, 'test/multi', { architecture: 'amd64', fileContent: 'amd64 payload' });
  arm64 = await pushImage(registry.url, 'test/multi', { architecture: 'arm64', variant: 'v8', fileContent: 'arm64 payload', docker: true });
  indexDigest = await pushIndex(registry.url, 'test/multi', 'latest', [
    { image: amd64, architecture: 'amd64' },
    { image: arm64, architecture: 'arm64', variant: 'v8' },
  ]);
}, T);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await registry?.stop();
});

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-pull-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function client(extra: Partial<RegistryClientOptions> = {}): Promise<{ c: RegistryClient; store: ContentStore; logs: string[] }> {
  const store = await ContentStore.open(join(root, 'content'));
  const logs: string[] = [];
  const c = new RegistryClient({
    store,
    platform: { os: 'linux', architecture: 'amd64' },
    credentials: async () => undefined,
    log: (l) => logs.push(l),
    retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 20 },
    ...extra,
  });
  return { c, store, logs };
}

it('pulls a single-layer image by tag: digests, config, store contents', async () => {
  const { c, store } = await client();
  const img = await c.pull(`${registry.host}/test/single:v1`);
  expect(img.manifestDigest).toBe(single.manifestDigest);
  expect(img.configDigest).toBe(single.configDigest);
  expect(img.manifest.layers.map((l) => l.digest)).toEqual([single.layerDigest]);
  expect(img.config.rootfs.diff_ids).toEqual([single.diffId]);
  expect(img.config.config?.Cmd).toEqual(['/bin/sh']);
  expect(img.platform).toEqual({ os: 'linux', architecture: 'amd64' });
  expect(img.index).toBeUndefined();
  expect(img.reference.toString()).toBe(`${registry.host}/test/single:v1`);
  for (const d of [single.manifestDigest, single.configDigest, single.layerDigest]) expect(await store.has(d)).toBe(true);
  expect((await store.readBlob(single.layerDigest)).equals(single.layerBytes)).toBe(true);
  expect((await store.readBlob(single.manifestDigest)).toString()).toBe(single.manifestBody);
  expect(await readdir(join(root, 'content', 'blobs', 'sha256'))).toHaveLength(3);
  expect(await readdir(join(root, 'content', 'ingest'))).toEqual([]);
});

it('pull reports the bytes of each layer as they arrive, ending at its size; present layers report nothing', async () => {
  const { c } = await client();
  const seen: Array<[string, number, number]> = [];
  await c.pull(`${registry.host}/test/single:v1`, { onBytes: (digest, n, total) => seen.push([digest, n, total]) });
  const size = single.layerBytes.length;
  expect(seen.length).toBeGreaterThan(0);
  expect(seen.every(([d, , total]) => d === single.layerDigest && total === size)).toBe(true);
  expect(seen.map(([, n]) => n)).toEqual([...seen.map(([, n]) => n)].sort((a, b) => a - b));
  expect(seen[seen.length - 1]![1]).toBe(size);
  const again: unknown[] = [];
  await c.pull(`${registry.host}/test/single:v1`, { onBytes: (...a) => again.push(a) });
  expect(again).toEqual([]);
});

it('pull by digest, and a second pull skips present layers', async () => {
  const { c, logs } = await client();
  const ref = `${registry.host}/test/single@${single.manifestDigest}`;
  await c.pull(ref);
  const downloadsBefore = logs.filter((l) => l.includes('downloading')).length;
  const again = await c.pull(ref);
  expect(again.manifestDigest).toBe(single.manifestDigest);
  expect(logs.filter((l) => l.includes('downloading')).length).toBe(downloadsBefore);
  expect(logs.some((l) => l.includes('1 of 1 layers already present'))).toBe(true);
});

it('image index: picks the manifest for the requested platform', async () => {
  const a = await client({ platform: { os: 'linux', architecture: 'arm64' } });
  const img = await a.c.pull(`${registry.host}/test/multi`);
  expect(img.index?.digest).toBe(indexDigest);
  expect(img.index?.index.manifests).toHaveLength(2);
  expect(img.manifestDigest).toBe(arm64.manifestDigest);
  expect(img.platform).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  expect(await a.store.has(arm64.layerDigest)).toBe(true);
  expect(await a.store.has(amd64.layerDigest)).toBe(false);
  expect(await a.store.has(indexDigest)).toBe(true);

  const b = await client({ platform: { os: 'linux', architecture: 'x86_64' } });
  const img2 = await b.c.resolve(`${registry.host}/test/multi:latest`);
  expect(img2.manifestDigest).toBe(amd64.manifestDigest);
  expect(img2.configDigest).toBe(amd64.configDigest);
});

it('no matching platform lists what is available', async () => {
  const { c } = await client({ platform: { os: 'linux', architecture: 'riscv64' } });
  const err = await c.resolve(`${registry.host}/test/multi`).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(PlatformNotFoundError);
  expect((err as Error).message).toMatch(/linux\/riscv64/);
  expect((err as Error).message).toMatch(/available: linux\/amd64, linux\/arm64\/v8/);
  expect((err as Error).message).toContain(`${registry.host}/test/multi:latest`);
});

it('unknown tag → ManifestNotFoundError naming reference and host', async () => {
  const { c } = await client();
  const err = await c.resolve(`${registry.host}/test/single:nope`).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ManifestNotFoundError);
  expect((err as ManifestNotFoundError).code).toBe('E_MANIFEST_UNKNOWN');
  expect((err as Error).message).toContain(`${registry.host}/test/single:nope`);
});

it('pull by a digest the registry does not have', async () => {
  const { c } = await client();
  await expect(c.resolve(`${registry.host}/test/single@${sha256Digest('nothing')}`)).rejects.toBeInstanceOf(ManifestNotFoundError);
});

it('mirror fallback: dead mirror first, then the real registry', async () => {
  const dead = await freePort();
  const { c, logs, store } = await client({ mirrors: { [registry.host]: [`127.0.0.1:${dead}`] } });
  const img = await c.pull(`${registry.host}/test/single:v1`);
  expect(img.manifestDigest).toBe(single.manifestDigest);
  expect(await store.has(single.layerDigest)).toBe(true);
  expect(logs.some((l) => l.includes(`mirror 127.0.0.1:${dead} failed`) && l.includes(`trying ${registry.host}`))).toBe(true);
});

it('a working mirror serves the pull, and the log says so', async () => {
  const mirror = await startProxy({ target: registry.url });
  servers.push(mirror);
  const { c, logs } = await client({ mirrors: { [registry.host]: [mirror.host] } });
  await c.pull(`${registry.host}/test/single:v1`);
  expect(logs.some((l) => l.includes(`served by mirror ${mirror.host}`))).toBe(true);
  expect(mirror.seen.some((r) => r.url === `/v2/test/single/blobs/${single.layerDigest}`)).toBe(true);
});

it('a blob corrupted in transit is rejected and nothing is stored', async () => {
  const corrupt = await startProxy({
    target: registry.url,
    rewriteBlob: (b) => {
      const copy = Buffer.from(b);
      copy[copy.length - 1] = (copy[copy.length - 1] ?? 0) ^ 0xff; // same size, different bytes
      return copy;
    },
  });
  servers.push(corrupt);
  const { c, store } = await client();
  const ref = parseReference(`${corrupt.host}/test/single:v1`);
  const err = await c.pull(ref).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(DigestMismatchError);
  expect((err as DigestMismatchError).code).toBe('E_DIGEST_MISMATCH');
  // The config blob is fetched first during resolve and is the one rejected.
  expect(await store.has(single.configDigest)).toBe(false);
  expect(await store.has(single.layerDigest)).toBe(false);
  expect(await readdir(join(root, 'content', 'ingest'))).toEqual([]);
  const blobs = await readdir(join(root, 'content', 'blobs', 'sha256'));
  for (const name of blobs) {
    const bytes = await store.readBlob(`sha256:${name}`);
    expect(sha256Digest(bytes)).toBe(`sha256:${name}`);
  }
});

it('a corrupting mirror falls back to the origin, which succeeds', async () => {
  const corrupt = await startProxy({ target: registry.url, rewriteBlob: (b) => Buffer.concat([b, Buffer.from('x')]) });
  servers.push(corrupt);
  const { c, store, logs } = await client({ mirrors: { [registry.host]: [corrupt.host] } });
  const img = await c.pull(`${registry.host}/test/single:v1`);
  expect(img.manifestDigest).toBe(single.manifestDigest);
  expect(await store.has(single.layerDigest)).toBe(true);
  expect(logs.some((l) => l.includes(`mirror ${corrupt.host} failed`))).toBe(true);
});

it('a manifest that does not match Docker-Content-Digest is rejected', async () => {
  const liar = await startProxy({
    target: registry.url,
    intercept: (req, res) => {
      if (!req.url?.includes('/manifests/')) return false;
      const body = single.manifestBody.replace('"schemaVersion":2', '"schemaVersion": 2');
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': single.manifestDigest });
      res.end(body);
      return true;
    },
  });
  servers.push(liar);
  const { c } = await client();
  await expect(c.resolve(`${liar.host}/test/single:v1`)).rejects.toThrow(/announced/);
  await expect(c.resolve(`${liar.host}/test/single@${single.manifestDigest}`)).rejects.toBeInstanceOf(DigestMismatchError);
});

it('oversized and unknown-media-type manifests get clear errors', async () => {
  const odd = await startProxy({
    target: registry.url,
    intercept: (req, res) => {
      if (req.url?.endsWith('/manifests/big')) {
        res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
        res.end(Buffer.alloc(4 * 1024 * 1024 + 1, 0x20));
        return true;
      }
      if (req.url?.endsWith('/manifests/weird')) {
        res.writeHead(200, { 'content-type': 'application/vnd.example.thing+json' });
        res.end('{"schemaVersion":2,"mediaType":"application/vnd.example.thing+json"}');
        return true;
      }
      if (req.url?.endsWith('/manifests/v1')) {
        res.writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' });
        res.end('{"schemaVersion":1}');
        return true;
      }
      return false;
    },
  });
  servers.push(odd);
  const { c } = await client();
  await expect(c.resolve(`${odd.host}/test/single:big`)).rejects.toMatchObject({ code: 'E_MANIFEST_INVALID', message: expect.stringMatching(/exceeds the 4194304-byte limit/) });
  await expect(c.resolve(`${odd.host}/test/single:weird`)).rejects.toMatchObject({ code: 'E_MANIFEST_INVALID', message: expect.stringMatching(/unsupported manifest media type "application\/vnd.example.thing\+json"/) });
  await expect(c.resolve(`${odd.host}/test/single:v1`)).rejects.toMatchObject({ code: 'E_MANIFEST_INVALID', message: expect.stringMatching(/schema1/) });
});

it('retries 503 and 429 (honouring Retry-After), not 400', async () => {
  let failures = 2;
  const flaky = await startProxy({
    target: registry.url,
    intercept: (req, res) => {
      if (req.url?.includes('/manifests/') && failures > 0) {
        failures--;
        res.writeHead(failures === 1 ? 503 : 429, { 'retry-after': '0' });
        res.end();
        return true;
      }
      if (req.url?.includes('/manifests/bad')) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"TAG_INVALID","message":"nope"}]}');
        return true;
      }
      return false;
    },
  });
  servers.push(flaky);
  const { c, logs } = await client({ retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 } });
  const img = await c.resolve(`${flaky.host}/test/single:v1`);
  expect(img.manifestDigest).toBe(single.manifestDigest);
  expect(logs.filter((l) => l.startsWith('retrying manifest'))).toHaveLength(2);
  const before = flaky.seen.length;
  await expect(c.resolve(`${flaky.host}/test/single:bad`)).rejects.toMatchObject({ code: 'E_REGISTRY_REQUEST', message: expect.stringContaining('TAG_INVALID nope') });
  expect(flaky.seen.length - before).toBe(1);
});

it('persistent 5xx ends in RegistryUnavailableError naming the host', async () => {
  const down = await startProxy({
    target: registry.url,
    intercept: (_req, res) => {
      res.writeHead(502);
      res.end();
      return true;
    },
  });
  servers.push(down);
  const { c } = await client();
  const err = await c.resolve(`${down.host}/test/single:v1`).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(RegistryUnavailableError);
  expect((err as Error).message).toContain(down.host);
  expect((err as Error).message).toContain('HTTP 502');
});

it('a stalled blob download fails by idle timeout (and is retried once)', async () => {
  let stalls = 0;
  const open: ServerResponse[] = [];
  const stall = await startProxy({
    target: registry.url,
    intercept: (req, res) => {
      if (req.url !== `/v2/test/single/blobs/${single.layerDigest}`) return false;
      stalls++;
      res.writeHead(200, { 'content-length': String(single.layerBytes.byteLength) });
      res.write(single.layerBytes.subarray(0, 10)); // then nothing, forever
      open.push(res);
      return true;
    },
  });
  servers.push(stall);
  const { c, store } = await client({ idleTimeoutMs: 300 });
  const started = Date.now();
  const err = await c.pull(`${stall.host}/test/single:v1`).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(RegistryUnavailableError);
  expect((err as Error).message).toMatch(/no data received for 300 ms/);
  expect(stalls).toBe(2);
  expect(Date.now() - started).toBeLessThan(10_000);
  expect(await store.has(single.layerDigest)).toBe(false);
  expect(await readdir(join(root, 'content', 'ingest'))).toEqual([]);
  for (const r of open) r.destroy();
});

it('blob redirects are followed without sending Authorization to the other origin', async () => {
  const storageSeen: Array<string | undefined> = [];
  const { server: storage, port: storagePort } = await listen((req, res) => {
    storageSeen.push(req.headers.authorization);
    res.writeHead(200, { 'content-length': String(single.layerBytes.byteLength) });
    res.end(single.layerBytes);
  });
  const tokens = new Set<string>();
  const front = await startProxy({
    target: registry.url,
    intercept: (req, res) => {
      const url = req.url ?? '';
      if (url.startsWith('/token')) {
        const t = `tok-${Math.random().toString(16).slice(2)}`;
        tokens.add(t);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ token: t, expires_in: 300 }));
        return true;
      }
      const auth = req.headers.authorization ?? '';
      if (!tokens.has(auth.replace(/^Bearer /, ''))) {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${frontPort()}/token",service="test"` });
        res.end();
        return true;
      }
      if (url === `/v2/test/single/blobs/${single.layerDigest}`) {
        res.writeHead(307, { location: `http://127.0.0.1:${storagePort}/bucket/blob?X-Signature=secret-sig` });
        res.end();
        return true;
      }
      return false;
    },
  });
  servers.push(front);
  const frontPort = (): number => front.port;
  try {
    const { c, store, logs } = await client();
    await c.pull(`${front.host}/test/single:v1`);
    expect(await store.has(single.layerDigest)).toBe(true);
    expect(storageSeen).toEqual([undefined]);
    expect(front.seen.filter((r) => r.url.includes('/blobs/')).every((r) => r.authorization?.startsWith('Bearer '))).toBe(true);
    expect(logs.join('\n')).not.toContain('secret-sig');
  } finally {
    await closeServer(storage);
  }
});
