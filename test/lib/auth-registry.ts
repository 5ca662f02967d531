// A real Debian `docker-registry` (distribution 2.8) with authentication, on a
// free loopback port with its own storage under a temp dir:
//
//   token    — `auth.token`, as Docker Hub does it: the registry answers
//              `Bearer realm=…,service=…` and trusts JWTs from the token server
//              this fixture runs on loopback (node http). Users, passwords and
//              per-repository grants come from the options. Tokens are ES256
//              JWTs whose header carries the signing certificate (`x5c`); the
//              registry verifies that chain against `rootcertbundle`, the
//              self-signed certificate made here with the `openssl` CLI.
//              (x5c rather than `kid`: distribution 2.8 accepts both, but a kid
//              must be libtrust's private fingerprint format of the key, which
//              newer distribution releases no longer use; a chain is plain X.509.)
//   htpasswd — `auth.htpasswd`, Basic auth against a bcrypt file written with
//              `htpasswd -nBi` (apache2-utils; the password goes in on stdin).
//
// The registry is reached through a recording pass-through proxy, so tests can
// count requests, see their status (a 201 cross-repository mount) and check
// which Authorization scheme the client sent to the registry itself.
import { spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import fs from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import path from 'node:path';
import { run } from './proc.js';
import { scratchParent } from './workdir.js';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface AuthRegistryOptions {
  mode: 'token' | 'htpasswd';
  /** user → password. */
  users: Record<string, string>;
  /**
   * Token mode: user ('' = anonymous) → repository → actions it may have.
   * A repository ending in `/*` grants every repository under that prefix.
   */
  grants?: Record<string, Record<string, string[]>>;
  /** Token mode: `expires_in` of token responses (seconds); null leaves it out (clients assume 60). Default 300. */
  expiresIn?: number | null;
  /** Token mode: `issued_at` this many seconds in the past (default 0; null leaves it out). */
  issuedAgoS?: number | null;
  /** Token mode: hand out a `refresh_token` when asked with `offline_token=true`, and accept the OAuth2 POST. */
  refreshTokens?: boolean;
}

export interface TokenRequestRecord {
  method: 'GET' | 'POST';
  /** Scopes asked for, one per entry as the client sent them. */
  scopes: string[];
  service: string | undefined;
  account: string | undefined;
  /** Authorization scheme the client used ('basic' or none). */
  authScheme: string | undefined;
  grantType: string | undefined;
  offlineToken: boolean;
  /** The authenticated user ('' = anonymous), or undefined when refused. */
  user: string | undefined;
  status: number;
  /** What the token grants, e.g. `repository:app:pull,push`. */
  granted: string[];
}

export interface RegistryRequestRecord {
  method: string;
  /** Path and query, as sent. */
  url: string;
  status: number;
  /** Lowercased Authorization scheme sent to the registry ('bearer', 'basic') or undefined. */
  authScheme: string | undefined;
}

export interface AuthRegistry {
  mode: 'token' | 'htpasswd';
  /** `127.0.0.1:PORT`, what clients use. */
  host: string;
  /** Token mode: the realm and service the registry announces. */
  realm: string;
  service: string;
  /** Every request that reached the token server / the registry, in order. */
  tokenRequests: TokenRequestRecord[];
  requests: RegistryRequestRecord[];
  /** Every token and refresh token handed out (for leak checks). */
  issued: string[];
  /** The next `n` tokens are signed by a key the registry does not trust (a key rotation), so it answers 401. */
  signUntrusted(n: number): void;
  /** Changes `expires_in` / `issued_at` of later token responses. */
  setExpiry(expiresIn: number | null, issuedAgoS?: number | null): void;
  /** Forget the recorded requests. */
  reset(): void;
  /** The registry's own output (its access log included). */
  output(): string;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

interface SigningKey {
  key: KeyObject;
  /** DER of the certificate, base64 (the x5c form). */
  certB64: string;
  certPath: string;
}

/** A P-256 key and its self-signed certificate, made with the openssl CLI. */
async function makeSigningKey(dir: string, name: string): Promise<SigningKey> {
  const keyPath = path.join(dir, `${name}.key`);
  const certPath = path.join(dir, `${name}.crt`);
  const r = await run([
    'openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', `/CN=stowage test token issuer ${name}`,
  ]);
  if (r.code !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  const pem = await fs.readFile(certPath, 'utf8');
  const body = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem)?.[1];
  if (body === undefined) throw new Error(`cannot read ${certPath}`);
  return { key: createPrivateKey(await fs.readFile(keyPath)), certB64: body.replace(/\s+/g, ''), certPath };
}

function signJwt(key: SigningKey, claims: Record<string, unknown>): string {
  const header = { typ: 'JWT', alg: 'ES256', x5c: [key.certB64] };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  // JWS wants the raw r||s form of an ECDSA signature, not DER.
  const sig = sign('sha256', Buffer.from(input), { key: key.key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64url(sig)}`;
}

/** `type:name:actions` → parts; names never contain ':' but may contain '/'. */
function parseScope(scope: string): { type: string; name: string; actions: string[] } | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last <= first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter((a) => a !== '') };
}

function allowedActions(grants: Record<string, string[]>, repo: string): string[] {
  const out = new Set<string>();
  for (const [pattern, actions] of Object.entries(grants)) {
    const match = pattern.endsWith('/*') ? repo.startsWith(pattern.slice(0, -1)) : pattern === repo;
    if (match) for (const a of actions) out.add(a);
  }
  return [...out];
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      resolve(typeof addr === 'object' && addr !== null ? addr.port : 0);
    });
  });
}

function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

const ISSUER = 'stowage-test-issuer';
const SERVICE = 'stowage-test-registry';

export async function startAuthRegistry(opts: AuthRegistryOptions): Promise<AuthRegistry> {
  const dir = await fs.mkdtemp(path.join(scratchParent(), `stowage-auth-registry-${opts.mode}-`));
  const servers: http.Server[] = [];
  let child: ChildProcess | undefined;
  let out = '';
  const tokenRequests: TokenRequestRecord[] = [];
  const requests: RegistryRequestRecord[] = [];
  const issued: string[] = [];
  let expiresIn = opts.expiresIn === undefined ? 300 : opts.expiresIn;
  let issuedAgoS = opts.issuedAgoS === undefined ? 0 : opts.issuedAgoS;
  let untrusted = 0;
  const refreshTokens = new Map<string, string>(); // refresh token → user

  const stop = async (): Promise<void> => {
    await Promise.all(servers.map(close));
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child!.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child!.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    await fs.rm(dir, { recursive: true, force: true });
  };

  try {
    const registryPort = await freePort();
    let realm = '';
    const authConfig: string[] = [];
    if (opts.mode === 'token') {
      const trusted = await makeSigningKey(dir, 'trusted');
      const rogue = await makeSigningKey(dir, 'untrusted');
      const authenticate = (req: IncomingMessage): { user?: string; scheme?: string; refused: boolean } => {
        const h = req.headers.authorization;
        if (h === undefined) return { user: '', refused: false };
        const m = /^Basic\s+(.+)$/i.exec(h);
        if (m === null) return { scheme: h.split(' ')[0]?.toLowerCase(), refused: true };
        const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        const user = decoded.slice(0, colon);
        const ok = colon > 0 && Object.hasOwn(opts.users, user) && opts.users[user] === decoded.slice(colon + 1);
        return ok ? { user, scheme: 'basic', refused: false } : { scheme: 'basic', refused: true };
      };
      const issue = (user: string, scopes: string[]): { token: string; granted: string[] } => {
        const grants = opts.grants?.[user] ?? {};
        const access: Array<{ type: string; name: string; actions: string[] }> = [];
        for (const s of scopes) {
          const p = parseScope(s);
          if (p === undefined || p.type !== 'repository') continue;
          const allowed = allowedActions(grants, p.name);
          const actions = p.actions.filter((a) => allowed.includes(a) || allowed.includes('*'));
          access.push({ type: p.type, name: p.name, actions });
        }
        const now = Math.floor(Date.now() / 1000);
        const key = untrusted > 0 ? (untrusted--, rogue) : trusted;
        // The JWT itself lives at least as long as the registry's 60 s leeway, so only the client's bookkeeping decides reuse.
        const token = signJwt(key, {
          iss: ISSUER, sub: user, aud: SERVICE, exp: now + Math.max(expiresIn ?? 60, 60), nbf: now - 1, iat: now,
          jti: randomBytes(12).toString('hex'), access,
        });
        issued.push(token);
        return { token, granted: access.map((a) => `repository:${a.name}:${a.actions.join(',')}`) };
      };
      const timing = (): Record<string, unknown> => ({
        ...(expiresIn !== null ? { expires_in: expiresIn } : {}),
        ...(issuedAgoS !== null ? { issued_at: new Date(Date.now() - issuedAgoS * 1000).toISOString() } : {}),
      });
      const json = (res: ServerResponse, status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const tokenServer = http.createServer((req, res) => {
        void (async () => {
          const url = new URL(req.url ?? '/', 'http://x');
          const body = await readBody(req);
          if (url.pathname !== '/token') return json(res, 404, { details: 'not found' });
          if (req.method === 'POST') {
            const form = new URLSearchParams(body.toString('utf8'));
            const rec: TokenRequestRecord = {
              method: 'POST', scopes: (form.get('scope') ?? '').split(' ').filter((s) => s !== ''), service: form.get('service') ?? undefined,
              account: form.get('username') ?? undefined, authScheme: req.headers.authorization?.split(' ')[0]?.toLowerCase(),
              grantType: form.get('grant_type') ?? undefined, offlineToken: form.get('access_type') === 'offline', user: undefined, status: 401, granted: [],
            };
            tokenRequests.push(rec);
            if (!opts.refreshTokens) {
              rec.status = 404;
              return json(res, 404, { details: 'OAuth2 is not supported here' });
            }
            let user: string | undefined;
            if (rec.grantType === 'refresh_token') user = refreshTokens.get(form.get('refresh_token') ?? '');
            else if (rec.grantType === 'password') {
              const u = form.get('username') ?? '';
              if (Object.hasOwn(opts.users, u) && opts.users[u] === form.get('password')) user = u;
            }
            if (user === undefined) return json(res, 401, { error: 'invalid_grant' });
            const { token, granted } = issue(user, rec.scopes);
            Object.assign(rec, { user, status: 200, granted });
            const refresh = rec.offlineToken || rec.grantType === 'refresh_token' ? (form.get('refresh_token') ?? newRefresh(user)) : undefined;
            return json(res, 200, { access_token: token, scope: rec.scopes.join(' '), ...timing(), ...(refresh !== undefined ? { refresh_token: refresh } : {}) });
          }
          const auth = authenticate(req);
          const rec: TokenRequestRecord = {
            method: 'GET', scopes: url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter((s) => s !== ''),
            service: url.searchParams.get('service') ?? undefined, account: url.searchParams.get('account') ?? undefined,
            authScheme: auth.scheme, grantType: undefined, offlineToken: url.searchParams.get('offline_token') === 'true',
            user: auth.refused ? undefined : auth.user, status: 401, granted: [],
          };
          tokenRequests.push(rec);
          if (auth.refused || auth.user === undefined) return json(res, 401, { details: 'incorrect username or password' });
          const { token, granted } = issue(auth.user, rec.scopes);
          rec.status = 200;
          rec.granted = granted;
          const refresh = opts.refreshTokens && rec.offlineToken && auth.user !== '' ? newRefresh(auth.user) : undefined;
          json(res, 200, { token, access_token: token, ...timing(), ...(refresh !== undefined ? { refresh_token: refresh } : {}) });
        })().catch((err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        });
      });
      const newRefresh = (user: string): string => {
        const t = `rt-${randomBytes(16).toString('hex')}`;
        refreshTokens.set(t, user);
        issued.push(t);
        return t;
      };
      servers.push(tokenServer);
      const tokenPort = await listen(tokenServer);
      realm = `http://127.0.0.1:${tokenPort}/token`;
      authConfig.push('auth:', '  token:', `    realm: ${realm}`, `    service: ${SERVICE}`, `    issuer: ${ISSUER}`, `    rootcertbundle: ${trusted.certPath}`);
    } else {
      const lines: string[] = [];
      for (const [user, password] of Object.entries(opts.users)) {
        const r = await run(['htpasswd', '-nBi', user], { input: `${password}\n` });
        if (r.code !== 0) throw new Error(`htpasswd failed (is apache2-utils installed?): ${r.stderr}`);
        lines.push(r.stdout.trim());
      }
      await fs.writeFile(path.join(dir, 'htpasswd'), `${lines.join('\n')}\n`, { mode: 0o600 });
      authConfig.push('auth:', '  htpasswd:', '    realm: stowage-test', `    path: ${path.join(dir, 'htpasswd')}`);
    }
    const config = [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(dir, 'data')}`,
      'http:',
      `  addr: 127.0.0.1:${registryPort}`,
      '  secret: stowage-auth-test-secret',
      ...authConfig,
      '',
    ].join('\n');
    await fs.writeFile(path.join(dir, 'config.yml'), config);
    child = spawn(REGISTRY_BIN, ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));

    // The recording proxy: bytes pass through untouched, Host included, so the
    // registry's absolute Location headers point back at the proxy.
    const proxy = http.createServer((req, res) => {
      const rec: RegistryRequestRecord = { method: req.method ?? '', url: req.url ?? '', status: 0, authScheme: req.headers.authorization?.split(' ')[0]?.toLowerCase() };
      requests.push(rec);
      const upstream = http.request({ host: '127.0.0.1', port: registryPort, method: req.method, path: req.url, headers: req.headers }, (ures) => {
        rec.status = ures.statusCode ?? 0;
        res.writeHead(ures.statusCode ?? 502, ures.rawHeaders);
        ures.pipe(res);
      });
      upstream.on('error', (err) => {
        rec.status = 502;
        if (!res.headersSent) res.writeHead(502);
        res.end(String(err));
      });
      req.pipe(upstream);
    });
    servers.push(proxy);
    const port = await listen(proxy);
    const host = `127.0.0.1:${port}`;

    // Bounded wait for readiness: 100 × 100 ms; an auth registry answers /v2/ with 401.
    let ready = false;
    for (let i = 0; i < 100 && !ready; i++) {
      if (child.exitCode !== null) break;
      try {
        const r = await fetch(`http://127.0.0.1:${registryPort}/v2/`);
        await r.arrayBuffer();
        ready = r.status === 401;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (!ready) throw new Error(`docker-registry (${opts.mode}) did not start:\n${out}`);

    return {
      mode: opts.mode,
      host,
      realm,
      service: SERVICE,
      tokenRequests,
      requests,
      issued,
      signUntrusted: (n) => {
        untrusted = n;
      },
      setExpiry: (e, ago = 0) => {
        expiresIn = e;
        issuedAgoS = ago;
      },
      reset: () => {
        tokenRequests.length = 0;
        requests.length = 0;
      },
      output: () => out,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Copies an image into an auth registry with skopeo (`--dest-creds`), e.g.
 * `seedImage(reg, '127.0.0.1:5055/library/busybox:latest', 'private/base:latest', ['alice', 'pw'])`.
 */
export async function seedImage(reg: AuthRegistry, source: string, dest: string, creds: [string, string]): Promise<void> {
  const r = await run([
    'skopeo', 'copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false',
    '--dest-creds', `${creds[0]}:${creds[1]}`, `docker://${source}`, `docker://${reg.host}/${dest}`,
  ], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`skopeo copy ${source} → ${reg.host}/${dest} failed:\n${r.stderr}`);
}
