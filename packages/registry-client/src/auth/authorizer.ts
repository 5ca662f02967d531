/**
 * Decides the Authorization header for requests to one registry endpoint.
 *
 * The first request to a host pings /v2/ to learn its challenge (none, Basic
 * or Bearer). Later 401s update what we know (a registry may answer /v2/
 * anonymously but protect repositories, or demand a different scope), and
 * the caller retries once with fresh credentials.
 */
import { RegistryAuthError } from '../errors.js';
import type { Transport } from '../transport.js';
import { parseChallenges, type Challenge } from './challenge.js';
import type { CredentialSource, Credentials } from './docker-config.js';
import { basicAuthorization, fetchToken, TokenCache } from './token.js';

interface HostState {
  challenges: Challenge[];
}

export interface AuthContext {
  /** Endpoint host actually contacted (origin or mirror), e.g. '127.0.0.1:5000'. */
  host: string;
  /** Registry name credentials are looked up under (a mirror's own host for mirrors). */
  credentialHost: string;
  repository: string;
  /** For messages: the reference being worked on. */
  what: string;
  /**
   * Token scopes to ask for. Default `repository:<repository>:pull`; a push
   * asks for `repository:<repository>:pull,push` (plus `repository:<from>:pull`
   * for each repository it may mount from).
   */
  scopes?: string[];
}

export class Authorizer {
  private readonly hosts = new Map<string, Promise<HostState>>();
  private readonly tokens = new TokenCache();
  private readonly creds = new Map<string, Promise<Credentials | undefined>>();
  /** Extra scopes a registry asked for in a 401, per host + repository. */
  private readonly extraScopes = new Map<string, string[]>();
  /** The `error` of the last Bearer challenge per host + repository (e.g. insufficient_scope). */
  private readonly challengeErrors = new Map<string, string>();

  constructor(
    private readonly transport: Transport,
    private readonly credentials: CredentialSource,
  ) {}

  private credentialsFor(host: string): Promise<Credentials | undefined> {
    let p = this.creds.get(host);
    if (p === undefined) {
      p = this.credentials(host).catch(() => undefined);
      this.creds.set(host, p);
    }
    return p;
  }

  private state(ctx: AuthContext): Promise<HostState> {
    let p = this.hosts.get(ctx.host);
    if (p === undefined) {
      p = this.ping(ctx);
      this.hosts.set(ctx.host, p);
      // A failed ping (host down) must not be remembered: the next attempt should try again.
      const pending = p;
      pending.catch(() => {
        if (this.hosts.get(ctx.host) === pending) this.hosts.delete(ctx.host);
      });
    }
    return p;
  }

  private async ping(ctx: AuthContext): Promise<HostState> {
    const res = await this.transport.request(`${this.transport.baseUrl(ctx.host)}/v2/`, { what: `${ctx.what}: ping ${ctx.host}` });
    const challenges = res.status === 401 ? parseChallenges(res.headers.get('www-authenticate')) : [];
    await res.discard();
    return { challenges };
  }

  private scopes(ctx: AuthContext): string[] {
    const scopes = new Set(ctx.scopes ?? [`repository:${ctx.repository}:pull`]);
    for (const s of this.extraScopes.get(`${ctx.host}\n${ctx.repository}`) ?? []) scopes.add(s);
    return [...scopes];
  }

  private tokenKey(ctx: AuthContext, challenge: Challenge): string {
    return TokenCache.key(ctx.host, challenge.params['service'], this.scopes(ctx));
  }

  /** The Authorization header value for a request, or undefined for anonymous. */
  async header(ctx: AuthContext): Promise<string | undefined> {
    const { challenges } = await this.state(ctx);
    const creds = await this.credentialsFor(ctx.credentialHost);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer !== undefined) {
      if (creds?.registryToken !== undefined) return `Bearer ${creds.registryToken}`;
      const realm = bearer.params['realm'];
      if (realm === undefined || realm === '') throw new RegistryAuthError(`${ctx.what}: ${ctx.host} sent a Bearer challenge without a realm`);
      const scopes = this.scopes(ctx);
      const service = bearer.params['service'];
      const token = await this.tokens.get(this.tokenKey(ctx, bearer), () =>
        fetchToken(this.transport, {
          realm,
          ...(service !== undefined ? { service } : {}),
          scopes,
          ...(creds !== undefined ? { credentials: creds } : {}),
          what: ctx.what,
          registry: ctx.credentialHost,
        }),
      );
      return `Bearer ${token}`;
    }
    if (challenges.some((c) => c.scheme === 'basic')) return basicAuthorization(creds);
    return undefined;
  }

  /**
   * Records a 401's challenge. Returns whether retrying could help (i.e. the
   * challenge is one we can answer).
   */
  async unauthorized(ctx: AuthContext, wwwAuthenticate: string | null): Promise<boolean> {
    const challenges = parseChallenges(wwwAuthenticate);
    if (challenges.length === 0) return false;
    const old = await this.state(ctx).catch(() => undefined);
    const oldBearer = old?.challenges.find((c) => c.scheme === 'bearer');
    if (oldBearer !== undefined) this.tokens.invalidate(this.tokenKey(ctx, oldBearer));
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const key = `${ctx.host}\n${ctx.repository}`;
    const error = bearer?.params['error'];
    if (error !== undefined && error !== '') this.challengeErrors.set(key, error);
    else this.challengeErrors.delete(key);
    const scope = bearer?.params['scope'];
    if (scope !== undefined && scope !== '') {
      this.extraScopes.set(key, scope.split(' ').filter((s) => s !== ''));
    }
    this.hosts.set(ctx.host, Promise.resolve({ challenges }));
    return bearer !== undefined || challenges.some((c) => c.scheme === 'basic');
  }

  async hasCredentials(host: string): Promise<boolean> {
    return (await this.credentialsFor(host)) !== undefined;
  }

  /**
   * The error for a request still refused after the retry: whether we had no
   * credentials, had ones the registry rejected, or had ones without `access`
   * (pull, push) to the repository. Names the registry; never a secret.
   */
  async denied(ctx: AuthContext, access: string): Promise<RegistryAuthError> {
    const who = ctx.credentialHost;
    if (!(await this.hasCredentials(who))) {
      return new RegistryAuthError(`${ctx.what}: ${ctx.host} denied ${access} access to ${ctx.repository} without credentials (not logged in to ${who}: run \`stowage login ${who}\`)`);
    }
    if (this.challengeErrors.get(`${ctx.host}\n${ctx.repository}`) === 'insufficient_scope') {
      return new RegistryAuthError(`${ctx.what}: ${ctx.host} denied ${access} access to ${ctx.repository}: the credentials for ${who} do not grant it`);
    }
    return new RegistryAuthError(`${ctx.what}: authentication failed at ${ctx.host}: the credentials for ${who} were rejected`);
  }
}
