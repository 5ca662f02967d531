/**
 * ADD's remote sources: which sources are URLs or git repositories (BuildKit's
 * rules), how they are shown without credentials, `--checksum` values, and
 * the download of an http(s) file to a temporary file.
 *
 * Downloads go through the registry client's Transport (Node's fetch):
 * redirects are followed by hand and credentials never follow a redirect to
 * another origin; a stalled connection times out. Proxy variables
 * (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) are ignored: Node's fetch does not read
 * them, and the builder does not either.
 */
import { createHash } from 'node:crypto';
import { open, rm, utimes } from 'node:fs/promises';
import { posix } from 'node:path';
import { DestinationRefusedError, type Transport } from '@stowage/registry-client';
import { EntitlementError } from '../errors.js';
import { parseGitSource, type GitSource } from './git-source.js';
import { redactUrl, redactUrlsIn } from './redact-url.js';

export { redactUrl, redactUrlsIn };

export type AddSource =
  | { kind: 'local'; source: string }
  | { kind: 'http'; source: string; url: URL }
  | { kind: 'git'; source: string; git: GitSource };

export class RemoteSourceError extends Error {}

/**
 * Classifies an (expanded) ADD source as BuildKit's Dockerfile frontend does:
 * git first (`git://`, `ssh://`, `user@host:path`, or an http(s) URL whose
 * path ends in `.git`), then any other http(s) URL, else a local path. Other
 * URL schemes are refused rather than looked up as local files.
 */
export function classifyAddSource(source: string): AddSource {
  const git = parseGitSource(source);
  if (git) return { kind: 'git', source, git };
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(source)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'local', source };
  if (scheme !== 'http' && scheme !== 'https') {
    throw new RemoteSourceError(`unsupported URL scheme "${scheme}" in ${redactUrl(source)}: ADD takes http(s) URLs and git repositories`);
  }
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    throw new RemoteSourceError(`invalid URL ${redactUrl(source)}`);
  }
  return { kind: 'http', source, url };
}

/** The URL without its userinfo, and a Basic Authorization header for it (Go's client does the same). */
export function splitCredentials(url: URL): { url: string; authorization?: string } {
  if (url.username === '' && url.password === '') return { url: url.toString() };
  const user = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  const bare = new URL(url.toString());
  bare.username = '';
  bare.password = '';
  return { url: bare.toString(), authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}

/** A parsed `--checksum` for an http source: only sha256 exists (Dockerfile reference). */
export interface HttpChecksum {
  algorithm: 'sha256';
  hex: string;
  digest: string;
}

export function parseHttpChecksum(value: string): HttpChecksum {
  const m = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):(.*)$/i.exec(value);
  if (!m) throw new RemoteSourceError(`--checksum=${value}: expected sha256:<64 hex digits>`);
  const algorithm = m[1]!.toLowerCase();
  const hex = m[2]!;
  if (algorithm !== 'sha256') throw new RemoteSourceError(`--checksum=${value}: unsupported algorithm "${algorithm}"; only sha256 is supported`);
  if (!/^[a-f0-9]{64}$/.test(hex)) throw new RemoteSourceError(`--checksum=${value}: a sha256 digest is 64 lowercase hex digits`);
  return { algorithm: 'sha256', hex, digest: `sha256:${hex}` };
}

/**
 * The file name a URL gives when the destination is a directory: the last
 * segment of its (decoded) path, as BuildKit's `path.Base(u.Path)`. Undefined
 * when the path has none (`http://example.com/`): the Dockerfile reference
 * says such a URL cannot name a file.
 */
export function remoteFileName(url: URL): string | undefined {
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    path = url.pathname;
  }
  const base = posix.basename(path);
  if (base === '' || base === '.' || base === '..' || base === '/' || base.includes('\0')) return undefined;
  return base;
}

/** A literal file name as a copy source: wildcard characters escaped (Go filepath.Match syntax). */
export function escapeGlob(name: string): string {
  return name.replace(/[*?[\\]/g, (c) => `\\${c}`);
}

export interface DownloadResult {
  /** `sha256:<hex>` of the bytes written. */
  digest: string;
  size: number;
  /** From `Last-Modified`, when the server sent a valid one. */
  lastModified?: Date;
}

export interface DownloadOptions {
  transport: Transport;
  /** Expected `sha256:<hex>`: a mismatch removes the file and throws a ChecksumMismatchError. */
  expected?: string;
  onBytes?: (current: number, total?: number) => void;
}

export class ChecksumMismatchError extends Error {
  constructor(readonly url: string, readonly expected: string, readonly actual: string) {
    super(`checksum mismatch for ${url}: expected ${expected}, got ${actual}`);
  }
}

/**
 * Streams `url` into `file` (created, mode 0600 as Docker's remote files),
 * hashing on the way; never holds the body in memory. The file's mtime is
 * the response's `Last-Modified`, else the epoch, as BuildKit's http source
 * sets it. Any status other than 2xx, a connection failure, a stall or a
 * short body throws a RemoteSourceError naming the URL without credentials.
 */
export async function downloadToFile(url: URL, file: string, opts: DownloadOptions): Promise<DownloadResult> {
  const shown = redactUrl(url.toString());
  const { url: bare, authorization } = splitCredentials(url);
  let res;
  try {
    res = await opts.transport.request(bare, {
      what: shown,
      // identity: the file is stored exactly as served, so its digest is the one a user computes.
      headers: { 'user-agent': 'stowage', 'accept-encoding': 'identity', ...(authorization ? { authorization } : {}) },
    });
  } catch (err) {
    if (err instanceof DestinationRefusedError) throw new EntitlementError(`ADD ${shown}: ${err.message}`);
    // The transport's message starts with `what` (the shown URL) and names hosts without credentials.
    throw new RemoteSourceError(redactUrlsIn((err as Error).message));
  }
  if (res.status < 200 || res.status > 299) {
    await res.discard();
    throw new RemoteSourceError(`${shown}: HTTP ${res.status}`);
  }
  const declared = res.headers.get('content-encoding') === null ? Number(res.headers.get('content-length') ?? NaN) : NaN;
  const total = Number.isFinite(declared) ? declared : undefined;
  const hash = createHash('sha256');
  let size = 0;
  const fh = await open(file, 'wx', 0o600);
  try {
    for await (const chunk of res.stream()) {
      hash.update(chunk);
      await fh.write(chunk);
      size += chunk.byteLength;
      opts.onBytes?.(size, total);
    }
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(file, { force: true });
    const message = redactUrlsIn((err as Error).message);
    throw new RemoteSourceError(message.startsWith(shown) ? message : `${shown}: ${message}`);
  }
  await fh.close();
  if (total !== undefined && size !== total) {
    await rm(file, { force: true });
    throw new RemoteSourceError(`${shown}: the server announced ${total} bytes but sent ${size}`);
  }
  const digest = `sha256:${hash.digest('hex')}`;
  if (opts.expected !== undefined && digest !== opts.expected) {
    await rm(file, { force: true });
    throw new ChecksumMismatchError(shown, opts.expected, digest);
  }
  const lastModified = parseHttpDate(res.headers.get('last-modified'));
  const mtime = lastModified ? lastModified.getTime() / 1000 : 0;
  await utimes(file, mtime, mtime);
  return { digest, size, ...(lastModified ? { lastModified } : {}) };
}

/** An HTTP date (RFC 7231: IMF-fixdate, and the obsolete forms Date.parse also reads); undefined when invalid. */
export function parseHttpDate(value: string | null): Date | undefined {
  if (value === null || value.trim() === '') return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : new Date(t);
}
