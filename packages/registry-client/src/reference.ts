/**
 * Image references, normalised exactly like Docker's
 * `reference.ParseNormalizedNamed` (github.com/distribution/reference),
 * plus the default `latest` tag that `docker pull` applies.
 */
import { parseDigest } from './digest.js';
import { InvalidReferenceError } from './errors.js';

export const DEFAULT_REGISTRY = 'docker.io';
const LEGACY_DEFAULT_REGISTRY = 'index.docker.io';
const OFFICIAL_REPO_PREFIX = 'library/';
const NAME_TOTAL_LENGTH_MAX = 255;

export interface Reference {
  /** 'docker.io' for Docker Hub. */
  registry: string;
  /** e.g. 'library/golang'. */
  repository: string;
  tag?: string;
  digest?: string;
  /** Fully qualified, e.g. docker.io/library/golang:1.21 */
  toString(): string;
  /** Docker's short form, e.g. golang:1.21 */
  familiar(): string;
}

// The grammar from distribution/reference's regexp.go, rebuilt piece by piece
// so each production can be checked against the spec.
const alphanumeric = '[a-z0-9]+';
const separator = '(?:[._]|__|[-]+)';
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`;
const remoteName = `${pathComponent}(?:/${pathComponent})*`;
const domainNameComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainName = `${domainNameComponent}(?:\\.${domainNameComponent})*`;
const ipv6address = '\\[(?:[a-fA-F0-9:]+)\\]';
const host = `(?:${domainName}|${ipv6address})`;
const domainAndPort = `${host}(?::[0-9]+)?`;
const tagPat = '[\\w][\\w.-]{0,127}';
const digestPat = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}';

const ANCHORED_REFERENCE = new RegExp(
  `^((?:${domainAndPort}/)?${remoteName})(?::(${tagPat}))?(?:@(${digestPat}))?$`,
);
const ANCHORED_DOMAIN = new RegExp(`^${domainAndPort}$`);
const ANCHORED_REMOTE_NAME = new RegExp(`^${remoteName}$`);
const ANCHORED_TAG = new RegExp(`^${tagPat}$`);
const ANCHORED_IDENTIFIER = /^[a-f0-9]{64}$/;

class ParsedReference implements Reference {
  constructor(
    readonly registry: string,
    readonly repository: string,
    readonly tag?: string,
    readonly digest?: string,
  ) {}

  toString(): string {
    return `${this.registry}/${this.repository}${this.suffix()}`;
  }

  /** Mirrors FamiliarString: drop docker.io/ and, for single-component names, library/. */
  familiar(): string {
    let name = `${this.registry}/${this.repository}`;
    if (this.registry === DEFAULT_REGISTRY) {
      name = this.repository;
      if (name.startsWith(OFFICIAL_REPO_PREFIX) && !name.slice(OFFICIAL_REPO_PREFIX.length).includes('/')) {
        name = name.slice(OFFICIAL_REPO_PREFIX.length);
      }
    }
    return `${name}${this.suffix()}`;
  }

  /** Repository without tag or digest, fully qualified. */
  name(): string {
    return `${this.registry}/${this.repository}`;
  }

  private suffix(): string {
    return `${this.tag !== undefined ? `:${this.tag}` : ''}${this.digest !== undefined ? `@${this.digest}` : ''}`;
  }
}

/**
 * Parses and normalises a reference. Throws InvalidReferenceError.
 * Applies the default tag `latest` when neither tag nor digest is given, and
 * keeps both when given `name:tag@digest` (the digest is what gets pulled).
 */
export function parseReference(s: string): Reference {
  if (typeof s !== 'string' || s === '') {
    throw new InvalidReferenceError('invalid reference format: repository name must have at least one component');
  }
  const shown = s.length > 300 ? `${s.slice(0, 297)}...` : s;
  if (ANCHORED_IDENTIFIER.test(s)) {
    throw new InvalidReferenceError(`invalid repository name (${shown}), cannot specify 64-byte hexadecimal strings`);
  }
  const { domain, remainder } = splitDockerDomain(s);

  // Docker checks case on the remote name itself (before any ':tag') so the
  // error is specific instead of a generic format error.
  const tagSep = remainder.indexOf(':');
  const remote = tagSep > -1 ? remainder.slice(0, tagSep) : remainder;
  const remoteOnly = remote.split('@')[0] ?? remote;
  if (remoteOnly.toLowerCase() !== remoteOnly) {
    throw new InvalidReferenceError(`invalid reference format: repository name (${remoteOnly}) must be lowercase`);
  }

  const full = `${domain}/${remainder}`;
  const m = ANCHORED_REFERENCE.exec(full);
  if (!m) throw new InvalidReferenceError(`invalid reference format: "${shown}"`);
  const name = m[1] ?? '';
  const tag = m[2];
  const digest = m[3];
  if (name.length > NAME_TOTAL_LENGTH_MAX) {
    throw new InvalidReferenceError(`invalid reference format: repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters ("${shown}")`);
  }
  if (digest !== undefined) {
    try {
      parseDigest(digest);
    } catch (err) {
      throw new InvalidReferenceError(`invalid reference "${shown}": ${(err as Error).message}`);
    }
  }
  const repository = name.slice(domain.length + 1);
  return new ParsedReference(domain, repository, tag === undefined && digest === undefined ? 'latest' : tag, digest);
}

/**
 * The first path component is a registry only if it looks like a host
 * (contains '.' or ':', is 'localhost', or has uppercase letters, which a
 * repository never may). Everything else is a Docker Hub repository.
 */
function splitDockerDomain(name: string): { domain: string; remainder: string } {
  const i = name.indexOf('/');
  let domain: string;
  let remainder: string;
  const first = i === -1 ? '' : name.slice(0, i);
  if (i === -1 || (!/[.:]/.test(first) && first !== 'localhost' && first.toLowerCase() === first)) {
    domain = DEFAULT_REGISTRY;
    remainder = name;
  } else {
    domain = first;
    remainder = name.slice(i + 1);
  }
  if (domain === LEGACY_DEFAULT_REGISTRY) domain = DEFAULT_REGISTRY;
  if (domain === DEFAULT_REGISTRY && !remainder.includes('/')) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return { domain, remainder };
}

/** Builds a reference from already-separated parts (validated the same way). */
export function makeReference(parts: { registry: string; repository: string; tag?: string; digest?: string }): Reference {
  if (!ANCHORED_DOMAIN.test(parts.registry)) throw new InvalidReferenceError(`invalid registry "${parts.registry}"`);
  if (!ANCHORED_REMOTE_NAME.test(parts.repository)) throw new InvalidReferenceError(`invalid repository "${parts.repository}"`);
  if (parts.tag !== undefined && !ANCHORED_TAG.test(parts.tag)) throw new InvalidReferenceError(`invalid tag "${parts.tag}"`);
  if (parts.digest !== undefined) {
    try {
      parseDigest(parts.digest);
    } catch (err) {
      throw new InvalidReferenceError((err as Error).message);
    }
  }
  const registry = parts.registry === LEGACY_DEFAULT_REGISTRY ? DEFAULT_REGISTRY : parts.registry;
  return new ParsedReference(registry, parts.repository, parts.tag, parts.digest);
}

/** Same repository, pinned to a digest (tag dropped): what a resolved image is addressed by. */
export function withDigest(ref: Reference, digest: string): Reference {
  return makeReference({ registry: ref.registry, repository: ref.repository, digest });
}
