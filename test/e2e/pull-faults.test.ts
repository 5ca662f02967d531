// Registry faults met by the CLI itself, run as the unprivileged user with its
// default retry settings: `stowage pull` through the fault proxy of the
// registry client's tests (packages/registry-client/test/helpers, loaded from
// its compiled output at run time, so both suites share one proxy). The
// client's own suite covers every fault in detail; this one shows the same
// outcomes end to end: resumed or retried pulls give the undisturbed digest,
// refused ones say which reference and what went wrong, credentials do not
// follow a redirect to another origin, and the store never keeps a bad blob.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { corruptBlobs, makeWorkDir, run, runStowage, skopeoInspectRegistry, testEnv, type WorkDir } from '../lib/index.js';

const T = 300_000;

// The parts of fault-proxy.ts this file uses (it is imported untyped: another project's test output).
type Fault =
  | { kind: 'status'; status: number; headers?: Record<string, string> }
  | { kind: 'truncate'; after: number; mode: 'close' | 'clean' }
  | { kind: 'reset'; after: number }
  | { kind: 'corrupt'; at: number }
  | { kind: 'redirect'; location: string }
  | { kind: 'replace'; body: Buffer | string; headers: Record<string, string> }
  | { kind: 'drip'; every: number; after?: number };
interface Seen { method: string; url: string; range?: string; status?: number; fault?: string }
interface FaultProxy { host: string; seen: Seen[]; close(): Promise<void> }
interface ProxyModule {
  startFaultProxy(opts: { target: string; fault?: (req: IncomingMessage, seen: Seen[]) => Fault | undefined; requireAuthorization?: string }): Promise<FaultProxy>;
  startOrigin(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; received: IncomingMessage['headers'][]; close(): Promise<void> }>;
}

const REPO = 'library/busybox';

describe('registry faults, end to end (stowage pull as the user)', () => {
  let proxyModule: ProxyModule;
  let work: WorkDir;
  let layer: string; // the host platform's layer digest
  let expected: string; // what an undisturbed pull prints: NAME@DIGEST's digest
  const proxies: FaultProxy[] = [];

  beforeAll(async () => {
    const file = path.join(testEnv().repoRoot, 'packages', 'registry-client', 'dist', 'test', 'helpers', 'fault-proxy.js');
    proxyModule = (await import(pathToFileURL(file).href)) as ProxyModule;
    work = await makeWorkDir();
    layer = ((await skopeoInspectRegistry(`${REPO}:latest`)).Layers as string[]).at(-1)!;
    const r = await pull(path.join(work.base, 'undisturbed'), `${testEnv().registry}/${REPO}`);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    expected = digestOf(r.stdout);
  }, T);
  afterAll(async () => {
    for (const p of proxies) await p.close();
    await work?.rm();
  }, T);

  const pull = (root: string, ref: string, env: Record<string, string> = {}) =>
    runStowage(['pull', '--root', root, ref], { cwd: work.dir, timeoutMs: T, env });
  const digestOf = (stdout: string) => /@(sha256:[0-9a-f]{64})\s*$/.exec(stdout)?.[1] ?? `no digest in ${JSON.stringify(stdout)}`;
  const isLayerGet = (req: IncomingMessage) => req.method === 'GET' && (req.url ?? '').endsWith(`/blobs/${layer}`);
  const proxy = async (fault: (req: IncomingMessage, seen: Seen[]) => Fault | undefined, requireAuthorization?: string) => {
    const p = await proxyModule.startFaultProxy({ target: `http://${testEnv().registry}`, fault, ...(requireAuthorization ? { requireAuthorization } : {}) });
    proxies.push(p);
    return p;
  };
  /** A fresh --root for one case; afterwards every blob in it must hash to its name and no partial download may remain. */
  const freshRoot = async (name: string) => path.join(work.base, `root-${name}`);
  const expectConsistent = async (root: string) => {
    expect(await corruptBlobs(root)).toEqual([]);
    expect(await readdir(path.join(root, 'content', 'ingest')).catch(() => [])).toEqual([]);
  };

  test.each([
    ['closed', { kind: 'truncate', after: 300_000, mode: 'close' } as Fault],
    ['reset', { kind: 'reset', after: 300_000 } as Fault],
  ])('connection %s mid-layer: resumed with Range from where it broke off; the undisturbed digest', async (name, fault) => {
    let cut = false;
    const p = await proxy((req) => {
      if (!isLayerGet(req) || cut) return undefined;
      cut = true;
      return fault;
    });
    const root = await freshRoot(name);
    const r = await pull(root, `${p.host}/${REPO}`);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(digestOf(r.stdout)).toBe(expected);
    const layerGets = p.seen.filter((s) => s.url.endsWith(`/blobs/${layer}`));
    expect(layerGets[0]).toMatchObject({ fault: fault.kind });
    expect(layerGets[1]).toMatchObject({ range: expect.stringMatching(/^bytes=[1-9]\d*-$/), status: 206 });
    expect(Number(/=(\d+)-/.exec(layerGets[1]!.range!)![1])).toBeLessThanOrEqual(300_000);
    await expectConsistent(root);
  }, T);

  test('503, 502, then 429 with Retry-After: 1 on the manifest: retried, waited, pulled', async () => {
    const answers: Fault[] = [
      { kind: 'status', status: 503 },
      { kind: 'status', status: 502 },
      { kind: 'status', status: 429, headers: { 'retry-after': '1' } },
    ];
    const p = await proxy((req) => (req.method === 'GET' && /\/manifests\/latest$/.test(req.url ?? '') ? answers.shift() : undefined));
    const root = await freshRoot('retry');
    const started = Date.now();
    const r = await pull(root, `${p.host}/${REPO}`);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(digestOf(r.stdout)).toBe(expected);
    expect(p.seen.filter((s) => /\/manifests\/latest$/.test(s.url)).map((s) => s.status)).toEqual([503, 502, 429, 200]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    await expectConsistent(root);
  }, T);

  test('every attempt alters a byte of the layer: refused, naming the reference and the digest; nothing kept', async () => {
    const p = await proxy((req) => (isLayerGet(req) ? { kind: 'corrupt', at: 1000 } : undefined));
    const root = await freshRoot('corrupt');
    const r = await pull(root, `${p.host}/${REPO}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^error: blob ${layer} of ${p.host}/${REPO}:latest from ${p.host}: blob digest mismatch: expected ${layer}, got sha256:[0-9a-f]{64}$`, 'm'));
    expect(await readdir(path.join(root, 'content', 'blobs', 'sha256'))).not.toContain(layer.slice('sha256:'.length));
    await expectConsistent(root);
  }, T);

  test('a layer dripped a byte every 100 ms (never idle): STOWAGE_REGISTRY_DEADLINE=3 ends the pull, naming the blob, the host and the variable', async () => {
    const p = await proxy((req) => (isLayerGet(req) ? { kind: 'drip', every: 100, after: 1000 } : undefined));
    const root = await freshRoot('drip');
    const started = Date.now();
    const r = await pull(root, `${p.host}/${REPO}`, { STOWAGE_REGISTRY_DEADLINE: '3' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`^error: blob ${layer} of ${p.host}/${REPO}:latest: ${p.host} did not finish within the 3 s deadline for the whole request, retries included \\(.* of the body received\\)\\. .*STOWAGE_REGISTRY_DEADLINE=<seconds> allows longer$`, 'm'),
    );
    // Ended by the deadline: not by the idle timeout (60 s) nor the proxy's own bound on a drip (30 s).
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(p.seen.filter((s) => s.url.endsWith(`/blobs/${layer}`))).toHaveLength(1); // not retried
    expect(await readdir(path.join(root, 'content', 'blobs', 'sha256')).catch(() => [])).not.toContain(layer.slice('sha256:'.length));
    await expectConsistent(root);
  }, T);

  test('a tag whose manifest bytes do not match its Docker-Content-Digest: refused, naming the reference', async () => {
    const accept = 'application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';
    const upstream = await fetch(`http://${testEnv().registry}/v2/${REPO}/manifests/latest`, { headers: { accept } });
    const body = `${await upstream.text()}\n`; // one byte more: another digest
    const headers = { 'content-type': upstream.headers.get('content-type')!, 'docker-content-digest': upstream.headers.get('docker-content-digest')! };
    const p = await proxy((req) => (req.method === 'GET' && /\/manifests\/latest$/.test(req.url ?? '') ? { kind: 'replace', body, headers } : undefined));
    const root = await freshRoot('manifest');
    const r = await pull(root, `${p.host}/${REPO}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^error: manifest ${p.host}/${REPO}:latest: manifest from ${p.host} has digest sha256:[0-9a-f]{64}, but the registry announced ${headers['docker-content-digest']}$`, 'm'));
    expect(await readdir(path.join(root, 'content', 'blobs', 'sha256')).catch(() => [])).toEqual([]);
    await expectConsistent(root);
  }, T);

  test('a layer GET redirected to another origin: pulled, and the credentials stay with the registry', async () => {
    const password = `pw-${process.pid}-${Date.now()}`;
    const basic = `Basic ${Buffer.from(`alice:${password}`).toString('base64')}`;
    // The other origin serves the blob from the registry, as object storage would, without asking for credentials.
    const origin = await proxyModule.startOrigin((req, res) => {
      fetch(`http://${testEnv().registry}/v2/${REPO}/blobs/${layer}`).then(async (up) => {
        res.writeHead(up.status, { 'content-type': 'application/octet-stream' });
        res.end(Buffer.from(await up.arrayBuffer()));
      }, () => res.writeHead(502).end());
    });
    try {
      const p = await proxy((req) => (isLayerGet(req) ? { kind: 'redirect', location: `${origin.url}/storage/${layer}?X-Signature=abc` } : undefined), basic);
      // The user's Docker config holds the credentials for the proxy's host only.
      const dockerDir = path.join(work.base, 'docker-config');
      await mkdir(dockerDir, { recursive: true });
      await writeFile(path.join(dockerDir, 'config.json'), JSON.stringify({ auths: { [p.host]: { auth: Buffer.from(`alice:${password}`).toString('base64') } } }));
      await run(['chown', '-R', `${testEnv().uid}:${testEnv().gid}`, dockerDir]);
      const root = await freshRoot('redirect');
      const r = await pull(root, `${p.host}/${REPO}`, { DOCKER_CONFIG: dockerDir });
      expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
      expect(digestOf(r.stdout)).toBe(expected);
      expect(origin.received.length).toBeGreaterThan(0);
      for (const h of origin.received) expect(h.authorization).toBeUndefined();
      expect(p.seen.filter((s) => s.status === 307)).toHaveLength(1);
      expect(`${r.stdout}${r.stderr}`).not.toContain(password);
      expect(`${r.stdout}${r.stderr}`).not.toContain('X-Signature=abc');
      await expectConsistent(root);
    } finally {
      await origin.close();
    }
  }, T);
});
