/**
 * Credentials from Docker's client config ($DOCKER_CONFIG/config.json or
 * ~/.docker/config.json), so users who ran `docker login` need nothing else.
 *
 * Supports inline `auths` entries (`auth` = base64 "user:pass", or
 * `username`/`password`, `identitytoken`, `registrytoken`) and the
 * `credHelpers`/`credsStore` protocol (`docker-credential-<name> get`).
 * Secrets read here are only ever passed to the auth code; nothing in this
 * module logs or formats them.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { helperGet } from './cred-helper.js';

export interface Credentials {
  username?: string;
  password?: string;
  /** OAuth2 refresh token from `docker login` against an identity provider. */
  identityToken?: string;
  /** A bearer token to send to the registry as-is. */
  registryToken?: string;
}

/** Looks up credentials for a registry host as written in references (e.g. 'docker.io', 'localhost:5000'). */
export type CredentialSource = (registry: string) => Promise<Credentials | undefined>;

/** The key Docker files Docker Hub credentials under (in `auths`, and as a helper's ServerURL). */
export const DOCKER_HUB_CONFIG_KEY = 'https://index.docker.io/v1/';
const DOCKER_HUB_KEYS = [DOCKER_HUB_CONFIG_KEY, 'index.docker.io', 'docker.io', 'registry-1.docker.io'];

/** Docker's ConvertToHostname: drop the scheme and any path. */
export function configKeyToHost(key: string): string {
  let k = key.trim();
  if (k.startsWith('http://')) k = k.slice('http://'.length);
  else if (k.startsWith('https://')) k = k.slice('https://'.length);
  const slash = k.indexOf('/');
  return slash === -1 ? k : k.slice(0, slash);
}

/** The config key (and helper ServerURL) for a registry as written in references: Docker Hub's legacy URL, else the host. */
export function dockerConfigKey(registry: string): string {
  return candidateHosts(registry).length > 1 ? DOCKER_HUB_CONFIG_KEY : registry;
}

/** Hosts a config entry for `registry` may be filed under (Docker Hub has several names). */
export function candidateHosts(registry: string): string[] {
  return DOCKER_HUB_KEYS.map(configKeyToHost).includes(registry) ? ['index.docker.io', 'docker.io', 'registry-1.docker.io'] : [registry];
}

interface DockerConfigFile {
  auths: Map<string, Credentials>;
  credHelpers: Map<string, string>;
  credsStore?: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function parseDockerConfig(json: unknown): DockerConfigFile {
  const out: DockerConfigFile = { auths: new Map(), credHelpers: new Map() };
  if (!isRecord(json)) return out;
  if (isRecord(json['auths'])) {
    for (const [key, entry] of Object.entries(json['auths'])) {
      if (!isRecord(entry)) continue;
      const creds: Credentials = {};
      const auth = str(entry['auth']);
      if (auth !== undefined) {
        const decoded = Buffer.from(auth, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon > 0) {
          creds.username = decoded.slice(0, colon);
          creds.password = decoded.slice(colon + 1);
        }
      }
      const username = str(entry['username']);
      const password = str(entry['password']);
      if (username !== undefined) creds.username = username;
      if (password !== undefined) creds.password = password;
      const identityToken = str(entry['identitytoken']);
      if (identityToken !== undefined) creds.identityToken = identityToken;
      const registryToken = str(entry['registrytoken']);
      if (registryToken !== undefined) creds.registryToken = registryToken;
      if (Object.keys(creds).length > 0) out.auths.set(configKeyToHost(key), creds);
    }
  }
  if (isRecord(json['credHelpers'])) {
    for (const [key, helper] of Object.entries(json['credHelpers'])) {
      const h = str(helper);
      if (h !== undefined) out.credHelpers.set(configKeyToHost(key), h);
    }
  }
  const store = str(json['credsStore']);
  if (store !== undefined) out.credsStore = store;
  return out;
}

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env['DOCKER_CONFIG'] && env['DOCKER_CONFIG'] !== '' ? env['DOCKER_CONFIG'] : join(homedir(), '.docker');
  return join(dir, 'config.json');
}

/**
 * The default CredentialSource. The file is read once, on first use, and the
 * parsed result kept for the life of the source (one client).
 */
export function dockerConfigCredentials(opts: { path?: string } = {}): CredentialSource {
  let loaded: Promise<DockerConfigFile> | undefined;
  const load = (): Promise<DockerConfigFile> => {
    loaded ??= readFile(opts.path ?? dockerConfigPath(), 'utf8').then(
      (text) => {
        try {
          return parseDockerConfig(JSON.parse(text) as unknown);
        } catch {
          return parseDockerConfig(undefined);
        }
      },
      () => parseDockerConfig(undefined),
    );
    return loaded;
  };
  return async (registry) => {
    const cfg = await load();
    const hosts = candidateHosts(registry);
    const isHub = hosts.length > 1;
    for (const host of hosts) {
      const helper = cfg.credHelpers.get(host);
      if (helper !== undefined) return helperGet(helper, isHub ? DOCKER_HUB_CONFIG_KEY : host);
    }
    for (const host of hosts) {
      const c = cfg.auths.get(host);
      if (c !== undefined) return c;
    }
    if (cfg.credsStore !== undefined) return helperGet(cfg.credsStore, isHub ? DOCKER_HUB_CONFIG_KEY : registry);
    return undefined;
  };
}

/** A fixed map, keyed like config.json `auths`. Handy for tests and programmatic use. */
export function staticCredentials(map: Record<string, Credentials>): CredentialSource {
  const byHost = new Map(Object.entries(map).map(([k, v]) => [configKeyToHost(k), v] as const));
  return async (registry) => {
    for (const host of candidateHosts(registry)) {
      const c = byHost.get(host);
      if (c !== undefined) return c;
    }
    return undefined;
  };
}
