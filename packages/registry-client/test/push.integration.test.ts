/**
 * Pushes through RegistryClient.push to the real Debian docker-registry
 * (directly, through a recording proxy, and through a token front server),
 * then checks the result with RegistryClient.pull and skopeo.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import {
  ContentStore,
  MediaTypes,
  RegistryClient,
  sha256Digest,
  type Descriptor,
  type PushProgress,
  type RegistryClientOptions,
} from '../src/index.js';
import { startProxy, type RunningServer } from './helpers/proxy.js';
import { startRegistry, type RunningRegistry } from './helpers/registry.js';

const T = 20_000;
const it = (name: string, fn: () => Promise<void>): void => test(name, fn, T);
const run = promisify(execFile);

const USER = 'bob';
const PASSWORD = 'push-Pw-93kd';
const BASIC = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');

let registry: RunningRegistry;
let root: string;
const servers: RunningServer[] = [];
const savedDockerConfig = process.env['DOCKER_CONFIG'];

beforeAll(async () => {
  registry = await startRegistry();
}, T);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await registry?.stop();
});

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-push-'));
});
afterEach(async () => {
  if (savedDockerConfig === undefined) delete process.env['DOCKER_CONFIG'];
  else process.env['DOCKER_CONFIG'] = savedDockerConfig;
  await rm(root, { recursive: true, force: true });
});

interface LocalImage {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  layerBytes: Buffer[];
}

/** Writes layers (given sizes of random payload, gzipped), a config and an OCI manifest into the store. */
async function makeImage(store: ContentStore, layerSizes: number[], arch = 'amd64'): Promise<LocalImage> {
  const layers: Descriptor[] = [];
  const layerBytes: Buffer[] = [];
  const diffIds: string[] = [];
  for (const size of layerSizes) {
    const raw = randomBytes(size);
    const gz = gzipSync(raw, { level: 1 });
    const { digest } = await store.writeBlob(gz);
    layers.push({ mediaType: MediaTypes.OCI_LAYER_GZIP, digest, size: gz.byteLength });
    layerBytes.push(gz);
    diffIds.push(sha256Digest(raw));
  }
  const cfg = await store.writeBlob(
    JSON.stringify({ architecture: arch, os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: diffIds } }),
  );
  const config: Descriptor = { mediaType: MediaTypes.OCI_CONFIG, digest: cfg.digest, size: cfg.size };
  const m = await store.writeBlob(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.OCI_MANIFEST, config, layers }));
  return { manifest: { mediaType: MediaTypes.OCI_MANIFEST, digest: m.digest, size: m.size }, config, layers, layerBytes };
}

const blobsOf = (img: LocalImage): Descriptor[] => [img.config, ...img.layers];

async function client(extra: Partial<RegistryClientOptions> = {}, dir = 'content'): Promise<{ c: RegistryClient; store: ContentStore; logs: string[] }> {
  const store = await ContentStore.open(join(root, dir));
  const logs: string[] = [];
  const c = new RegistryClient({
    store,
    platform: { os: 'linux', architecture: 'amd64' },
    credentials: async () => undefined,
    log: (l) => logs.push(l),
    retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 },
    ...extra,
  });
  return { c, store, logs };
}

/** Pulls into a fresh store and checks every digest and layer byte. */
async function pullBack(ref: string, img: LocalImage, extra: Partial<RegistryClientOptions> = {}): Promise<void> {
  const { c, store } = await client(extra, `pull-${Math.random().toString(16).slice(2)}`);
  const pulled = await c.pull(ref);
  expect(pulled.manifestDigest).toBe(img.manifest.digest);
  expect(pulled.configDigest).toBe(img.config.digest);
  expect(pulled.manifest.layers.map((l) => l.digest)).toEqual(img.layers.map((l) => l.digest));
  for (const [i, l] of img.layers.entries()) expect((await store.readBlob(l.digest)).equals(img.layerBytes[i] as Buffer)).toBe(true);
}

interface Recorded {
  method: string;
  url: string;
  contentRange?: string;
}

/** A proxy to the registry that records each request (and can inject faults). */
async function recorder(fault?: (req: IncomingMessage, res: ServerResponse, log: Recorded[]) => boolean): Promise<RunningServer & { log: Recorded[] }> {
  const log: Recorded[] = [];
  const srv = await startProxy({
    target: registry.url,
    intercept: (req, res) => {
      const cr = req.headers['content-range'];
      log.push({ method: req.method ?? '', url: req.url ?? '', ...(typeof cr === 'string' ? { contentRange: cr } : {}) });
      return fault?.(req, res, log) ?? false;
    },
  });
  servers.push(srv);
  return Object.assign(srv, { log });
}

const isUploadData = (r: Recorded): boolean => (r.method === 'PATCH' || r.method === 'PUT') && r.url.includes('/blobs/uploads/');
const settled = (events: PushProgress[]): PushProgress[] => events.filter((e) => e.bytes === e.total);

it('pushes a small image monolithically; pull gets the same digests and skopeo sees the tags', async () => {
  const { c, store } = await client();
  const img = await makeImage(store, [2048]);
  const events: PushProgress[] = [];
  const res = await c.push(`${registry.host}/push/small:v1`, { manifest: img.manifest, blobs: blobsOf(img) }, { tags: ['v1', 'stable'], onProgress: (e) => events.push(e) });
  expect(res.digest).toBe(img.manifest.digest);
  expect(res.tags).toEqual(['v1', 'stable']);
  expect(events.map((e) => e.action).sort()).toEqual(['uploaded', 'uploaded']);
  expect(new Set(events.map((e) => e.digest))).toEqual(new Set([img.config.digest, img.layers[0]?.digest]));

  await pullBack(`${registry.host}/push/small:v1`, img);
  await pullBack(`${registry.host}/push/small:stable`, img);

  const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${registry.host}/push/small:v1`], { timeout: 15_000 });
  const inspected = JSON.parse(stdout) as { Digest: string; RepoTags: string[]; Layers: string[] };
  expect(inspected.Digest).toBe(img.manifest.digest);
  expect([...inspected.RepoTags].sort()).toEqual(['stable', 'v1']);
  expect(inspected.Layers).toEqual(img.layers.map((l) => l.digest));
});

it('a layer above chunkThreshold goes up in PATCH chunks following each Location; a second push only HEADs', async () => {
  const proxy = await recorder();
  const { c, store } = await client();
  const img = await makeImage(store, [300 * 1024, 1000]);
  const big = img.layers[0] as Descriptor;
  const events: PushProgress[] = [];
  const ref = `${proxy.host}/push/chunked:v1`;
  await c.push(ref, { manifest: img.manifest, blobs: blobsOf(img) }, { chunkThreshold: 100 * 1024, onProgress: (e) => events.push(e) });

  const patches = proxy.log.filter((r) => r.method === 'PATCH');
  const chunks = Math.ceil(big.size / (100 * 1024));
  expect(patches).toHaveLength(chunks);
  expect(patches.map((p) => p.contentRange)).toEqual(
    Array.from({ length: chunks }, (_, i) => `${i * 102400}-${Math.min((i + 1) * 102400, big.size) - 1}`),
  );
  // Each PATCH went to the Location the previous response returned (distribution's _state changes every time).
  expect(new Set(patches.map((p) => p.url)).size).toBe(chunks);
  // The small blobs went up monolithically: one PUT each with data, plus the chunked upload's empty closing PUT.
  expect(proxy.log.filter((r) => r.method === 'PUT' && r.url.includes('/blobs/uploads/'))).toHaveLength(3);
  const bigEvents = events.filter((e) => e.digest === big.digest);
  expect(bigEvents.map((e) => e.bytes)).toEqual([...Array.from({ length: chunks - 1 }, (_, i) => (i + 1) * 102400), big.size]);
  expect(settled(events).map((e) => e.action)).toEqual(['uploaded', 'uploaded', 'uploaded']);
  await pullBack(ref, img);

  // Second push: every blob HEADs 200, no upload of any kind, one manifest PUT.
  const before = proxy.log.length;
  const again: PushProgress[] = [];
  const res = await c.push(ref, { manifest: img.manifest, blobs: blobsOf(img) }, { chunkThreshold: 100 * 1024, onProgress: (e) => again.push(e) });
  expect(res.digest).toBe(img.manifest.digest);
  const second = proxy.log.slice(before);
  expect(again.map((e) => e.action)).toEqual(['exists', 'exists', 'exists']);
  expect(second.filter((r) => r.method === 'HEAD')).toHaveLength(3);
  expect(second.filter((r) => r.method === 'POST' || isUploadData(r))).toHaveLength(0);
  expect(second.filter((r) => r.method === 'PUT').map((r) => r.url)).toEqual(['/v2/push/chunked/manifests/v1']);
});

it('cross-repository mount from another repository; a mount the registry refuses falls back to its upload session', async () => {
  const proxy = await recorder();
  const { c, store } = await client();
  const img = await makeImage(store, [4096]);
  await c.push(`${proxy.host}/push/base:1`, { manifest: img.manifest, blobs: blobsOf(img) });

  const before = proxy.log.length;
  const events: PushProgress[] = [];
  await c.push(`${proxy.host}/push/derived:1`, { manifest: img.manifest, blobs: blobsOf(img) }, { mountFrom: ['push/base'], onProgress: (e) => events.push(e) });
  expect(events.map((e) => e.action)).toEqual(['mounted', 'mounted']);
  const mounts = proxy.log.slice(before).filter((r) => r.method === 'POST');
  expect(mounts).toHaveLength(2);
  for (const m of mounts) expect(new URL(m.url, 'http://x').searchParams.get('from')).toBe('push/base');
  expect(proxy.log.slice(before).filter(isUploadData)).toHaveLength(0);
  await pullBack(`${registry.host}/push/derived:1`, img);

  // Nothing to mount from an empty repository: the 202 session it opens is used for the upload.
  const fresh = await makeImage(store, [512]);
  const mark = proxy.log.length;
  const ev2: PushProgress[] = [];
  await c.push(`${proxy.host}/push/other:1`, { manifest: fresh.manifest, blobs: blobsOf(fresh) }, { mountFrom: ['push/empty'], onProgress: (e) => ev2.push(e) });
  expect(ev2.map((e) => e.action)).toEqual(['uploaded', 'uploaded']);
  const posts = proxy.log.slice(mark).filter((r) => r.method === 'POST');
  expect(posts).toHaveLength(2);
  expect(posts.every((p) => p.url.includes('mount='))).toBe(true);
  await pullBack(`${registry.host}/push/other:1`, fresh);
});

it('an image index: manifest by digest, index under the tag; pull resolves through it', async () => {
  const { c, store } = await client();
  const img = await makeImage(store, [700], 'arm64');
  const idx = await store.writeBlob(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.OCI_INDEX, manifests: [{ ...img.manifest, platform: { os: 'linux', architecture: 'arm64' } }] }),
  );
  const index: Descriptor = { mediaType: MediaTypes.OCI_INDEX, digest: idx.digest, size: idx.size };
  const res = await c.push(`${registry.host}/push/multi:latest`, { manifest: img.manifest, index, blobs: blobsOf(img) });
  expect(res).toEqual({ digest: idx.digest, manifestDigest: img.manifest.digest, indexDigest: idx.digest, tags: ['latest'] });
  const arm = await client({ platform: { os: 'linux', architecture: 'arm64' } }, 'arm');
  const pulled = await arm.c.pull(`${registry.host}/push/multi`);
  expect(pulled.index?.digest).toBe(idx.digest);
  expect(pulled.manifestDigest).toBe(img.manifest.digest);
});

it('a chunk whose connection drops restarts the upload with a new session', async () => {
  let dropped = 0;
  const proxy = await recorder((req) => {
    if (req.method === 'PATCH' && req.headers['content-range']?.toString().startsWith('1024-') === true && dropped === 0) {
      dropped++;
      req.socket.destroy();
      return true;
    }
    return false;
  });
  const { c, store, logs } = await client();
  const img = await makeImage(store, [5000]);
  const big = img.layers[0] as Descriptor;
  const ref = `${proxy.host}/push/flaky:v1`;
  await c.push(ref, { manifest: img.manifest, blobs: [big] }, { chunkThreshold: 1024 });
  expect(dropped).toBe(1);
  expect(logs.some((l) => l.includes('restarting the upload with a new session'))).toBe(true);
  // Sessions: the config's, the big layer's first try, and its fresh restart.
  expect(proxy.log.filter((r) => r.method === 'POST')).toHaveLength(3);
  expect(proxy.log.some((r) => r.method === 'DELETE' && r.url.includes('/blobs/uploads/'))).toBe(true);
  // The retry started over from byte 0.
  const ranges = proxy.log.filter((r) => r.method === 'PATCH').map((r) => r.contentRange);
  expect(ranges.filter((r) => r === '0-1023')).toHaveLength(2);
  await pullBack(ref, img);
});

it('errors: blob missing from the store, manifest refused, wrong digest echoed', async () => {
  const { c, store } = await client();
  const img = await makeImage(store, [100]);
  const ghost: Descriptor = { mediaType: MediaTypes.OCI_LAYER_GZIP, digest: sha256Digest('not stored'), size: 10 };
  const ref = `${registry.host}/push/errors:v1`;
  await expect(c.push(ref, { manifest: img.manifest, blobs: [...blobsOf(img), ghost] })).rejects.toMatchObject({
    code: 'E_BLOB_UNKNOWN',
    message: expect.stringContaining(ref),
  });

  const refusing = await recorder((req, res) => {
    if (req.method !== 'PUT' || !req.url?.includes('/manifests/')) return false;
    if (req.url.endsWith('/bad')) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}');
    } else {
      res.writeHead(201, { 'docker-content-digest': sha256Digest('something else'), location: '/v2/x/manifests/y' });
      res.end();
    }
    return true;
  });
  const bad = `${refusing.host}/push/errors:bad`;
  const err = await c.push(bad, { manifest: img.manifest, blobs: blobsOf(img) }).catch((e: unknown) => e);
  expect(err).toMatchObject({ code: 'E_REGISTRY_PUSH', status: 400 });
  expect((err as Error).message).toContain(bad);
  expect((err as Error).message).toContain('MANIFEST_INVALID');
  await expect(c.push(`${refusing.host}/push/errors:v2`, { manifest: img.manifest, blobs: blobsOf(img) })).rejects.toMatchObject({
    code: 'E_DIGEST_MISMATCH',
  });
});

// ---- token front server --------------------------------------------------

interface Front extends RunningServer {
  tokenRequests: Array<{ scopes: string[]; account: string | null; authorization?: string }>;
  issued: string[];
  denied: string[];
}

/**
 * Docker token auth in front of the registry: /token needs Basic
 * credentials and grants exactly the scopes asked for; /v2/ requests need a
 * token whose scopes cover them (pull for reads, push for writes, pull on
 * the source of a mount).
 */
async function tokenFront(): Promise<Front> {
  const tokenRequests: Front['tokenRequests'] = [];
  const issued: string[] = [];
  const denied: string[] = [];
  const grants = new Map<string, Set<string>>();
  let port = 0;
  const challenge = (res: ServerResponse, scope?: string): true => {
    res.writeHead(401, {
      'www-authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="push.test"${scope !== undefined ? `,scope="${scope}"` : ''}`,
      'content-type': 'application/json',
    });
    res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
    return true;
  };
  const srv = await startProxy({
    target: registry.url,
    intercept: (req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const auth = req.headers.authorization;
      if (url.pathname === '/token') {
        const scopes = url.searchParams.getAll('scope');
        tokenRequests.push({ scopes, account: url.searchParams.get('account'), ...(auth !== undefined ? { authorization: auth } : {}) });
        if (auth !== `Basic ${BASIC}`) {
          res.writeHead(401);
          res.end();
          return true;
        }
        const t = `tok-${randomBytes(12).toString('hex')}`;
        issued.push(t);
        const granted = new Set<string>();
        for (const s of scopes) {
          const [, repo, actions] = /^repository:(.+):([a-z,]+)$/.exec(s) ?? [];
          for (const a of actions?.split(',') ?? []) granted.add(`${repo}:${a}`);
        }
        grants.set(t, granted);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ token: t, expires_in: 300 }));
        return true;
      }
      const token = auth?.startsWith('Bearer ') === true ? auth.slice(7) : undefined;
      const granted = token !== undefined ? grants.get(token) : undefined;
      if (granted === undefined) return challenge(res);
      const repo = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(url.pathname)?.[1];
      if (repo === undefined) return false; // /v2/ with any valid token
      const action = req.method === 'GET' || req.method === 'HEAD' ? 'pull' : 'push';
      const from = url.searchParams.get('from');
      const ok = granted.has(`${repo}:${action}`) && (from === null || granted.has(`${from}:pull`));
      if (!ok) {
        denied.push(`${req.method} ${url.pathname}`);
        return challenge(res, `repository:${repo}:pull,push`);
      }
      return false;
    },
  });
  port = srv.port;
  servers.push(srv);
  return Object.assign(srv, { tokenRequests, issued, denied });
}

async function dockerConfig(auths: Record<string, Record<string, string>>): Promise<void> {
  const dir = join(root, 'docker');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify({ auths }));
  process.env['DOCKER_CONFIG'] = dir;
}

it('through a token server with basic credentials from $DOCKER_CONFIG: push scope asked once, mount scope too', async () => {
  const f = await tokenFront();
  await dockerConfig({ [f.host]: { auth: BASIC } });
  const { c, store, logs } = await client({ credentials: undefined });
  const img = await makeImage(store, [3000, 200 * 1024]);
  const res = await c.push(`${f.host}/team/app:1.0`, { manifest: img.manifest, blobs: blobsOf(img) }, { chunkThreshold: 64 * 1024 });
  expect(res.digest).toBe(img.manifest.digest);
  expect(f.tokenRequests).toHaveLength(1); // one token, reused for every request of the push
  expect(f.tokenRequests[0]?.scopes).toEqual(['repository:team/app:pull,push']);
  expect(f.tokenRequests[0]?.account).toBe(USER);
  expect(f.tokenRequests[0]?.authorization).toBe(`Basic ${BASIC}`);
  expect(f.denied).toEqual([]);

  const events: PushProgress[] = [];
  await c.push(`${f.host}/team/copy:1.0`, { manifest: img.manifest, blobs: blobsOf(img) }, { mountFrom: ['team/app'], onProgress: (e) => events.push(e) });
  expect(events.map((e) => e.action)).toEqual(['mounted', 'mounted', 'mounted']);
  expect(f.tokenRequests[1]?.scopes).toEqual(['repository:team/copy:pull,push', 'repository:team/app:pull']);
  expect(f.denied).toEqual([]);

  await pullBack(`${f.host}/team/copy:1.0`, img, { credentials: undefined });
  const all = [...logs].join('\n');
  for (const secret of [PASSWORD, BASIC, ...f.issued]) expect(all).not.toContain(secret);
});

it('wrong credentials → E_REGISTRY_AUTH naming the reference, no secret in message or logs', async () => {
  const f = await tokenFront();
  const wrong = Buffer.from(`${USER}:not-it-123`).toString('base64');
  await dockerConfig({ [f.host]: { auth: wrong } });
  const { c, store, logs } = await client({ credentials: undefined });
  const img = await makeImage(store, [10]);
  const ref = `${f.host}/team/app:nope`;
  const err = await c.push(ref, { manifest: img.manifest, blobs: blobsOf(img) }).catch((e: unknown) => e);
  expect(err).toMatchObject({ code: 'E_REGISTRY_AUTH' });
  expect((err as Error).message).toContain(ref);
  const all = [(err as Error).message, String((err as Error).stack), ...logs].join('\n');
  for (const secret of ['not-it-123', wrong]) expect(all).not.toContain(secret);
});
