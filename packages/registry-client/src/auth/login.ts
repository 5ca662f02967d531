/**
 * Checking credentials against a registry before they are saved, as
 * `docker login` does: GET /v2/ to learn the challenge, then
 *   Bearer → a token from the realm with Basic credentials (no scope,
 *            `offline_token=true`), then GET /v2/ with that token;
 *   Basic  → GET /v2/ with the credentials;
 *   none   → nothing to check (the registry is open; docker saves anyway).
 * When the token server hands out a refresh token, that identity token is
 * what gets saved instead of the password (docker does the same).
 */
import { RegistryAuthError, RegistryRequestError } from '../errors.js';
import { apiHost, Transport, type RetryOptions } from '../transport.js';
import { parseChallenges } from './challenge.js';
import type { Credentials } from './docker-config.js';
import { basicAuthorization, fetchToken } from './token.js';

export interface VerifyLoginOptions {
  /** Registry as written in references ('docker.io', '127.0.0.1:5000'). */
  registry: string;
  credentials: Credentials;
  /** HOST[:PORT] to reach over plain HTTP (loopback always is). */
  insecureRegistries?: string[];
  retry?: RetryOptions;
}

export interface VerifiedLogin {
  /** What to save: the credentials given, or username + identity token when the registry issued one. */
  credentials: Credentials;
  /** How the registry authenticates. */
  scheme: 'bearer' | 'basic' | 'none';
}

export async function verifyLogin(opts: VerifyLoginOptions): Promise<VerifiedLogin> {
  const { registry, credentials } = opts;
  const transport = new Transport({ insecureRegistries: opts.insecureRegistries ?? [], ...(opts.retry !== undefined ? { retry: opts.retry } : {}) });
  const what = `login to ${registry}`;
  const url = `${transport.baseUrl(registry)}/v2/`;
  const host = apiHost(registry);
  const ping = await transport.request(url, { what });
  await ping.discard();
  if (ping.status === 200) return { credentials, scheme: 'none' };
  if (ping.status !== 401) throw new RegistryRequestError(ping.status, `${what}: GET /v2/ answered HTTP ${ping.status}; is ${host} a registry?`);
  const challenges = parseChallenges(ping.headers.get('www-authenticate'));

  const check = async (authorization: string, rejected: string): Promise<void> => {
    const res = await transport.request(url, { headers: { authorization }, what });
    await res.discard();
    if (res.status === 200) return;
    if (res.status === 401 || res.status === 403) throw new RegistryAuthError(`${what}: ${rejected} (HTTP ${res.status} from ${host})`);
    throw new RegistryRequestError(res.status, `${what}: GET /v2/ answered HTTP ${res.status}`);
  };

  const bearer = challenges.find((c) => c.scheme === 'bearer');
  if (bearer !== undefined) {
    const realm = bearer.params['realm'];
    if (realm === undefined || realm === '') throw new RegistryAuthError(`${what}: ${host} sent a Bearer challenge without a realm`);
    const service = bearer.params['service'];
    const token = await fetchToken(transport, { realm, ...(service !== undefined ? { service } : {}), scopes: [], credentials, what, registry, offline: true });
    await check(`Bearer ${token.token}`, 'the registry refused the token its token server issued');
    const saved: Credentials =
      token.refreshToken !== undefined
        ? { ...(credentials.username !== undefined ? { username: credentials.username } : {}), identityToken: token.refreshToken }
        : credentials;
    return { credentials: saved, scheme: 'bearer' };
  }
  if (challenges.some((c) => c.scheme === 'basic')) {
    const basic = basicAuthorization(credentials);
    if (basic === undefined) throw new RegistryAuthError(`${what}: ${host} wants a username and password`);
    await check(basic, 'incorrect username or password');
    return { credentials, scheme: 'basic' };
  }
  throw new RegistryAuthError(`${what}: ${host} asks for an authentication scheme stowage does not support (${challenges.map((c) => c.scheme).join(', ') || 'none given'})`);
}
