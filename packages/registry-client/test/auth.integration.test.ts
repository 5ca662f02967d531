/**
 * Auth flows against a loopback front server that speaks the Docker token
 * protocol (or Basic) and proxies authorised requests to the real registry.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContentStore, RegistryAuthError, RegistryClient, type RegistryClientOptions } from '../src/index.js';
import { startProxy, type RunningServer } from './helpers/proxy.js';
import { pushImage, type PushedImage } from './helpers/push.js';
import { startRegistry, type RunningRegistry } from './helpers/registry.js';

const T = 20_000;
const it = (name: string, fn: () => Promise<void>): void => test(name, fn, T);

const USER = 'alice';
const PASSWORD = 's3cret-pw-Zq9';
const IDENTITY_TOKEN = 'refresh-tok-Xk42';
const BASIC = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');

let registry: RunningRegistry;
let image: PushedImage;
let root: string;
const servers: RunningServer[] = [];
const savedDockerConfig = process.env['DOCKER_CONFIG'];

beforeAll(async () => {
  registry = await startRegistry();
  image = await pushImage(registry.url, 'private/app', { tag: 'v1', architecture: 'amd64', fileContent: 'private bits' });
}, T);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await registry?.stop();
});

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-auth-'));
});
afterEach(async () => {
  if (savedDockerConfig === undefined) delete process.env['DOCKER_CONFIG'];
  else process.env['DOCKER_CONFIG'] = savedDockerConfig;
  await rm(root, { recursive: true, force: true });
});

interface TokenServerLog {
  tokenRequests: Array<{ method: string; query: URLSearchParams; authorization?: string; form?: URLSearchParams }>;
  issued: string[];
}

type Mode = 'anonymous' | 'basic-creds' | 'identity' | 'basic-challenge' | 'open-ping';

/** Front server: /token issues tokens per `mode`; /v2/* needs a valid token (or Basic). */
async function front(mode: Mode): Promise<RunningServer & TokenServerLog> {
  const log: TokenServerLog = { tokenRequests: [], issued: [] };
  let port = 0;
  const issue = (res: ServerResponse, field: 'token' | 'access_token'): true => {
    const t = `tok-${Math.random().toString(16).slice(2)}${Math.random().toString(16).slice(2)}`;
    log.issued.push(t);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ [field]: t, expires_in: 300, issued_at: new Date().toISOString() }));
    return true;
  };
  const deny = (res: ServerResponse, challenge: string): true => {
    res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' });
    res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
    return true;
  };
  const intercept = (req: IncomingMessage, res: ServerResponse, body: Buffer): boolean => {
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization;
    if (url.pathname === '/token') {
      const entry: TokenServerLog['tokenRequests'][number] = { method: req.method ?? '', query: url.searchParams, ...(auth ? { authorization: auth } : {}) };
      if (req.method === 'POST') entry.form = new URLSearchParams(body.toString());
      log.tokenRequests.push(entry);
      if (mode === 'identity') {
        if (req.method === 'POST' && entry.form?.get('grant_type') === 'refresh_token' && entry.form.get('refresh_token') === IDENTITY_TOKEN) {
          return issue(res, 'access_token');
        }
        res.writeHead(401);
        res.end();
        return true;
      }
      if (mode === 'basic-creds' && auth !== `Basic ${BASIC}`) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end('{"details":"incorrect username or password"}');
        return true;
      }
      return issue(res, 'token');
    }
    if (mode === 'basic-challenge') {
      return auth === `Basic ${BASIC}` ? false : deny(res, 'Basic realm="test registry"');
    }
    const bearer = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
    if (bearer !== undefined && log.issued.includes(bearer)) return false;
    if (mode === 'open-ping' && url.pathname === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
      return true;
    }
    const repo = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(url.pathname)?.[1];
    const scope = repo !== undefined ? `,scope="repository:${repo}:pull"` : '';
    return deny(res, `Bearer realm="http://127.0.0.1:${port}/token",service="test.registry"${scope}`);
  };
  const srv = await startProxy({ target: registry.url, intercept });
  port = srv.port;
  servers.push(srv);
  return Object.assign(srv, log);
}

async function makeClient(extra: Partial<RegistryClientOptions> = {}): Promise<{ c: RegistryClient; store: ContentStore; logs: string[] }> {
  const store = await ContentStore.open(join(root, 'content'));
  const logs: string[] = [];
  const c = new RegistryClient({ store, platform: { os: 'linux', architecture: 'amd64' }, log: (l) => logs.push(l), retry: { attempts: 2, baseDelayMs: 5 }, ...extra });
  return { c, store, logs };
}

async function dockerConfig(auths: Record<string, Record<string, string>>): Promise<void> {
  const dir = join(root, 'docker');
  await rm(dir, { recursive: true, force: true });
  await import('node:fs/promises').then((fs) => fs.mkdir(dir, { recursive: true }));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ auths }));
  process.env['DOCKER_CONFIG'] = dir;
}

function expectNoSecrets(texts: string[], secrets: string[]): void {
  const all = texts.join('\n');
  for (const s of secrets) expect(all).not.toContain(s);
}

it('anonymous bearer token flow, one token request for the whole pull', async () => {
  const f = await front('anonymous');
  await dockerConfig({}); // no credentials at all
  const { c, store, logs } = await makeClient();
  const img = await c.pull(`${f.host}/private/app:v1`);
  expect(img.manifestDigest).toBe(image.manifestDigest);
  expect(await store.has(image.layerDigest)).toBe(true);
  expect(f.tokenRequests).toHaveLength(1);
  const q = f.tokenRequests[0]?.query;
  expect(q?.get('service')).toBe('test.registry');
  expect(q?.getAll('scope')).toEqual(['repository:private/app:pull']);
  expect(f.tokenRequests[0]?.authorization).toBeUndefined();
  expectNoSecrets(logs, f.issued);
});

it('basic credentials from $DOCKER_CONFIG are sent to the token endpoint; nothing secret is logged', async () => {
  const f = await front('basic-creds');
  await dockerConfig({ [f.host]: { auth: BASIC } });
  const { c, store, logs } = await makeClient();
  await c.pull(`${f.host}/private/app:v1`);
  expect(await store.has(image.layerDigest)).toBe(true);
  expect(f.tokenRequests.map((r) => r.authorization)).toEqual([`Basic ${BASIC}`]);
  expect(f.tokenRequests[0]?.query.get('account')).toBe(USER);
  expect(logs.length).toBeGreaterThan(0);
  expectNoSecrets(logs, [PASSWORD, BASIC, ...f.issued]);
});

it('username/password entries with an http:// key work too', async () => {
  const f = await front('basic-creds');
  await dockerConfig({ [`http://${f.host}/v2/`]: { username: USER, password: PASSWORD } });
  const { c } = await makeClient();
  const img = await c.resolve(`${f.host}/private/app:v1`);
  expect(img.configDigest).toBe(image.configDigest);
});

it('wrong password → RegistryAuthError without the password in message or logs', async () => {
  const f = await front('basic-creds');
  const wrong = 'not-the-Password-77';
  await dockerConfig({ [f.host]: { auth: Buffer.from(`${USER}:${wrong}`).toString('base64') } });
  const { c, logs } = await makeClient();
  const err = await c.resolve(`${f.host}/private/app:v1`).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(RegistryAuthError);
  expect((err as RegistryAuthError).code).toBe('E_REGISTRY_AUTH');
  expect((err as Error).message).toContain(`${f.host}/private/app:v1`);
  expectNoSecrets([(err as Error).message, String((err as Error).stack), ...logs], [wrong, Buffer.from(`${USER}:${wrong}`).toString('base64')]);
});

it('no credentials where the token server needs them → auth error that says so', async () => {
  const f = await front('basic-creds');
  await dockerConfig({});
  const { c } = await makeClient();
  await expect(c.resolve(`${f.host}/private/app:v1`)).rejects.toMatchObject({ code: 'E_REGISTRY_AUTH' });
});

it('identitytoken → OAuth2 refresh_token POST', async () => {
  const f = await front('identity');
  await dockerConfig({ [f.host]: { identitytoken: IDENTITY_TOKEN } });
  const { c, logs } = await makeClient();
  const img = await c.pull(`${f.host}/private/app:v1`);
  expect(img.manifestDigest).toBe(image.manifestDigest);
  expect(f.tokenRequests[0]?.method).toBe('POST');
  expect(f.tokenRequests[0]?.form?.get('scope')).toBe('repository:private/app:pull');
  expect(f.tokenRequests[0]?.form?.get('service')).toBe('test.registry');
  expectNoSecrets(logs, [IDENTITY_TOKEN, ...f.issued]);
});

it('Basic challenge: basic credentials sent directly to the registry', async () => {
  const f = await front('basic-challenge');
  await dockerConfig({ [f.host]: { auth: BASIC } });
  const { c, store, logs } = await makeClient();
  await c.pull(`${f.host}/private/app:v1`);
  expect(await store.has(image.layerDigest)).toBe(true);
  expect(f.tokenRequests).toHaveLength(0);
  expect(f.seen.filter((r) => r.url !== '/v2/').every((r) => r.authorization === `Basic ${BASIC}`)).toBe(true);
  expectNoSecrets(logs, [PASSWORD, BASIC]);
});

it('a registry that answers /v2/ anonymously but challenges on the repository', async () => {
  const f = await front('open-ping');
  await dockerConfig({});
  const { c } = await makeClient();
  const img = await c.pull(`${f.host}/private/app:v1`);
  expect(img.manifestDigest).toBe(image.manifestDigest);
  expect(f.tokenRequests).toHaveLength(1);
  expect(f.tokenRequests[0]?.query.getAll('scope')).toEqual(['repository:private/app:pull']);
});

it('explicit credentials option overrides the docker config', async () => {
  const f = await front('basic-creds');
  await dockerConfig({});
  const { c } = await makeClient({ credentials: async (host) => (host === f.host ? { username: USER, password: PASSWORD } : undefined) });
  const img = await c.resolve(`${f.host}/private/app:v1`);
  expect(img.manifestDigest).toBe(image.manifestDigest);
});
