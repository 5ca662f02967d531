// The registry client's auth against real auth registries (test/lib/auth-registry.ts):
// Debian's docker-registry with token auth (our loopback token server signing JWTs
// the registry verifies) and with htpasswd. What goes where is read from the token
// server's and the registry proxy's request records: scopes per operation, anonymous
// tokens, Basic credentials only ever sent to the realm, token reuse until expiry,
// a new token after a 401, the OAuth2 refresh-token POST, and clear errors.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  ContentStore,
  RegistryAuthError,
  RegistryClient,
  staticCredentials,
  verifyLogin,
  type Credentials,
  type Descriptor,
  type ResolvedImage,
} from '@stowage/registry-client';
import { seedImage, startAuthRegistry, testEnv, type AuthRegistry } from '../lib/index.js';

const T = 120_000;
const ALICE = { user: 'alice', password: 'alice-Pw-3kq9Zr' };
const BOB = { user: 'bob', password: 'bob-Pw-77xLm' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let token: AuthRegistry;
let basic: AuthRegistry;
let scratch: string;

beforeAll(async () => {
  const fixtures = testEnv().registry;
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'stowage-auth-client-'));
  token = await startAuthRegistry({
    mode: 'token',
    users: { [ALICE.user]: ALICE.password, [BOB.user]: BOB.password },
    grants: {
      [ALICE.user]: { 'private/*': ['pull', 'push'], 'app/*': ['pull', 'push'], 'public/*': ['pull', 'push'] },
      [BOB.user]: { 'private/*': ['pull'] },
      '': { 'public/*': ['pull'] },
    },
    refreshTokens: true,
  });
  basic = await startAuthRegistry({ mode: 'htpasswd', users: { [BOB.user]: BOB.password } });
  await seedImage(token, `${fixtures}/library/busybox:latest`, 'private/base:latest', [ALICE.user, ALICE.password]);
  await seedImage(token, `${fixtures}/library/busybox:latest`, 'public/base:latest', [ALICE.user, ALICE.password]);
  await seedImage(basic, `${fixtures}/library/busybox:latest`, 'team/base:latest', [BOB.user, BOB.password]);
}, T);

afterAll(async () => {
  await token?.stop();
  await basic?.stop();
  if (scratch) await fs.rm(scratch, { recursive: true, force: true });
}, T);

beforeEach(() => {
  token?.reset();
  token?.setExpiry(300, 0);
  basic?.reset();
});

let n = 0;
let lastStore: ContentStore;
async function client(reg: AuthRegistry, creds: Credentials | undefined, logs: string[] = []): Promise<RegistryClient> {
  const store = await ContentStore.open(path.join(scratch, `store-${n++}`));
  lastStore = store;
  return new RegistryClient({
    store,
    platform: { os: 'linux', architecture: 'amd64' },
    credentials: staticCredentials(creds !== undefined ? { [reg.host]: creds } : {}),
    log: (l) => logs.push(l),
    retry: { attempts: 2, baseDelayMs: 5 },
  });
}

/** The descriptor of a pulled image's manifest, from the bytes in the store. */
async function manifestDescriptor(img: ResolvedImage): Promise<Descriptor> {
  const bytes = await lastStore.readBlob(img.manifestDigest);
  const mediaType = (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType ?? 'application/vnd.oci.image.manifest.v1+json';
  return { mediaType, digest: img.manifestDigest, size: bytes.byteLength };
}

const creds = (u: { user: string; password: string }): Credentials => ({ username: u.user, password: u.password });

describe('token auth (Docker Hub flow) against docker-registry 2.8', () => {
  test('a pull asks for repository:NAME:pull once, with Basic credentials sent only to the realm', async () => {
    const logs: string[] = [];
    const c = await client(token, creds(ALICE), logs);
    const img = await c.pull(`${token.host}/private/base:latest`);
    expect(img.manifest.layers.length).toBeGreaterThan(0);
    expect(token.tokenRequests).toHaveLength(1);
    const [t] = token.tokenRequests;
    expect(t).toMatchObject({ method: 'GET', scopes: ['repository:private/base:pull'], service: token.service, account: ALICE.user, authScheme: 'basic', user: ALICE.user });
    // The registry saw a Bearer token on every authorised request, never Basic.
    expect(token.requests.filter((r) => r.status === 200).length).toBeGreaterThan(2);
    expect(new Set(token.requests.map((r) => r.authScheme))).toEqual(new Set([undefined, 'bearer']));
    expect(logs.join('\n')).not.toContain(ALICE.password);
    for (const t of token.issued) expect(logs.join('\n')).not.toContain(t);
  }, T);

  test('without credentials: an anonymous token (no Authorization at the realm) for a public repository', async () => {
    const c = await client(token, undefined);
    await c.resolve(`${token.host}/public/base:latest`);
    expect(token.tokenRequests.map((t) => [t.authScheme, t.user, t.scopes])).toEqual([[undefined, '', ['repository:public/base:pull']]]);
  }, T);

  test('without credentials a private repository is denied with a message naming the registry and `stowage login`', async () => {
    const c = await client(token, undefined);
    const err = (await c.resolve(`${token.host}/private/base:latest`).catch((e: unknown) => e)) as RegistryAuthError;
    expect(err).toBeInstanceOf(RegistryAuthError);
    expect(err.code).toBe('E_REGISTRY_AUTH');
    expect(err.message).toContain(`${token.host} denied pull access to private/base without credentials`);
    expect(err.message).toContain(`stowage login ${token.host}`);
  }, T);

  test('a wrong password: the error names the registry and the token server, never the password', async () => {
    const wrong = 'wrong-Pw-Zz81q';
    const c = await client(token, { username: ALICE.user, password: wrong });
    const err = (await c.resolve(`${token.host}/private/base:latest`).catch((e: unknown) => e)) as RegistryAuthError;
    expect(err.code).toBe('E_REGISTRY_AUTH');
    expect(err.message).toContain(`rejected the credentials for ${token.host}`);
    expect(`${err.message}\n${err.stack}`).not.toContain(wrong);
  }, T);

  test('a push asks for pull,push plus pull on the mount source, and mounts the base layers (201)', async () => {
    const c = await client(token, creds(ALICE));
    const img = await c.pull(`${token.host}/private/base:latest`);
    token.reset();
    const manifest = await manifestDescriptor(img);
    const actions: string[] = [];
    await c.push(`${token.host}/app/mounted:v1`, { manifest, blobs: [img.manifest.config, ...img.manifest.layers] }, {
      mountFrom: ['private/base'],
      onProgress: (e) => actions.push(`${e.digest}=${e.action}`),
    });
    expect(token.tokenRequests.map((t) => t.scopes)).toEqual([['repository:app/mounted:pull,push', 'repository:private/base:pull']]);
    expect(token.tokenRequests[0]!.granted).toEqual(['repository:app/mounted:pull,push', 'repository:private/base:pull']);
    const mounts = token.requests.filter((r) => r.method === 'POST' && r.url.includes('mount=') && r.url.includes('from=private%2Fbase'));
    expect(mounts.map((r) => r.status)).toEqual(img.manifest.layers.concat(img.manifest.config).map(() => 201));
    expect(actions.sort()).toEqual([img.manifest.config, ...img.manifest.layers].map((d) => `${d.digest}=mounted`).sort());
  }, T);

  test('bob may pull but not push: the push is refused as access the credentials do not grant', async () => {
    const c = await client(token, creds(BOB));
    const img = await c.pull(`${token.host}/private/base:latest`);
    const err = (await c
      .push(`${token.host}/private/bobs:v1`, { manifest: await manifestDescriptor(img), blobs: [img.manifest.config] })
      .catch((e: unknown) => e)) as RegistryAuthError;
    expect(err.code).toBe('E_REGISTRY_AUTH');
    expect(err.message).toContain(`denied push access to private/bobs: the credentials for ${token.host} do not grant it`);
  }, T);

  test('a token is reused until expires_in runs out, then a new one is fetched', async () => {
    token.setExpiry(3, null);
    const c = await client(token, creds(ALICE));
    await c.resolve(`${token.host}/private/base:latest`);
    await c.resolve(`${token.host}/private/base:latest`);
    expect(token.tokenRequests).toHaveLength(1);
    await sleep(3200);
    await c.resolve(`${token.host}/private/base:latest`);
    expect(token.tokenRequests).toHaveLength(2);
  }, T);

  test('issued_at counts: a token issued 297 s ago with expires_in 300 is good for about 3 s only', async () => {
    token.setExpiry(300, 297);
    const c = await client(token, creds(ALICE));
    await c.resolve(`${token.host}/private/base:latest`);
    await c.resolve(`${token.host}/private/base:latest`);
    expect(token.tokenRequests).toHaveLength(1);
    await sleep(3200);
    await c.resolve(`${token.host}/private/base:latest`);
    expect(token.tokenRequests).toHaveLength(2);
  }, T);

  test('no expires_in: the token is reused (60 s by default)', async () => {
    token.setExpiry(null, null);
    const c = await client(token, creds(ALICE));
    for (let i = 0; i < 3; i++) await c.resolve(`${token.host}/private/base:latest`);
    expect(token.tokenRequests).toHaveLength(1);
  }, T);

  test('a token the registry refuses (401: its signing key is not trusted any more) is replaced once', async () => {
    token.signUntrusted(1);
    const c = await client(token, creds(ALICE));
    const img = await c.resolve(`${token.host}/private/base:latest`);
    expect(img.manifest.layers.length).toBeGreaterThan(0);
    expect(token.tokenRequests).toHaveLength(2);
    const statuses = token.requests.filter((r) => r.url.startsWith('/v2/private/base/manifests/')).map((r) => `${r.authScheme} ${r.status}`);
    expect(statuses.slice(0, 2)).toEqual(['bearer 401', 'bearer 200']);
  }, T);

  test('verifyLogin: token from the realm without a scope, offline_token; the refresh token replaces the password', async () => {
    const v = await verifyLogin({ registry: token.host, credentials: creds(ALICE) });
    expect(v.scheme).toBe('bearer');
    expect(v.credentials.password).toBeUndefined();
    expect(v.credentials.username).toBe(ALICE.user);
    expect(v.credentials.identityToken).toMatch(/^rt-/);
    expect(token.tokenRequests).toMatchObject([{ method: 'GET', scopes: [], authScheme: 'basic', offlineToken: true, status: 200 }]);
    // The identity token then works through the OAuth2 refresh-token POST.
    token.reset();
    const c = await client(token, v.credentials);
    await c.resolve(`${token.host}/private/base:latest`);
    expect(token.tokenRequests).toMatchObject([{ method: 'POST', grantType: 'refresh_token', scopes: ['repository:private/base:pull'], user: ALICE.user, status: 200 }]);
  }, T);

  test('verifyLogin with a wrong password fails naming the registry, without the password', async () => {
    const wrong = 'nope-Pw-4455';
    const err = (await verifyLogin({ registry: token.host, credentials: { username: ALICE.user, password: wrong } }).catch((e: unknown) => e)) as RegistryAuthError;
    expect(err.code).toBe('E_REGISTRY_AUTH');
    expect(err.message).toContain(`login to ${token.host}`);
    expect(err.message).not.toContain(wrong);
  }, T);
});

describe('htpasswd (Basic) against docker-registry 2.8', () => {
  test('Basic credentials go to the registry itself; no token server is involved', async () => {
    const c = await client(basic, creds(BOB));
    await c.pull(`${basic.host}/team/base:latest`);
    const authorised = basic.requests.filter((r) => r.status === 200);
    expect(authorised.length).toBeGreaterThan(2);
    expect(authorised.every((r) => r.authScheme === 'basic')).toBe(true);
  }, T);

  test('a wrong password: E_REGISTRY_AUTH naming the registry, never echoing the password', async () => {
    const wrong = 'bad-Basic-Pw-0099';
    const c = await client(basic, { username: BOB.user, password: wrong });
    const err = (await c.resolve(`${basic.host}/team/base:latest`).catch((e: unknown) => e)) as RegistryAuthError;
    expect(err.code).toBe('E_REGISTRY_AUTH');
    expect(err.message).toContain(`authentication failed at ${basic.host}: the credentials for ${basic.host} were rejected`);
    expect(`${err.message}\n${err.stack}`).not.toContain(wrong);
    expect(`${err.message}`).not.toContain(Buffer.from(`${BOB.user}:${wrong}`).toString('base64'));
  }, T);

  test('verifyLogin: Basic against /v2/', async () => {
    await expect(verifyLogin({ registry: basic.host, credentials: creds(BOB) })).resolves.toMatchObject({ scheme: 'basic', credentials: creds(BOB) });
    await expect(verifyLogin({ registry: basic.host, credentials: { username: BOB.user, password: 'x' } })).rejects.toMatchObject({
      code: 'E_REGISTRY_AUTH',
      message: `login to ${basic.host}: incorrect username or password (HTTP 401 from ${basic.host})`,
    });
  }, T);
});
