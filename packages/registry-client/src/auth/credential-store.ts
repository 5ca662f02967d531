/**
 * Saving and removing credentials the way `docker login` / `docker logout`
 * do, so that docker, buildx, skopeo and stowage all see the same logins.
 *
 * Where they go, first match wins:
 *   credHelpers[registry] → `docker-credential-<helper> store|erase`
 *   credsStore            → `docker-credential-<store> store|erase`
 *   otherwise             → `auths[key].auth` = base64("user:password") in config.json
 * The key is the registry host, or `https://index.docker.io/v1/` for Docker
 * Hub. With a helper, config.json still gets an empty `auths[key]` entry, as
 * docker writes, recording that a login exists without holding it.
 */
import { CredentialStoreError } from '../errors.js';
import { readConfigObject, writeConfigObject, type ConfigObject } from './config-file.js';
import { helperErase, helperStore, isValidHelperName } from './cred-helper.js';
import { candidateHosts, configKeyToHost, dockerConfigKey, dockerConfigPath, type Credentials } from './docker-config.js';

export interface CredentialStoreOptions {
  /** config.json to use; default `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
  path?: string;
}

/** Where a registry's credentials live: config.json itself, or a helper. */
export type CredentialLocation = { kind: 'file'; path: string } | { kind: 'helper'; helper: string; path: string };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function helperFor(config: ConfigObject, registry: string, path: string): string | undefined {
  const hosts = candidateHosts(registry);
  const helpers = config['credHelpers'];
  if (isRecord(helpers)) {
    for (const [key, name] of Object.entries(helpers)) {
      if (typeof name === 'string' && name !== '' && hosts.includes(configKeyToHost(key))) return checked(name, path);
    }
  }
  const store = config['credsStore'];
  return typeof store === 'string' && store !== '' ? checked(store, path) : undefined;
}

function checked(helper: string, path: string): string {
  if (!isValidHelperName(helper)) throw new CredentialStoreError(`${path}: invalid credential helper name "${helper.slice(0, 60)}"`);
  return helper;
}

/** Where `registry`'s credentials are (or would be) kept, per the config file. */
export async function credentialLocation(registry: string, opts: CredentialStoreOptions = {}): Promise<CredentialLocation> {
  const path = opts.path ?? dockerConfigPath();
  const helper = helperFor(await readConfigObject(path), registry, path);
  return helper !== undefined ? { kind: 'helper', helper, path } : { kind: 'file', path };
}

/** Removes every `auths` key naming `registry` (`host`, `http://host/v2/`, Docker Hub's aliases…). Returns whether one held credentials. */
function dropAuths(auths: Record<string, unknown>, registry: string): boolean {
  const hosts = candidateHosts(registry);
  let hadCredentials = false;
  for (const key of Object.keys(auths)) {
    if (!hosts.includes(configKeyToHost(key))) continue;
    const entry = auths[key];
    if (isRecord(entry) && ['auth', 'password', 'identitytoken', 'registrytoken'].some((f) => typeof entry[f] === 'string' && entry[f] !== '')) hadCredentials = true;
    delete auths[key];
  }
  return hadCredentials;
}

function authsOf(config: ConfigObject): Record<string, unknown> {
  const auths = config['auths'];
  if (isRecord(auths)) return auths;
  const fresh: Record<string, unknown> = {};
  config['auths'] = fresh;
  return fresh;
}

/**
 * Saves credentials for `registry` (as written in references, e.g. 'docker.io'
 * or '127.0.0.1:5000'). An identity token is stored instead of the password
 * when there is one, as docker does.
 */
export async function storeCredentials(registry: string, creds: Credentials, opts: CredentialStoreOptions = {}): Promise<CredentialLocation> {
  const path = opts.path ?? dockerConfigPath();
  const config = await readConfigObject(path);
  const key = dockerConfigKey(registry);
  const helper = helperFor(config, registry, path);
  if (helper !== undefined) await helperStore(helper, key, creds);
  const auths = authsOf(config);
  dropAuths(auths, registry);
  if (helper !== undefined) {
    auths[key] = {};
  } else {
    const username = creds.username ?? '';
    const entry: Record<string, string> = {};
    if (creds.identityToken !== undefined) {
      entry['auth'] = Buffer.from(`${username}:`, 'utf8').toString('base64');
      entry['identitytoken'] = creds.identityToken;
    } else {
      if (creds.password === undefined || creds.password === '') throw new CredentialStoreError(`no password to store for ${registry}`);
      entry['auth'] = Buffer.from(`${username}:${creds.password}`, 'utf8').toString('base64');
    }
    auths[key] = entry;
  }
  await writeConfigObject(path, config);
  return helper !== undefined ? { kind: 'helper', helper, path } : { kind: 'file', path };
}

/**
 * Removes `registry`'s credentials from the helper (if one is configured) and
 * from config.json. Returns whether there were any. A failing helper does not
 * stop config.json from being cleaned; its error is thrown afterwards.
 */
export async function eraseCredentials(registry: string, opts: CredentialStoreOptions = {}): Promise<{ erased: boolean; location: CredentialLocation }> {
  const path = opts.path ?? dockerConfigPath();
  const config = await readConfigObject(path);
  const helper = helperFor(config, registry, path);
  let erased = false;
  let helperError: unknown;
  if (helper !== undefined) {
    try {
      erased = await helperErase(helper, dockerConfigKey(registry));
    } catch (err) {
      helperError = err; // still clean config.json, then report
    }
  }
  const auths = config['auths'];
  if (isRecord(auths)) {
    const before = Object.keys(auths).length;
    if (dropAuths(auths, registry)) erased = true;
    if (Object.keys(auths).length !== before) await writeConfigObject(path, config);
  }
  if (helperError !== undefined) throw helperError;
  return { erased, location: helper !== undefined ? { kind: 'helper', helper, path } : { kind: 'file', path } };
}
