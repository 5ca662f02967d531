/**
 * Pull side of the OCI distribution protocol: resolve a reference to a
 * platform-specific manifest and config, and download layers into the
 * content store. Every byte that reaches the store is verified against its
 * digest; manifests additionally against the digest we asked for (by digest)
 * or the one the registry announced (by tag).
 */
import { Authorizer, type AuthContext } from './auth/authorizer.js';
import { dockerConfigCredentials, type CredentialSource } from './auth/docker-config.js';
import { bytesSource, type ContentStore, type IngestWriter } from './content-store.js';
import { crashPoint } from './crash-point.js';
import { digestOf, parseDigest } from './digest.js';
import { LockTimeoutError, type Lock } from './lock.js';
import {
  BlobNotFoundError,
  DigestMismatchError,
  ManifestInvalidError,
  ManifestNotFoundError,
  PlatformNotFoundError,
  RegistryAuthError,
  RegistryDeadlineError,
  RegistryError,
  RegistryRequestError,
  RegistryUnavailableError,
} from './errors.js';
import { formatPlatform, hostPlatform, normalizePlatform, platformScore } from './platform.js';
import { pushImage, type PushImage, type PushOptions, type PushResult } from './push.js';
import { parseReference, type Reference } from './reference.js';
import { HttpResponse, Transport, apiHost, splitHostPort, type Deadline, type RetryOptions } from './transport.js';
import {
  INDEX_MEDIA_TYPES,
  MANIFEST_MEDIA_TYPES,
  MediaTypes,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  type Platform,
} from './types.js';
import { parseImageConfig, parseImageIndex, parseImageManifest } from './validate.js';
import { Semaphore } from './semaphore.js';
import { humanSize, scrubSecrets, shortDigest, sleep } from './util.js';

export { scrubSecrets };

/** The distribution spec lets registries cap manifests at 4 MiB; anything larger is refused outright. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Configs are read into memory; real ones are kilobytes, generous cap against abuse. */
const MAX_CONFIG_BYTES = 32 * 1024 * 1024;
/** Index → index nesting we are willing to follow. */
const MAX_INDEX_DEPTH = 3;
/** How long an unreachable mirror is skipped before being tried again. */
const MIRROR_DOWN_MS = 60_000;

const MANIFEST_ACCEPT = [MediaTypes.OCI_MANIFEST, MediaTypes.OCI_INDEX, MediaTypes.DOCKER_MANIFEST, MediaTypes.DOCKER_MANIFEST_LIST].join(', ');
const KNOWN_MANIFEST_TYPES = [...MANIFEST_MEDIA_TYPES, ...INDEX_MEDIA_TYPES];
const SCHEMA1_TYPES: readonly string[] = [MediaTypes.DOCKER_MANIFEST_V1, MediaTypes.DOCKER_MANIFEST_V1_SIGNED, 'application/vnd.docker.distribution.manifest.v1+prettyjws'];
const CONFIG_MEDIA_TYPES: readonly string[] = [MediaTypes.OCI_CONFIG, MediaTypes.DOCKER_CONFIG];

export interface RegistryClientOptions {
  store: ContentStore;
  /** Default hostPlatform(). */
  platform?: Platform;
  /** Registry host → mirror hosts (HOST[:PORT], or http(s):// URLs), tried in order before the origin. */
  mirrors?: Record<string, string[]>;
  /** HOST[:PORT] to reach over plain HTTP (loopback always is). */
  insecureRegistries?: string[];
  /** Default: Docker's config.json (`$DOCKER_CONFIG` or ~/.docker). */
  credentials?: CredentialSource;
  /** Progress lines. Never given credentials or tokens. */
  log?: (line: string) => void;
  retry?: RetryOptions;
  /** Parallel layer downloads, default 3. */
  concurrency?: number;
  /** Fail a request when no bytes arrive for this long. Default 60 000 ms. */
  idleTimeoutMs?: number;
  /**
   * Fail a request that has not finished after this long, however steadily
   * bytes arrive: one deadline per manifest, config or blob per endpoint,
   * covering every retry, redirect, Range resume and the whole body
   * (E_REGISTRY_DEADLINE). Default: `STOWAGE_REGISTRY_DEADLINE` (seconds)
   * when set, else scaled by size: 5 min plus the size at 256 KiB/s, at most
   * 6 h (see defaultDeadlineMs in transport.ts).
   */
  deadlineMs?: number;
}

export interface ResolvedImage {
  reference: Reference;
  manifestDigest: string;
  manifest: ImageManifest;
  config: ImageConfig;
  configDigest: string;
  platform: Platform;
  index?: { digest: string; index: ImageIndex };
}

/** Bytes received so far for one blob of a pull (restarts at 0 when a download is retried). */
export type BlobBytesListener = (digest: string, received: number, total: number) => void;

export interface PullOptions {
  /** Called as layer bytes arrive; a blob another pull is already fetching reports only to that pull. */
  onBytes?: BlobBytesListener;
  /**
   * Called when a layer's download starts writing (again, after a fallback to
   * another endpoint): `writer.follow()` reads its bytes as they arrive.
   */
  onIngest?: (digest: string, writer: IngestWriter) => void;
}

interface Endpoint {
  /** Host contacted, e.g. 'registry-1.docker.io' or '127.0.0.1:5055'. */
  host: string;
  /** Host credentials are looked up under. */
  credentialHost: string;
  mirror: boolean;
}

interface FetchedManifest {
  bytes: Buffer;
  digest: string;
  mediaType: string;
  json: unknown;
}




/** Media type of a manifest body: its own mediaType field first (it is what the digest covers), then Content-Type, then shape. */
function classifyManifest(bytes: Buffer, contentType: string | null, what: string): { mediaType: string; json: unknown } {
  const headerType = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (SCHEMA1_TYPES.includes(headerType)) {
    throw new ManifestInvalidError(`${what}: Docker schema1 manifests are not supported (${headerType}); the image must be re-pushed with a current client`);
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ManifestInvalidError(`${what}: manifest is not valid JSON (content type "${headerType.slice(0, 100)}")`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ManifestInvalidError(`${what}: manifest is not a JSON object`);
  const o = json as Record<string, unknown>;
  let mediaType = typeof o['mediaType'] === 'string' ? o['mediaType'] : undefined;
  if (mediaType === undefined && KNOWN_MANIFEST_TYPES.includes(headerType)) mediaType = headerType;
  if (mediaType === undefined && o['schemaVersion'] === 2) {
    // OCI allows omitting mediaType; fall back to shape, as containerd does.
    if (Array.isArray(o['manifests'])) mediaType = MediaTypes.OCI_INDEX;
    else if (typeof o['config'] === 'object' && Array.isArray(o['layers'])) mediaType = MediaTypes.OCI_MANIFEST;
  }
  if (mediaType === undefined && o['schemaVersion'] === 1) {
    throw new ManifestInvalidError(`${what}: Docker schema1 manifests are not supported`);
  }
  if (mediaType === undefined || !KNOWN_MANIFEST_TYPES.includes(mediaType)) {
    throw new ManifestInvalidError(`${what}: unsupported manifest media type "${(mediaType ?? (headerType || 'none')).slice(0, 100)}"`);
  }
  return { mediaType, json };
}



export class RegistryClient {
  private readonly store: ContentStore;
  private readonly platform: Platform;
  private readonly mirrors: Map<string, string[]>;
  private readonly transport: Transport;
  private readonly auth: Authorizer;
  private readonly logFn: (line: string) => void;
  private readonly concurrency: number;
  /** One download per digest at a time within this client. */
  private readonly inflight = new Map<string, Promise<void>>();
  /** Mirrors that were unreachable, until when to skip them. */
  private readonly mirrorDownUntil = new Map<string, number>();

  constructor(opts: RegistryClientOptions) {
    this.store = opts.store;
    this.platform = normalizePlatform(opts.platform ?? hostPlatform());
    this.concurrency = Math.max(1, Math.floor(opts.concurrency ?? 3));
    const userLog = opts.log;
    this.logFn = userLog ? (line) => userLog(scrubSecrets(line)) : () => undefined;

    // Mirrors may be written as URLs (as in Docker's daemon.json); an
    // explicit http:// makes that mirror plain HTTP.
    const insecure = [...(opts.insecureRegistries ?? [])];
    this.mirrors = new Map();
    for (const [registry, list] of Object.entries(opts.mirrors ?? {})) {
      const hosts = list.map((m) => {
        if (!m.includes('://')) return m.replace(/\/+$/, '');
        const u = new URL(m);
        if (u.protocol === 'http:') insecure.push(u.host);
        return u.host;
      });
      this.mirrors.set(registry === 'index.docker.io' ? 'docker.io' : registry, hosts);
    }
    this.transport = new Transport({
      insecureRegistries: insecure,
      ...(opts.retry !== undefined ? { retry: opts.retry } : {}),
      ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
      ...(opts.deadlineMs !== undefined ? { deadlineMs: opts.deadlineMs } : {}),
      log: this.logFn,
    });
    this.auth = new Authorizer(this.transport, opts.credentials ?? dockerConfigCredentials());
  }

  private endpoints(ref: Reference): Endpoint[] {
    const mirrors = (this.mirrors.get(ref.registry) ?? []).map((h) => ({ host: h, credentialHost: h, mirror: true }));
    return [...mirrors, { host: apiHost(ref.registry), credentialHost: ref.registry, mirror: false }];
  }

  /**
   * Runs `fn` against each mirror, then the origin, until one succeeds.
   * Any registry-level failure of a mirror (down, missing content, bad
   * bytes, auth) falls through to the next; the origin's error is final.
   */
  private async withFallback<T>(ref: Reference, what: string, fn: (ep: Endpoint) => Promise<T>): Promise<T> {
    const now = Date.now();
    const eps = this.endpoints(ref).filter((ep) => !ep.mirror || (this.mirrorDownUntil.get(ep.host) ?? 0) <= now);
    for (const [i, ep] of eps.entries()) {
      try {
        const result = await fn(ep);
        if (ep.mirror) this.logFn(`${what}: served by mirror ${ep.host}`);
        else if (i > 0) this.logFn(`${what}: served by ${ep.host} (origin)`);
        return result;
      } catch (err) {
        if (!(err instanceof RegistryError) || i === eps.length - 1) throw err;
        if (err instanceof RegistryUnavailableError || err instanceof RegistryDeadlineError) {
          // Unreachable (or uselessly slow) mirror: skip it for a while instead of paying its retries on every blob.
          this.mirrorDownUntil.set(ep.host, Date.now() + MIRROR_DOWN_MS);
        }
        const next = eps[i + 1] as Endpoint;
        this.logFn(`mirror ${ep.host} failed: ${err.message}; trying ${next.mirror ? 'mirror ' : ''}${next.host}`);
      }
    }
    throw new RegistryUnavailableError(`${what}: no endpoints`); // unreachable: the origin is always last
  }

  /** A request with auth: one retry after a 401 teaches us a new challenge; a second 401 is final. */
  private async send(ep: Endpoint, ref: Reference, path: string, headers: Record<string, string>, what: string, deadline?: Deadline): Promise<HttpResponse> {
    const ctx: AuthContext = { host: ep.host, credentialHost: ep.credentialHost, repository: ref.repository, what };
    const url = `${this.transport.baseUrl(ep.host)}${path}`;
    for (let round = 0; round < 2; round++) {
      const authorization = await this.auth.header(ctx);
      const res = await this.transport.request(url, { headers: { ...headers, ...(authorization !== undefined ? { authorization } : {}) }, what, ...(deadline !== undefined ? { deadline } : {}) });
      if (res.status !== 401) return res;
      const challenge = res.headers.get('www-authenticate');
      await res.discard();
      if (round === 0 && (await this.auth.unauthorized(ctx, challenge))) continue;
      break;
    }
    throw await this.auth.denied(ctx, 'pull');
  }

  /** Turns an unexpected status into a typed error, with the registry's own error code if it sent one. */
  private async statusError(res: HttpResponse, ep: Endpoint, what: string): Promise<RegistryError> {
    let detail = '';
    try {
      const body: unknown = JSON.parse(await res.text(64 * 1024));
      const first = (body as { errors?: Array<{ code?: unknown; message?: unknown }> }).errors?.[0];
      if (first !== undefined) {
        detail = `: ${[first.code, first.message].filter((x) => typeof x === 'string').join(' ')}`.slice(0, 200);
      }
    } catch {
      await res.discard();
    }
    detail = scrubSecrets(detail);
    if (res.status === 403) return new RegistryAuthError(`${what}: access denied by ${ep.host}${detail}`);
    return new RegistryRequestError(res.status, `${what}: HTTP ${res.status} from ${ep.host}${detail}`);
  }

  /**
   * Gets a manifest by tag or digest. With a digest, the local store is
   * consulted first (its contents are verified), so digest-pinned builds
   * work offline.
   */
  private async getManifest(ep: Endpoint, ref: Reference, tagOrDigest: string, expected?: { digest: string; size?: number }): Promise<FetchedManifest> {
    const what = `manifest ${ref.toString()}${tagOrDigest === ref.digest || tagOrDigest === ref.tag ? '' : ` (${tagOrDigest})`}`;
    if (expected !== undefined && (await this.store.has(expected.digest))) {
      const bytes = await this.store.readBlob(expected.digest);
      if (bytes.byteLength <= MAX_MANIFEST_BYTES) {
        const { mediaType, json } = classifyManifest(bytes, null, what);
        return { bytes, digest: expected.digest, mediaType, json };
      }
    }
    if (expected?.size !== undefined && expected.size > MAX_MANIFEST_BYTES) {
      throw new ManifestInvalidError(`${what}: manifest of ${expected.size} bytes exceeds the ${MAX_MANIFEST_BYTES}-byte limit`);
    }
    let res: HttpResponse;
    let bytes: Buffer;
    // One total deadline for every attempt below (see Deadline in transport.ts).
    const deadline = this.transport.deadline(expected?.size ?? MAX_MANIFEST_BYTES);
    // The transport retries until it has response headers; a body that then
    // breaks off (reset, stall, short) is fetched again here.
    for (let attempt = 1; ; attempt++) {
      res = await this.send(ep, ref, `/v2/${ref.repository}/manifests/${tagOrDigest}`, { accept: MANIFEST_ACCEPT }, what, deadline);
      if (res.status === 404) {
        await res.discard();
        throw new ManifestNotFoundError(`${what}: manifest unknown at ${ep.host}`);
      }
      if (res.status !== 200) throw await this.statusError(res, ep, what);
      try {
        bytes = await res.bytes(MAX_MANIFEST_BYTES, (l) => new ManifestInvalidError(`${what}: manifest from ${ep.host} exceeds the ${l}-byte limit`));
        const declared = Number(res.headers.get('content-length') ?? '');
        if (Number.isFinite(declared) && res.headers.has('content-length') && bytes.byteLength < declared) {
          throw new RegistryUnavailableError(`${what}: response from ${ep.host} ended after ${bytes.byteLength} of ${declared} bytes`);
        }
        break;
      } catch (err) {
        if (!(err instanceof RegistryUnavailableError)) throw err;
        if (attempt >= this.transport.attempts) throw new RegistryUnavailableError(`${err.message} (gave up after ${attempt} attempts)`, { cause: err });
        const delay = this.transport.backoff(attempt - 1);
        this.logFn(`retrying ${what} in ${delay} ms (attempt ${attempt + 1}/${this.transport.attempts}): ${err.message}`);
        await sleep(delay);
      }
    }

    let digest: string;
    if (expected !== undefined) {
      digest = digestOf(bytes, parseDigest(expected.digest).algorithm);
      if (digest !== expected.digest) {
        throw new DigestMismatchError(`${what}: manifest from ${ep.host} has digest ${digest}, expected ${expected.digest}`);
      }
      if (expected.size !== undefined && bytes.byteLength !== expected.size) {
        throw new DigestMismatchError(`${what}: manifest from ${ep.host} is ${bytes.byteLength} bytes, descriptor says ${expected.size}`);
      }
    } else {
      const announced = res.headers.get('docker-content-digest');
      digest = digestOf(bytes);
      if (announced !== null && announced !== '') {
        let alg: 'sha256' | 'sha512';
        try {
          alg = parseDigest(announced).algorithm;
        } catch {
          throw new ManifestInvalidError(`${what}: ${ep.host} sent an invalid Docker-Content-Digest header`);
        }
        const actual = digestOf(bytes, alg);
        if (actual !== announced) {
          throw new DigestMismatchError(`${what}: manifest from ${ep.host} has digest ${actual}, but the registry announced ${announced}`);
        }
        digest = announced;
      }
    }
    const { mediaType, json } = classifyManifest(bytes, res.headers.get('content-type'), what);
    await this.store.ingest(bytesSource(bytes), { digest, size: bytes.byteLength });
    crashPoint('pull:manifest');
    return { bytes, digest, mediaType, json };
  }

  private pickFromIndex(ref: Reference, index: ImageIndex, indexDigest: string): Descriptor {
    let best: Descriptor | undefined;
    let bestScore = 0;
    for (const d of index.manifests) {
      if (d.platform === undefined || !KNOWN_MANIFEST_TYPES.includes(d.mediaType)) continue;
      const score = platformScore(this.platform, d.platform);
      if (score > bestScore) {
        best = d;
        bestScore = score;
      }
    }
    if (best === undefined) {
      const available = index.manifests
        .filter((d) => d.platform !== undefined && d.platform.os !== 'unknown') // skip attestation manifests
        .map((d) => formatPlatform(d.platform as Platform));
      throw new PlatformNotFoundError(
        `${ref.toString()}: no image for platform ${formatPlatform(this.platform)} in index ${indexDigest}; available: ${available.length > 0 ? [...new Set(available)].join(', ') : 'none'}`,
      );
    }
    return best;
  }

  private async resolveFrom(ep: Endpoint, ref: Reference): Promise<ResolvedImage> {
    const pin = ref.digest ?? ref.tag ?? 'latest';
    let current = await this.getManifest(ep, ref, pin, ref.digest !== undefined ? { digest: ref.digest } : undefined);
    let top: { digest: string; index: ImageIndex } | undefined;
    let platformFromIndex: Platform | undefined;
    for (let depth = 0; INDEX_MEDIA_TYPES.includes(current.mediaType); depth++) {
      if (depth >= MAX_INDEX_DEPTH) throw new ManifestInvalidError(`${ref.toString()}: image indexes nested more than ${MAX_INDEX_DEPTH} deep`);
      const index = wrap(ref, () => parseImageIndex(current.json));
      top ??= { digest: current.digest, index };
      const chosen = this.pickFromIndex(ref, index, current.digest);
      platformFromIndex = chosen.platform;
      current = await this.getManifest(ep, ref, chosen.digest, { digest: chosen.digest, size: chosen.size });
    }
    const manifest = wrap(ref, () => parseImageManifest(current.json));
    if (!CONFIG_MEDIA_TYPES.includes(manifest.config.mediaType)) {
      throw new ManifestInvalidError(`${ref.toString()}: not a container image (config media type "${manifest.config.mediaType.slice(0, 100)}")`);
    }
    if (manifest.config.size > MAX_CONFIG_BYTES) {
      throw new ManifestInvalidError(`${ref.toString()}: image config of ${manifest.config.size} bytes exceeds the ${MAX_CONFIG_BYTES}-byte limit`);
    }
    await this.fetchBlobFrom(ep, ref, manifest.config);
    const configBytes = await this.store.readBlob(manifest.config.digest);
    let configJson: unknown;
    try {
      configJson = JSON.parse(configBytes.toString('utf8'));
    } catch {
      throw new ManifestInvalidError(`${ref.toString()}: image config ${manifest.config.digest} is not valid JSON`);
    }
    const config = wrap(ref, () => parseImageConfig(configJson));
    // Docker refuses images whose config and manifest disagree on layer count; so do we.
    if (config.rootfs.diff_ids.length !== manifest.layers.length) {
      throw new ManifestInvalidError(
        `${ref.toString()}: manifest has ${manifest.layers.length} layers but the config lists ${config.rootfs.diff_ids.length} diff_ids`,
      );
    }
    const platform: Platform = { os: config.os, architecture: config.architecture };
    const variant = config.variant ?? platformFromIndex?.variant;
    if (variant !== undefined) platform.variant = variant;
    if (config['os.version'] !== undefined) platform['os.version'] = config['os.version'];
    if (top === undefined && platformScore(this.platform, platform) === 0) {
      // Single-platform image for another platform: Docker warns and proceeds; so do we.
      this.logFn(`warning: ${ref.toString()} is ${formatPlatform(platform)}, not the requested ${formatPlatform(this.platform)}`);
    }
    const resolved: ResolvedImage = { reference: ref, manifestDigest: current.digest, manifest, config, configDigest: manifest.config.digest, platform };
    if (top !== undefined) resolved.index = top;
    return resolved;
  }

  /** Manifest (choosing from an index by platform) plus config, both verified and stored. */
  async resolve(input: Reference | string): Promise<ResolvedImage> {
    const ref = typeof input === 'string' ? parseReference(input) : input;
    const what = `resolve ${ref.toString()}`;
    const resolved = await this.withFallback(ref, what, (ep) => this.resolveFrom(ep, ref));
    this.logFn(`${ref.toString()}: resolved to ${resolved.manifestDigest} (${formatPlatform(resolved.platform)})`);
    return resolved;
  }

  /**
   * The manifest or index a reference names, as stored bytes (verified like
   * every manifest, and kept in the store), without choosing a platform.
   */
  async fetchManifest(input: Reference | string): Promise<{ reference: Reference; digest: string; mediaType: string; bytes: Buffer }> {
    const ref = typeof input === 'string' ? parseReference(input) : input;
    const pin = ref.digest ?? ref.tag ?? 'latest';
    const m = await this.withFallback(ref, `manifest ${ref.toString()}`, (ep) => this.getManifest(ep, ref, pin, ref.digest !== undefined ? { digest: ref.digest } : undefined));
    return { reference: ref, digest: m.digest, mediaType: m.mediaType, bytes: m.bytes };
  }

  /** resolve() plus every layer, downloaded in parallel (bounded), skipping those already stored. */
  async pull(input: Reference | string, opts: PullOptions = {}): Promise<ResolvedImage> {
    const resolved = await this.resolve(input);
    await Promise.all((await this.downloadLayers(resolved, opts)).values());
    return resolved;
  }

  /**
   * Starts downloading the layers of a resolved image that the store lacks,
   * in manifest order, a bounded number at a time, and returns at once: one
   * promise per missing digest, settled when that blob is in the store (or
   * its download failed). Lets a caller unpack layer 1 while later ones are
   * still downloading. Rejections are handled here too, so a caller that
   * stops early leaves no unhandled rejection behind.
   */
  async downloadLayers(resolved: ResolvedImage, opts: PullOptions = {}): Promise<Map<string, Promise<void>>> {
    const ref = resolved.reference;
    const seen = new Set<string>();
    const layers = resolved.manifest.layers.filter((l) => !seen.has(l.digest) && (seen.add(l.digest), true));
    const missing: Descriptor[] = [];
    for (const l of layers) if (!(await this.store.has(l.digest))) missing.push(l);
    if (missing.length < layers.length) this.logFn(`${ref.toString()}: ${layers.length - missing.length} of ${layers.length} layers already present`);
    const slots = new Semaphore(this.concurrency);
    const downloads = new Map<string, Promise<void>>();
    for (const l of missing) {
      const p = slots.run(() => this.fetchBlob(ref, l, opts.onBytes, opts.onIngest));
      p.catch(() => undefined);
      downloads.set(l.digest, p);
    }
    Promise.all(downloads.values()).then(() => this.logFn(`${ref.toString()}: pulled ${resolved.manifestDigest}`), () => undefined);
    return downloads;
  }

  /**
   * Pushes an image whose blobs are all in the content store: each blob is
   * HEAD-checked and skipped when present, mounted from a `mountFrom`
   * repository when one has it, otherwise uploaded (monolithic up to
   * `chunkThreshold`, default 16 MiB; chunked PATCHes above), streamed from
   * the store. Then the manifest (and index) PUT, once per tag. Mirrors are
   * never used. Returns the top-level digest the registry reported, checked
   * against ours. `opts.source` replaces the store as where blobs are read.
   * See push.ts for the protocol and retry rules.
   */
  async push(input: Reference | string, image: PushImage, opts: PushOptions = {}): Promise<PushResult> {
    const ref = typeof input === 'string' ? parseReference(input) : input;
    return pushImage({ store: opts.source ?? this.store, transport: this.transport, auth: this.auth, log: this.logFn, concurrency: this.concurrency }, ref, image, opts);
  }

  /**
   * Ensures one blob is in the store (mirrors first, then the origin). Once
   * per digest at a time in this process, and across processes sharing the
   * store: another one downloading it is waited for, then its blob is used.
   */
  async fetchBlob(ref: Reference, desc: Descriptor, onBytes?: BlobBytesListener, onIngest?: PullOptions['onIngest']): Promise<void> {
    let p = this.inflight.get(desc.digest);
    if (p === undefined) {
      p = this.fetchBlobLocked(ref, desc, onBytes, onIngest).finally(() => this.inflight.delete(desc.digest));
      this.inflight.set(desc.digest, p);
    }
    return p;
  }

  private async fetchBlobLocked(ref: Reference, desc: Descriptor, onBytes?: BlobBytesListener, onIngest?: PullOptions['onIngest']): Promise<void> {
    if (await this.store.has(desc.digest)) return;
    const what = `blob ${desc.digest} of ${ref.toString()}`;
    let lock: Lock | undefined;
    try {
      lock = await this.store.lock(desc.digest, { what: `downloading ${what}`, onWait: (holder) => this.logFn(`${shortDigest(desc.digest)}: waiting for ${holder}`) });
    } catch (err) {
      // Downloading it here as well is safe (same bytes, atomic rename), only slower.
      if (!(err instanceof LockTimeoutError)) throw err;
      this.logFn(`${shortDigest(desc.digest)}: ${err.message}; downloading it here too`);
    }
    try {
      await this.withFallback(ref, what, (ep) => this.fetchBlobFrom(ep, ref, desc, onBytes, onIngest));
    } finally {
      await lock?.release();
    }
  }

  /**
   * Downloads one blob from one endpoint, streaming into the store. The
   * transport retries getting a response; this loop handles a body that
   * fails mid-stream (reset, stall, early end): it asks for the rest with
   * `Range: bytes=N-` and keeps hashing where it stopped, or starts over when
   * the server ignores the range. Bad bytes are not retried here (except a
   * resumed download, once from scratch): the caller falls back to the next
   * endpoint.
   */
  private async fetchBlobFrom(ep: Endpoint, ref: Reference, desc: Descriptor, onBytes?: BlobBytesListener, onIngest?: PullOptions['onIngest']): Promise<void> {
    if (await this.store.has(desc.digest)) return;
    parseDigest(desc.digest);
    const what = `blob ${desc.digest} of ${ref.toString()}`;
    const path = `/v2/${ref.repository}/blobs/${desc.digest}`;
    const attempts = this.transport.attempts;
    const writer = await this.store.begin({ digest: desc.digest, size: desc.size });
    onIngest?.(desc.digest, writer);
    let failures = 0;
    let resumed = false;
    const started = Date.now();
    // One total deadline for the blob from this endpoint, Range resumes and restarts included, scaled by its declared size.
    const deadline = this.transport.deadline(desc.size);
    try {
      for (;;) {
        const offset = writer.offset;
        const res = await this.send(ep, ref, path, offset > 0 ? { range: `bytes=${offset}-` } : {}, what, deadline);
        if (res.status === 404) {
          await res.discard();
          throw new BlobNotFoundError(`${what}: blob unknown at ${ep.host}`);
        }
        if (offset > 0 && res.status === 206) {
          const start = contentRangeStart(res.headers.get('content-range'));
          if (start !== offset) {
            // A range we did not ask for cannot be spliced in; start over.
            await res.discard();
            this.logFn(`${shortDigest(desc.digest)}: ${ep.host} answered the range request from byte ${start ?? '?'} instead of ${offset}; restarting`);
            await writer.reset();
            resumed = false;
            if (++failures >= attempts) throw new RegistryUnavailableError(`${what}: ${ep.host} sent a wrong range (gave up after ${attempts} attempts)`);
            continue;
          }
          resumed = true;
          this.logFn(`${shortDigest(desc.digest)}: resuming at byte ${offset} of ${desc.size}`);
        } else if (res.status === 200) {
          if (offset > 0) {
            this.logFn(`${shortDigest(desc.digest)}: ${ep.host} ignored the range request; restarting from byte 0`);
            await writer.reset();
            resumed = false;
          } else {
            this.logFn(`${shortDigest(desc.digest)}: downloading ${humanSize(desc.size)} from ${ep.host}`);
          }
        } else {
          throw await this.statusError(res, ep, what);
        }
        try {
          for await (const chunk of res.stream()) {
            await writer.write(chunk);
            onBytes?.(desc.digest, writer.offset, desc.size);
          }
          if (writer.offset < desc.size) {
            // A clean end of a chunked or unframed body can still be short.
            throw new RegistryUnavailableError(`${what}: response from ${ep.host} ended after ${writer.offset} of ${desc.size} bytes`);
          }
          await writer.commit();
          this.logFn(`${shortDigest(desc.digest)}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
          return;
        } catch (err) {
          if (err instanceof DigestMismatchError) {
            // A resumed download can be wrong only because of the splice; one clean retry settles it.
            if (resumed && failures + 1 < attempts) {
              failures++;
              resumed = false;
              this.logFn(`${shortDigest(desc.digest)}: resumed download did not verify; restarting from byte 0`);
              await writer.reset();
              continue;
            }
            throw new DigestMismatchError(`${what} from ${ep.host}: ${err.message}`);
          }
          if (!(err instanceof RegistryUnavailableError)) throw err;
          if (++failures >= attempts) throw new RegistryUnavailableError(`${err.message} (gave up after ${attempts} attempts)`, { cause: err });
          const delay = this.transport.backoff(failures - 1);
          this.logFn(`${shortDigest(desc.digest)}: ${err.message}; resuming at byte ${writer.offset} in ${delay} ms (attempt ${failures + 1}/${attempts})`);
          await sleep(delay);
        }
      }
    } finally {
      await writer.abort(); // no-op once committed
    }
  }
}

/** The first byte position of a `Content-Range: bytes START-END/TOTAL` header. */
function contentRangeStart(v: string | null): number | undefined {
  const m = /^\s*bytes\s+(\d+)-\d+\/(?:\d+|\*)\s*$/i.exec(v ?? '');
  return m ? Number(m[1]) : undefined;
}

/** Re-labels validation errors with the reference they came from. */
function wrap<T>(ref: Reference, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ManifestInvalidError) throw new ManifestInvalidError(`${ref.toString()}: ${err.message}`, { cause: err });
    throw err;
  }
}

export { splitHostPort };

