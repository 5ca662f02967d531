/**
 * Fault injection: the real RegistryClient pulls the fixture images of the
 * loopback docker-registry (STOWAGE_TEST_REGISTRY, default 127.0.0.1:5055)
 * through a fault-injecting proxy into a fresh ContentStore. Every fault
 * ends either in the right digest (after retries or a Range resume) or in a
 * typed error naming the reference and the fault; after every test the store
 * holds only blobs whose bytes match their names, and no partial downloads.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ContentStore,
  DigestMismatchError,
  ManifestInvalidError,
  RegistryClient,
  RegistryDeadlineError,
  RegistryError,
  RegistryUnavailableError,
  parseReference,
  sha256Digest,
  staticCredentials,
  type Descriptor,
  type RegistryClientOptions,
} from '../src/index.js';
import { startFaultProxy, startOrigin, type Fault, type FaultProxy, type SeenRequest } from './helpers/fault-proxy.js';

const T = 60_000;
const it = (name: string, fn: () => Promise<void>): void => test(name, fn, T);

const REGISTRY = process.env.STOWAGE_TEST_REGISTRY || '127.0.0.1:5055';
const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

interface Fixture {
  indexBytes: Buffer;
  indexDigest: string;
  indexType: string;
  manifestDigest: string;
  manifestBytes: Buffer;
  configDigest: string;
  layer: Descriptor;
  /** The large layer of library/golang:1.21. */
  big: Descriptor;
}

let fx: Fixture;
let root: string;
let proxy: FaultProxy | undefined;

async function getManifest(repo: string, ref: string): Promise<{ bytes: Buffer; type: string; digest: string }> {
  const r = await fetch(`http://${REGISTRY}/v2/${repo}/manifests/${ref}`, { headers: { accept: ACCEPT } });
  if (r.status !== 200) throw new Error(`fixture ${repo}:${ref} missing from ${REGISTRY} (HTTP ${r.status}); run scripts/setup`);
  const bytes = Buffer.from(await r.arrayBuffer());
  return { bytes, type: r.headers.get('content-type') ?? '', digest: r.headers.get('docker-content-digest') ?? sha256Digest(bytes) };
}

function pickAmd64(index: Buffer): string {
  const parsed = JSON.parse(index.toString()) as { manifests: Array<{ digest: string; platform?: { architecture?: string } }> };
  const m = parsed.manifests.find((d) => d.platform?.architecture === 'amd64');
  if (m === undefined) throw new Error('busybox fixture has no amd64 manifest');
  return m.digest;
}

beforeAll(async () => {
  const index = await getManifest('library/busybox', 'latest');
  const manifestDigest = pickAmd64(index.bytes);
  const manifest = await getManifest('library/busybox', manifestDigest);
  const m = JSON.parse(manifest.bytes.toString()) as { config: Descriptor; layers: Descriptor[] };
  let golang = await getManifest('library/golang', '1.21');
  if (golang.type.includes('index') || golang.type.includes('list')) golang = await getManifest('library/golang', pickAmd64(golang.bytes));
  const g = JSON.parse(golang.bytes.toString()) as { layers: Descriptor[] };
  const big = [...g.layers].sort((a, b) => b.size - a.size)[0]!;
  fx = {
    indexBytes: index.bytes,
    indexDigest: index.digest,
    indexType: index.type,
    manifestDigest,
    manifestBytes: manifest.bytes,
    configDigest: m.config.digest,
    layer: m.layers[0]!,
    big,
  };
}, T);

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-faults-'));
});

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  // The store invariant, after every fault: names match bytes, no partial downloads.
  const store = join(root, 'content');
  const blobs = await readdir(join(store, 'blobs', 'sha256')).catch(() => []);
  for (const hex of blobs) expect(await fileDigest(join(store, 'blobs', 'sha256', hex))).toBe(`sha256:${hex}`);
  expect(await readdir(join(store, 'ingest')).catch(() => [])).toEqual([]);
  await rm(root, { recursive: true, force: true });
}, T);

async function fileDigest(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

async function client(extra: Partial<RegistryClientOptions> = {}): Promise<{ c: RegistryClient; store: ContentStore; logs: string[] }> {
  const store = await ContentStore.open(join(root, 'content'));
  const logs: string[] = [];
  const c = new RegistryClient({
    store,
    platform: { os: 'linux', architecture: 'amd64' },
    credentials: async () => undefined,
    log: (l) => logs.push(l),
    retry: { attempts: 4, baseDelayMs: 5, maxDelayMs: 20 },
    idleTimeoutMs: 2_000,
    ...extra,
  });
  return { c, store, logs };
}

async function faulty(fault: (url: string, seen: SeenRequest[]) => Fault | undefined, extra: { requireAuthorization?: string } = {}): Promise<FaultProxy> {
  proxy = await startFaultProxy({ target: `http://${REGISTRY}`, fault: (req, seen) => fault(req.url ?? '', seen), maxStallMs: 10_000, ...extra });
  return proxy;
}

/** Fires `fault` for the first `times` requests whose URL ends with `suffix`. */
function firstN(suffix: string, times: number, fault: Fault): (url: string, seen?: SeenRequest[]) => Fault | undefined {
  let left = times;
  return (url) => {
    if (!url.endsWith(suffix) || left <= 0) return undefined;
    left--;
    return fault;
  };
}

const busybox = (p: FaultProxy): string => `${p.host}/library/busybox:latest`;
const blobPath = (d: string): string => `/blobs/${d}`;

async function expectBusybox(c: RegistryClient, store: ContentStore, p: FaultProxy): Promise<void> {
  const img = await c.pull(busybox(p));
  expect(img.manifestDigest).toBe(fx.manifestDigest);
  expect(img.index?.digest).toBe(fx.indexDigest);
  expect(img.configDigest).toBe(fx.configDigest);
  expect(await store.has(fx.layer.digest)).toBe(true);
}

/** Pulls the large golang layer alone. */
async function fetchBig(c: RegistryClient, p: FaultProxy): Promise<void> {
  await c.fetchBlob(parseReference(`${p.host}/library/golang:1.21`), fx.big);
}

async function rejection(p: Promise<unknown>): Promise<RegistryError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RegistryError);
  return err as RegistryError;
}

/** Requests other than the /v2/ version check. */
const api = (p: FaultProxy): SeenRequest[] => p.seen.filter((r) => r.url !== '/v2/');
const blobGets = (p: FaultProxy, digest: string): SeenRequest[] => p.seen.filter((r) => r.method === 'GET' && r.url.endsWith(blobPath(digest)));

it('baseline: a clean pull through the proxy', async () => {
  const p = await faulty(() => undefined);
  const { c, store } = await client();
  await expectBusybox(c, store, p);
  expect(blobGets(p, fx.layer.digest).map((r) => r.range)).toEqual([undefined]);
});

describe('blob bodies', () => {
  it('truncated mid-blob (connection closed early): resumed with Range, nothing hashed twice', async () => {
    const cut = Math.floor(fx.big.size / 3);
    const p = await faulty(firstN(blobPath(fx.big.digest), 1, { kind: 'truncate', after: cut, mode: 'close' }));
    const { c, store, logs } = await client();
    await fetchBig(c, p);
    expect(await store.has(fx.big.digest)).toBe(true);
    const gets = blobGets(p, fx.big.digest);
    expect(gets).toHaveLength(2);
    expect(gets[1]!.range).toMatch(/^bytes=\d+-$/);
    const from = Number(/(\d+)-/.exec(gets[1]!.range!)![1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(cut);
    expect(gets[1]!.status).toBe(206);
    // The whole transfer is one blob's worth, not one and a third.
    expect(gets[0]!.sent + gets[1]!.sent).toBeLessThanOrEqual(fx.big.size + (cut - from));
    expect(logs.some((l) => l.includes(`resuming at byte ${from}`))).toBe(true);
  });

  it('truncated mid-blob (short chunked body, ended cleanly): resumed with Range', async () => {
    const p = await faulty(firstN(blobPath(fx.layer.digest), 1, { kind: 'truncate', after: 300_000, mode: 'clean' }));
    const { c, store, logs } = await client();
    await expectBusybox(c, store, p);
    const gets = blobGets(p, fx.layer.digest);
    expect(gets.map((r) => r.range)).toEqual([undefined, 'bytes=300000-']);
    expect(logs.some((l) => l.includes(`ended after 300000 of ${fx.layer.size} bytes`))).toBe(true);
  });

  it('connection reset mid-blob: resumed with Range', async () => {
    const cut = Math.floor(fx.big.size / 2);
    const p = await faulty(firstN(blobPath(fx.big.digest), 1, { kind: 'reset', after: cut }));
    const { c, store } = await client();
    await fetchBig(c, p);
    expect(await store.has(fx.big.digest)).toBe(true);
    const gets = blobGets(p, fx.big.digest);
    expect(gets).toHaveLength(2);
    expect(gets[1]!.range).toMatch(/^bytes=[1-9]\d*-$/);
    expect(gets[1]!.status).toBe(206);
  });

  it('a server that ignores Range (answers 200) makes the download start over cleanly', async () => {
    let n = 0;
    const p = await faulty((url) => {
      if (!url.endsWith(blobPath(fx.layer.digest))) return undefined;
      n++;
      if (n === 1) return { kind: 'reset', after: 400_000 };
      return { kind: 'ignore-range' };
    });
    const { c, store, logs } = await client();
    await expectBusybox(c, store, p);
    const gets = blobGets(p, fx.layer.digest);
    expect(gets).toHaveLength(2);
    expect(gets[1]!.range).toMatch(/^bytes=[1-9]\d*-$/);
    expect(gets[1]!.status).toBe(200);
    expect(logs.some((l) => l.includes('ignored the range request; restarting from byte 0'))).toBe(true);
  });

  /** Downloads busybox's layers with a reader following the layer's download; resolves with what the reader saw. */
  async function followLayer(p: FaultProxy): Promise<{ store: ContentStore; seen: Promise<string> }> {
    const { c, store } = await client();
    let seen: Promise<string> | undefined;
    const downloads = await c.downloadLayers(await c.resolve(busybox(p)), {
      onIngest: (digest, writer) => {
        if (digest !== fx.layer.digest) return;
        seen ??= (async () => {
          const h = createHash('sha256');
          for await (const chunk of writer.follow()) h.update(chunk);
          return `sha256:${h.digest('hex')}`;
        })();
      },
    });
    await Promise.all(downloads.values());
    if (seen === undefined) throw new Error('the layer download never started');
    return { store, seen };
  }

  it('a reader following a layer download gets exactly its verified bytes', async () => {
    const { store, seen } = await followLayer(await faulty(() => undefined));
    await expect(seen).resolves.toBe(fx.layer.digest);
    expect(await store.has(fx.layer.digest)).toBe(true);
  });

  it('a download that starts over interrupts the reader following it (E_INGEST_INTERRUPTED); the blob still lands', async () => {
    let n = 0;
    const p = await faulty((url) => {
      if (!url.endsWith(blobPath(fx.layer.digest))) return undefined;
      return ++n === 1 ? { kind: 'reset', after: 400_000 } : { kind: 'ignore-range' };
    });
    const { store, seen } = await followLayer(p);
    await expect(seen).rejects.toMatchObject({ code: 'E_INGEST_INTERRUPTED' });
    expect(await store.has(fx.layer.digest)).toBe(true);
  });

  it('bytes altered in transit (same length): E_DIGEST_MISMATCH naming the reference, nothing stored', async () => {
    const p = await faulty((url) => (url.endsWith(blobPath(fx.layer.digest)) ? { kind: 'corrupt', at: 12_345 } : undefined));
    const { c, store } = await client();
    const err = await rejection(c.pull(busybox(p)));
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.code).toBe('E_DIGEST_MISMATCH');
    expect(err.message).toContain(busybox(p));
    expect(err.message).toContain(fx.layer.digest);
    expect(err.message).toMatch(/digest mismatch/);
    expect(await store.has(fx.layer.digest)).toBe(false);
    // Not retried: bad bytes are not a transient failure.
    expect(blobGets(p, fx.layer.digest)).toHaveLength(1);
  });

  it('bytes altered in the resumed part: the resumed download is redone once from byte 0', async () => {
    let n = 0;
    const p = await faulty((url) => {
      if (!url.endsWith(blobPath(fx.layer.digest))) return undefined;
      n++;
      if (n === 1) return { kind: 'truncate', after: 200_000, mode: 'close' };
      if (n === 2) return { kind: 'corrupt', at: 10 }; // offset within the 206 body
      return undefined;
    });
    const { c, store, logs } = await client();
    await expectBusybox(c, store, p);
    expect(blobGets(p, fx.layer.digest).map((r) => r.range === undefined)).toEqual([true, false, true]);
    expect(logs.some((l) => l.includes('resumed download did not verify'))).toBe(true);
  });

  it('a stalled body: the idle timeout fires, then the download resumes', async () => {
    const p = await faulty(firstN(blobPath(fx.layer.digest), 1, { kind: 'stall', after: 100_000 }));
    const { c, store, logs } = await client({ idleTimeoutMs: 300 });
    const started = Date.now();
    await expectBusybox(c, store, p);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(logs.some((l) => l.includes('no data received for 300 ms'))).toBe(true);
    expect(blobGets(p, fx.layer.digest).map((r) => r.range)).toEqual([undefined, 'bytes=100000-']);
  });

  it('a response that never starts: E_REGISTRY_UNAVAILABLE after the retries, within bounded time', async () => {
    const p = await faulty((url) => (url.endsWith(blobPath(fx.layer.digest)) ? { kind: 'stall', after: -1 } : undefined));
    const { c } = await client({ idleTimeoutMs: 300, retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 } });
    const started = Date.now();
    const err = await rejection(c.pull(busybox(p)));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(err).toBeInstanceOf(RegistryUnavailableError);
    expect(err.code).toBe('E_REGISTRY_UNAVAILABLE');
    expect(err.message).toContain(busybox(p));
    expect(err.message).toMatch(/no progress for 300 ms/);
    expect(err.message).toMatch(/gave up after 3 attempts/);
    expect(blobGets(p, fx.layer.digest)).toHaveLength(3);
  });

  it('resets on every attempt: E_REGISTRY_UNAVAILABLE naming the reference and the reset, partial download removed', async () => {
    const p = await faulty((url) => (url.endsWith(blobPath(fx.layer.digest)) ? { kind: 'reset', after: 1000 } : undefined));
    const { c, store } = await client({ retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 } });
    const err = await rejection(c.pull(busybox(p)));
    expect(err).toBeInstanceOf(RegistryUnavailableError);
    expect(err.code).toBe('E_REGISTRY_UNAVAILABLE');
    expect(err.message).toContain(busybox(p));
    expect(err.message).toContain(fx.layer.digest);
    // The fault itself, not just "unavailable": the connection was reset, and retrying did not help.
    expect(err.message).toMatch(/connection reset|ECONNRESET/);
    expect(err.message).toMatch(/gave up after 3 attempts/);
    expect(blobGets(p, fx.layer.digest)).toHaveLength(3);
    expect(await store.has(fx.layer.digest)).toBe(false);
  });
});

describe('statuses', () => {
  it('500 on the index, 502 on the manifest, 503 on config and layer, then success', async () => {
    const faults = [
      firstN('/manifests/latest', 1, { kind: 'status', status: 500 }),
      firstN(`/manifests/${fx.manifestDigest}`, 1, { kind: 'status', status: 502 }),
      firstN(blobPath(fx.configDigest), 2, { kind: 'status', status: 503 }),
      firstN(blobPath(fx.layer.digest), 1, { kind: 'status', status: 503 }),
    ];
    const p = await faulty((url, seen) => faults.map((f) => f(url, seen)).find((f) => f !== undefined));
    const { c, store, logs } = await client();
    await expectBusybox(c, store, p);
    expect(api(p).map((r) => r.status)).toEqual([500, 200, 502, 200, 503, 503, 200, 503, 200]);
    expect(logs.filter((l) => l.startsWith('retrying '))).toHaveLength(5);
  });

  it('429 with Retry-After: the wait is honoured, then success', async () => {
    const p = await faulty(firstN(blobPath(fx.layer.digest), 1, { kind: 'status', status: 429, headers: { 'retry-after': '1' } }));
    const { c, store, logs } = await client();
    const started = Date.now();
    await expectBusybox(c, store, p);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(logs.some((l) => /retrying blob .* in 1000 ms .*HTTP 429/.test(l))).toBe(true);
  });

  it('503 that never ends: E_REGISTRY_UNAVAILABLE naming reference, host and status', async () => {
    const p = await faulty((url) => (url.includes('/manifests/') ? { kind: 'status', status: 503 } : undefined));
    const { c } = await client({ retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 } });
    const err = await rejection(c.pull(busybox(p)));
    expect(err).toBeInstanceOf(RegistryUnavailableError);
    expect(err.message).toContain(busybox(p));
    expect(err.message).toContain('HTTP 503');
    expect(api(p)).toHaveLength(3);
  });
});

describe('redirects', () => {
  it('a blob GET redirected (307) to another origin: followed, without the Authorization header', async () => {
    const auth = `Basic ${Buffer.from('puller:s3cret-pw').toString('base64')}`;
    // The other origin serves the blob from the registry itself (as object storage would).
    const storage = await startOrigin((req, res) => {
      void fetch(`http://${REGISTRY}/v2/library/busybox/blobs/${fx.layer.digest}`).then(async (r) => {
        res.writeHead(r.status, { 'content-length': r.headers.get('content-length') ?? '' });
        res.end(Buffer.from(await r.arrayBuffer()));
      });
    });
    try {
      const p = await faulty(
        (url) => (url.endsWith(blobPath(fx.layer.digest)) ? { kind: 'redirect', location: `${storage.url}/bucket/blob?X-Amz-Signature=sig-123` } : undefined),
        { requireAuthorization: auth },
      );
      const { c, store, logs } = await client({ credentials: staticCredentials({ [p.host]: { username: 'puller', password: 's3cret-pw' } }) });
      await expectBusybox(c, store, p);
      expect(storage.received).toHaveLength(1);
      expect(storage.received[0]!.authorization).toBeUndefined();
      expect(p.seen.filter((r) => r.status !== 401).every((r) => r.authorization === auth)).toBe(true);
      expect(logs.join('\n')).not.toContain('s3cret-pw');
      expect(logs.join('\n')).not.toContain('sig-123');
    } finally {
      await storage.close();
    }
  });
});

describe('manifests', () => {
  const altered = (): Buffer => Buffer.from(fx.manifestBytes.toString().replace('{', '{ '));

  it('bytes that do not match the tag\'s Docker-Content-Digest: E_DIGEST_MISMATCH', async () => {
    const index = Buffer.from(fx.indexBytes.toString().replace('{', '{ '));
    const p = await faulty((url) =>
      url.endsWith('/manifests/latest') ? { kind: 'replace', body: index, headers: { 'content-type': fx.indexType, 'docker-content-digest': fx.indexDigest } } : undefined,
    );
    const { c, store } = await client();
    const err = await rejection(c.pull(busybox(p)));
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.message).toContain(busybox(p));
    expect(err.message).toMatch(/but the registry announced/);
    expect(await store.has(fx.indexDigest)).toBe(false);
  });

  it('pulled by digest, bytes that do not match the digest: E_DIGEST_MISMATCH', async () => {
    const p = await faulty((url) =>
      url.endsWith(`/manifests/${fx.manifestDigest}`)
        ? { kind: 'replace', body: altered(), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': fx.manifestDigest } }
        : undefined,
    );
    const { c } = await client();
    const ref = `${p.host}/library/busybox@${fx.manifestDigest}`;
    const err = await rejection(c.pull(ref));
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.message).toContain(ref);
    expect(err.message).toContain(`expected ${fx.manifestDigest}`);
    expect(err.message).toContain(sha256Digest(altered()));
    // Through the index too: the platform manifest is fetched by digest. The message names the
    // reference pulled, the digest the index gave and the digest of the bytes received.
    const viaTag = await rejection(c.pull(busybox(p)));
    expect(viaTag).toBeInstanceOf(DigestMismatchError);
    expect(viaTag.code).toBe('E_DIGEST_MISMATCH');
    expect(viaTag.message).toContain(busybox(p));
    expect(viaTag.message).toContain(`expected ${fx.manifestDigest}`);
    expect(viaTag.message).toContain(sha256Digest(altered()));
  });

  it('an oversized manifest (over 4 MiB), declared or streamed: E_MANIFEST_INVALID, and reading stops at the limit', async () => {
    const limit = 4 * 1024 * 1024;
    const chunk = 64 * 1024;
    // 64 MiB offered: a client that read on past the limit would take far more than it.
    const size = 64 * 1024 * 1024;
    for (const declare of [true, false]) {
      const p = await faulty((url) =>
        url.endsWith('/manifests/latest') ? { kind: 'flood', size, chunk, declare, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } } : undefined,
      );
      const { c } = await client();
      const err = await rejection(c.pull(busybox(p)));
      expect(err).toBeInstanceOf(ManifestInvalidError);
      expect(err.code).toBe('E_MANIFEST_INVALID');
      expect(err.message).toContain(busybox(p));
      expect(err.message).toMatch(/exceeds the 4194304-byte limit/);
      // Not retried: one GET.
      const gets = p.seen.filter((r) => r.method === 'GET' && r.url.endsWith('/manifests/latest'));
      expect(gets).toHaveLength(1);
      // Let the proxy notice the closed connection (it stops writing then).
      await new Promise((r) => setTimeout(r, 50));
      const sent = gets[0]!.sent;
      // Declared: refused from Content-Length alone, before reading the body.
      if (declare) expect(sent).toBeLessThanOrEqual(chunk);
      else {
        // Streamed: the client read up to the chunk crossing the limit and hung up; the proxy counts a
        // write as sent once the kernel took it, so one more chunk may have been on its way (measured:
        // exactly limit + 2 chunks, whatever the pace). Reading on would have taken up to 64 MiB.
        expect(sent).toBeGreaterThan(limit);
        expect(sent).toBeLessThanOrEqual(limit + 2 * chunk);
      }
      await p.close();
    }
  });

  it('an unknown manifest or config media type: E_MANIFEST_INVALID naming the type', async () => {
    const weird = '{"schemaVersion":2,"mediaType":"application/vnd.example.thing.v1+json"}';
    const helm = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.cncf.helm.config.v1+json', digest: fx.configDigest, size: 1 },
      layers: [],
    });
    const p = await faulty((url) => {
      if (url.endsWith('/manifests/weird')) return { kind: 'replace', body: weird, headers: { 'content-type': 'application/vnd.example.thing.v1+json' } };
      if (url.endsWith('/manifests/chart')) return { kind: 'replace', body: helm, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } };
      return undefined;
    });
    const { c } = await client();
    const e1 = await rejection(c.pull(`${p.host}/library/busybox:weird`));
    expect(e1).toBeInstanceOf(ManifestInvalidError);
    expect(e1.message).toContain(`${p.host}/library/busybox:weird`);
    expect(e1.message).toContain('unsupported manifest media type "application/vnd.example.thing.v1+json"');
    const e2 = await rejection(c.pull(`${p.host}/library/busybox:chart`));
    expect(e2).toBeInstanceOf(ManifestInvalidError);
    expect(e2.message).toContain(`${p.host}/library/busybox:chart`);
    expect(e2.message).toContain('application/vnd.cncf.helm.config.v1+json');
  });

  it('a manifest body cut short: fetched again', async () => {
    const p = await faulty(firstN(`/manifests/${fx.manifestDigest}`, 1, { kind: 'truncate', after: 100, mode: 'close' }));
    const { c, store, logs } = await client();
    await expectBusybox(c, store, p);
    expect(logs.some((l) => l.startsWith(`retrying manifest`))).toBe(true);
  });
});

describe('total deadline', () => {
  it('a layer dripped a byte every 50 ms (never idle for the 2 s idle timeout): E_REGISTRY_DEADLINE naming host, blob and STOWAGE_REGISTRY_DEADLINE; not retried, nothing kept', async () => {
    const p = await faulty((url) => (url.endsWith(blobPath(fx.layer.digest)) ? { kind: 'drip', every: 50, after: 1000 } : undefined));
    const { c, store } = await client({ deadlineMs: 1500 });
    const started = Date.now();
    const err = await rejection(c.pull(busybox(p)));
    const took = Date.now() - started;
    expect(err).toBeInstanceOf(RegistryDeadlineError);
    expect(err.code).toBe('E_REGISTRY_DEADLINE');
    expect((err as RegistryDeadlineError).host).toBe(p.host);
    expect((err as RegistryDeadlineError).deadlineMs).toBe(1500);
    expect(err.message).toContain(`blob ${fx.layer.digest} of ${busybox(p)}: ${p.host} did not finish within the 1.5 s deadline`);
    expect(err.message).toMatch(/KiB of the body received/);
    expect(err.message).toContain('STOWAGE_REGISTRY_DEADLINE=<seconds>');
    // The deadline ended it, not the 2 s idle timeout and not the proxy's 10 s bound on a drip.
    expect(took).toBeGreaterThanOrEqual(1400);
    expect(took).toBeLessThan(5_000);
    const gets = blobGets(p, fx.layer.digest);
    expect(gets).toHaveLength(1);
    expect(gets[0]!.sent).toBeGreaterThan(1000);
    expect(await store.has(fx.layer.digest)).toBe(false);
  });

  it('one deadline for all attempts: 503 with Retry-After: 1 on every attempt ends at the deadline, not after the 4 attempts', async () => {
    const p = await faulty((url) => (url.endsWith('/manifests/latest') ? { kind: 'status', status: 503, headers: { 'retry-after': '1' } } : undefined));
    const { c } = await client({ deadlineMs: 1500 });
    const started = Date.now();
    const err = await rejection(c.pull(busybox(p)));
    expect(Date.now() - started).toBeLessThan(1500);
    expect(err).toBeInstanceOf(RegistryDeadlineError);
    expect(err.message).toContain(`manifest ${busybox(p)}: ${p.host} did not finish within the 1.5 s deadline`);
    expect(err.message).toContain(`last problem: HTTP 503 from ${p.host}/v2/library/busybox/manifests/latest`);
    // 0 s: 503, wait 1 s; 1 s: 503, and another 1 s wait would end past the deadline.
    expect(api(p)).toHaveLength(2);
  });

  it('a dripping mirror runs out of its deadline and the origin serves the layer', async () => {
    const p = await faulty((url) => (url.endsWith(blobPath(fx.layer.digest)) ? { kind: 'drip', every: 50 } : undefined));
    const { c, store, logs } = await client({ deadlineMs: 1000, mirrors: { [REGISTRY]: [p.host] } });
    const img = await c.pull(`${REGISTRY}/library/busybox:latest`);
    expect(img.manifestDigest).toBe(fx.manifestDigest);
    expect(await store.has(fx.layer.digest)).toBe(true);
    expect(blobGets(p, fx.layer.digest)).toHaveLength(1);
    expect(logs.some((l) => l.startsWith(`mirror ${p.host} failed: blob ${fx.layer.digest}`) && l.includes('deadline'))).toBe(true);
  });
});
