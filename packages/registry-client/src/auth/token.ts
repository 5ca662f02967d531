/**
 * Docker registry token auth: exchanging a Bearer challenge for a token at
 * the realm, and caching tokens per registry + service + scope until they
 * expire. Tokens and credentials are never formatted into messages or logs.
 */
import { RegistryAuthError } from '../errors.js';
import { describeUrl, type Transport } from '../transport.js';
import type { Credentials } from './docker-config.js';

/** Docker's spec: a token without expires_in is valid for 60 s. */
const DEFAULT_EXPIRES_IN_S = 60;
/**
 * Refresh a little early so a token never expires between check and use:
 * 5 s, or a tenth of the time the token had left when it arrived if that is
 * less (a short-lived token must still be reused for most of its life).
 */
const EXPIRY_SKEW_MS = 5_000;
const TOKEN_RESPONSE_LIMIT = 1 << 20;
const CLIENT_ID = 'stowage';

export interface TokenRequest {
  realm: string;
  service?: string;
  scopes: string[];
  credentials?: Credentials;
  /** What the token is for, for error messages (e.g. the reference). */
  what: string;
  /** The registry the token is for, for error messages. */
  registry?: string;
  /**
   * Ask for a refresh token too (`offline_token=true`, as `docker login`
   * does); the answer's `refresh_token` is returned as `refreshToken`.
   */
  offline?: boolean;
}

export interface Token {
  token: string;
  expiresAt: number;
  /** When to stop reusing the token (a little before expiresAt). */
  refreshAt: number;
  /** OAuth2 refresh token, when the server sent one. */
  refreshToken?: string;
}

function basicHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

export function basicAuthorization(c: Credentials | undefined): string | undefined {
  return c?.username !== undefined && c.password !== undefined ? basicHeader(c.username, c.password) : undefined;
}

function realmUrl(realm: string, what: string): URL {
  let u: URL;
  try {
    u = new URL(realm);
  } catch {
    throw new RegistryAuthError(`${what}: token realm is not a valid URL`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new RegistryAuthError(`${what}: token realm must be http(s)`);
  return u;
}

/** Exported for tests. */
export function parseTokenResponse(text: string, what: string, now: number): Token {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new RegistryAuthError(`${what}: token endpoint returned invalid JSON`);
  }
  if (typeof json !== 'object' || json === null) throw new RegistryAuthError(`${what}: token endpoint returned no token`);
  const o = json as Record<string, unknown>;
  const token = typeof o['token'] === 'string' && o['token'] !== '' ? o['token'] : o['access_token'];
  if (typeof token !== 'string' || token === '') throw new RegistryAuthError(`${what}: token endpoint returned no token`);
  const expiresIn = typeof o['expires_in'] === 'number' && o['expires_in'] > 0 ? o['expires_in'] : DEFAULT_EXPIRES_IN_S;
  let issuedAt = now;
  if (typeof o['issued_at'] === 'string') {
    const t = Date.parse(o['issued_at']);
    // Only trust issued_at when it is plausible; clock skew must not make a fresh token look expired.
    if (!Number.isNaN(t) && t <= now && now - t < expiresIn * 1000) issuedAt = t;
  }
  const expiresAt = issuedAt + expiresIn * 1000;
  const skew = Math.min(EXPIRY_SKEW_MS, Math.max(0, expiresAt - now) / 10);
  const out: Token = { token, expiresAt, refreshAt: expiresAt - skew };
  if (typeof o['refresh_token'] === 'string' && o['refresh_token'] !== '') out.refreshToken = o['refresh_token'];
  return out;
}

/** Names the registry whose credentials a token server refused, without repeating the reference. */
function refused(req: TokenRequest, url: string, status: number, oauth: boolean, sentCredentials: boolean): RegistryAuthError {
  const server = `${oauth ? 'OAuth token' : 'token'} server ${describeUrl(url)}`;
  if (status === 401 && sentCredentials) {
    return new RegistryAuthError(`${req.what}: the ${server} rejected the credentials${req.registry !== undefined ? ` for ${req.registry}` : ''} (HTTP 401)`);
  }
  return new RegistryAuthError(`${req.what}: ${oauth ? 'OAuth ' : ''}token request to ${describeUrl(url)} failed with HTTP ${status}`);
}

async function getToken(transport: Transport, req: TokenRequest): Promise<Token> {
  const u = realmUrl(req.realm, req.what);
  if (req.service !== undefined) u.searchParams.set('service', req.service);
  for (const s of req.scopes) u.searchParams.append('scope', s);
  const headers: Record<string, string> = { accept: 'application/json' };
  const basic = basicAuthorization(req.credentials);
  if (basic !== undefined) headers['authorization'] = basic;
  if (req.credentials?.username !== undefined) u.searchParams.set('account', req.credentials.username);
  if (req.offline === true) {
    u.searchParams.set('offline_token', 'true');
    u.searchParams.set('client_id', CLIENT_ID);
  }
  const res = await transport.request(u.toString(), { headers, what: `token for ${req.what}` });
  if (res.status !== 200) {
    await res.discard();
    throw refused(req, u.toString(), res.status, false, basic !== undefined);
  }
  return parseTokenResponse(await res.text(TOKEN_RESPONSE_LIMIT), req.what, Date.now());
}

/**
 * OAuth2 refresh-token grant (what `docker login` stores as identitytoken).
 * Returns undefined when the server does not speak it, so the caller can
 * fall back to the GET flow, as Docker and containerd do.
 */
async function postOAuthToken(transport: Transport, req: TokenRequest, refreshToken: string): Promise<Token | undefined> {
  const u = realmUrl(req.realm, req.what);
  const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: CLIENT_ID });
  if (req.service !== undefined) form.set('service', req.service);
  if (req.scopes.length > 0) form.set('scope', req.scopes.join(' '));
  if (req.offline === true) form.set('access_type', 'offline');
  const res = await transport.request(u.toString(), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', accept: 'application/json' },
    body: form.toString(),
    what: `token for ${req.what}`,
  });
  if (res.status === 404 || res.status === 405 || res.status === 401) {
    await res.discard();
    return undefined;
  }
  if (res.status !== 200) {
    await res.discard();
    throw refused(req, u.toString(), res.status, true, true);
  }
  const t = parseTokenResponse(await res.text(TOKEN_RESPONSE_LIMIT), req.what, Date.now());
  // A server that sends no new refresh token leaves the one we used valid.
  t.refreshToken ??= refreshToken;
  return t;
}

export async function fetchToken(transport: Transport, req: TokenRequest): Promise<Token> {
  const refresh = req.credentials?.identityToken;
  if (refresh !== undefined) {
    const t = await postOAuthToken(transport, req, refresh);
    if (t !== undefined) return t;
    // GET fallback: with an identity token the "password" is the token itself.
    const username = req.credentials?.username ?? CLIENT_ID;
    return getToken(transport, { ...req, credentials: { username, password: refresh } });
  }
  return getToken(transport, req);
}

/**
 * Tokens keyed by registry host + service + scope. Concurrent requests for
 * the same key share one in-flight fetch, so a parallel pull of many layers
 * asks the token server once.
 */
export class TokenCache {
  private readonly tokens = new Map<string, Token>();
  private readonly inflight = new Map<string, Promise<Token>>();

  static key(host: string, service: string | undefined, scopes: string[]): string {
    return `${host}\n${service ?? ''}\n${[...scopes].sort().join(' ')}`;
  }

  async get(key: string, fetcher: () => Promise<Token>): Promise<string> {
    const cached = this.tokens.get(key);
    if (cached !== undefined && Date.now() < cached.refreshAt) return cached.token;
    let p = this.inflight.get(key);
    if (p === undefined) {
      p = fetcher().finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    const t = await p;
    this.tokens.set(key, t);
    return t.token;
  }

  invalidate(key: string): void {
    this.tokens.delete(key);
  }
}
