/**
 * Push side of the OCI distribution protocol (distribution-spec v1.1,
 * "Push"): blobs first, then the manifest, then the index (if any), each
 * tag by its own manifest PUT.
 *
 * Per blob: HEAD (skip if present) → cross-repository mount (POST
 * ?mount=&from=) when the caller names candidate repositories → otherwise an
 * upload session (POST), filled either monolithically (one PUT ?digest=) or
 * in chunks (PATCH with Content-Range, following each returned Location,
 * then an empty closing PUT ?digest=). Blob bytes are streamed from the
 * content store; nothing larger than a manifest is held in memory.
 *
 * Retries: requests that are safe to repeat (HEAD, session POST, mount POST,
 * manifest PUT) go through the transport's usual retry/backoff. Requests that
 * carry blob data are sent once; if one fails (connection, timeout, 5xx, or a
 * 404/416 saying the session is gone or out of step), the session is
 * abandoned (best-effort DELETE), the blob is HEAD-checked again (a PUT whose
 * response was lost may have landed) and a fresh session uploads it again
 * from byte 0. We do not resume from the server's GET-status offset: after a
 * failed PATCH that offset is exactly what is in doubt, and restarting is
 * correct on every registry.
 */
import type { Authorizer, AuthContext } from './auth/authorizer.js';
import type { ContentStore } from './content-store.js';
import { crashPoint } from './crash-point.js';
import { digestOf, parseDigest } from './digest.js';
import {
  BlobNotFoundError,
  DigestMismatchError,
  ManifestInvalidError,
  RegistryAuthError,
  RegistryError,
  RegistryPushError,
  RegistryUnavailableError,
} from './errors.js';
import { makeReference, type Reference } from './reference.js';
import { apiHost, type HttpResponse, type RequestBody, type Transport } from './transport.js';
import { INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, type Descriptor } from './types.js';
import { parseImageIndex, parseImageManifest } from './validate.js';
import { humanSize, mapPool, scrubSecrets, shortDigest, sleep } from './util.js';

/** Blobs up to this size go up in one PUT; larger ones in PATCH chunks of this size. */
export const DEFAULT_CHUNK_THRESHOLD = 16 * 1024 * 1024;
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface PushImage {
  /** The image manifest, in the content store. */
  manifest: Descriptor;
  /** An index (in the content store) listing `manifest`; when given, the tags point at it. */
  index?: Descriptor;
  /** Config and layers, all in the content store. Anything else the manifest references is added. */
  blobs: Descriptor[];
}

export type PushAction = 'exists' | 'mounted' | 'uploaded';

/**
 * One per blob when it is settled (`bytes === total`); chunked uploads also
 * report each accepted chunk with `action: 'uploaded'` and `bytes < total`.
 */
export interface PushProgress {
  digest: string;
  bytes: number;
  total: number;
  action: PushAction;
}

/**
 * Where a push reads blobs from: the content store by default, or anything
 * with the same four reads (an image archive read in place, for example).
 */
export type BlobSource = Pick<ContentStore, 'has' | 'size' | 'readBlob' | 'openRead'>;

export interface PushOptions {
  /** Read blobs, manifest and index from here instead of the client's content store. */
  source?: BlobSource;
  /** Tags to point at the image. Default: the reference's tag (or, for name@digest, no tag: pushed by digest). */
  tags?: string[];
  /** Repositories on the same registry to try mounting blobs from, in order. */
  mountFrom?: string[];
  /** Blobs larger than this are uploaded in chunks. Default 16 MiB. */
  chunkThreshold?: number;
  /** Chunk size for chunked uploads. Default: chunkThreshold (raised to the registry's OCI-Chunk-Min-Length). */
  chunkSize?: number;
  onProgress?: (e: PushProgress) => void;
}

export interface PushResult {
  /** What the tags point at, as the registry reported it: the index if one was pushed, else the manifest. */
  digest: string;
  manifestDigest: string;
  indexDigest?: string;
  /** Tags written (empty when pushed by digest only). */
  tags: string[];
}

export interface PushDeps {
  store: BlobSource;
  transport: Transport;
  auth: Authorizer;
  log: (line: string) => void;
  concurrency: number;
}

/** Marks a failure of a blob-data request: the upload is restarted with a fresh session. */
class RestartUpload extends Error {
  constructor(readonly error: RegistryError) {
    super(error.message);
  }
}






/** Last byte offset in a Range header (`0-1023` or `bytes=0-1023`), or undefined. */
function rangeEnd(v: string | null): number | undefined {
  const m = /(\d+)-(\d+)\s*$/.exec(v ?? '');
  return m === null ? undefined : Number(m[2]);
}

class Pusher {
  private readonly host: string;
  private readonly base: string;
  private readonly origin: string;
  private readonly ctx: AuthContext;
  private readonly name: string;
  private readonly threshold: number;
  private readonly mountFrom: string[];

  constructor(
    private readonly deps: PushDeps,
    private readonly ref: Reference,
    private readonly opts: PushOptions,
  ) {
    // Mirrors are read-only caches: pushes always go to the registry itself.
    this.host = apiHost(ref.registry);
    this.base = deps.transport.baseUrl(this.host);
    this.origin = new URL(this.base).origin;
    this.name = ref.toString();
    this.mountFrom = [...new Set(opts.mountFrom ?? [])].filter((r) => r !== ref.repository);
    for (const r of this.mountFrom) makeReference({ registry: ref.registry, repository: r }); // validates the name
    this.threshold = Math.max(1, Math.floor(opts.chunkThreshold ?? DEFAULT_CHUNK_THRESHOLD));
    // One scope set for the whole push, so one token serves every request until it expires.
    this.ctx = {
      host: this.host,
      credentialHost: ref.registry,
      repository: ref.repository,
      what: `push ${this.name}`,
      scopes: [`repository:${ref.repository}:pull,push`, ...this.mountFrom.map((r) => `repository:${r}:pull`)],
    };
  }

  private url(path: string): string {
    return `${this.base}/v2/${this.ref.repository}${path}`;
  }

  /** A request with auth (same origin only): one retry after a 401 teaches us a new challenge. */
  private async send(url: string, init: { method: string; headers?: Record<string, string>; body?: RequestBody; attempts?: number }, what: string): Promise<HttpResponse> {
    const sameOrigin = new URL(url).origin === this.origin;
    for (let round = 0; round < 2; round++) {
      const authorization = sameOrigin ? await this.deps.auth.header(this.ctx) : undefined;
      const res = await this.deps.transport.request(url, {
        method: init.method,
        headers: { ...init.headers, ...(authorization !== undefined ? { authorization } : {}) },
        ...(init.body !== undefined ? { body: init.body } : {}),
        ...(init.attempts !== undefined ? { attempts: init.attempts } : {}),
        what,
      });
      if (res.status !== 401 || !sameOrigin) return res;
      const challenge = res.headers.get('www-authenticate');
      await res.discard();
      if (round === 0 && (await this.deps.auth.unauthorized(this.ctx, challenge))) continue;
      break;
    }
    throw await this.deps.auth.denied({ ...this.ctx, what }, 'push');
  }

  /** A typed error for an unexpected status, with the registry's own error code if it sent one. */
  private async fail(res: HttpResponse, what: string): Promise<RegistryError> {
    let detail = '';
    try {
      const body: unknown = JSON.parse(await res.text(64 * 1024));
      const errors = (body as { errors?: Array<{ code?: unknown; message?: unknown }> }).errors ?? [];
      const parts = errors.slice(0, 3).map((e) => [e.code, e.message].filter((x) => typeof x === 'string').join(' '));
      if (parts.length > 0) detail = `: ${parts.join('; ')}`.slice(0, 300);
    } catch {
      await res.discard();
    }
    detail = scrubSecrets(detail);
    if (res.status === 403 || res.status === 401) return new RegistryAuthError(`${what}: access denied by ${this.host}${detail}`);
    return new RegistryPushError(`${what}: HTTP ${res.status} from ${this.host}${detail}`, { status: res.status });
  }

  /** The next upload URL from a Location header, resolved against the URL that returned it. */
  private location(res: HttpResponse, what: string): string {
    const loc = res.headers.get('location');
    if (loc === null || loc === '') throw new RegistryPushError(`${what}: ${this.host} answered ${res.status} without a Location header`, { status: res.status });
    try {
      const u = new URL(loc, res.url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
      return u.toString();
    } catch {
      throw new RegistryPushError(`${what}: ${this.host} sent an unusable Location header`, { status: res.status });
    }
  }

  private checkEcho(res: HttpResponse, expected: string, what: string): void {
    const echoed = res.headers.get('docker-content-digest');
    if (echoed !== null && echoed !== '' && echoed !== expected) {
      throw new DigestMismatchError(`${what}: ${this.host} reports digest ${echoed.slice(0, 140)}, expected ${expected}`);
    }
  }

  private progress(e: PushProgress): void {
    this.opts.onProgress?.(e);
  }

  // ---- blobs -------------------------------------------------------------

  private async blobExists(desc: Descriptor): Promise<boolean> {
    const what = `push ${this.name}: blob ${desc.digest}`;
    const res = await this.send(this.url(`/blobs/${desc.digest}`), { method: 'HEAD' }, what);
    await res.discard();
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.fail(res, what);
  }

  /** Best effort: tells the registry to drop an abandoned session. */
  private async cancel(session: string): Promise<void> {
    try {
      const res = await this.send(session, { method: 'DELETE', attempts: 1 }, `push ${this.name}: cancel upload`);
      await res.discard();
    } catch {
      // the session expires on its own
    }
  }

  /** POST /blobs/uploads/ → upload URL, plus the registry's minimum chunk size if it states one. */
  private async startUpload(desc: Descriptor): Promise<{ session: string; minChunk: number }> {
    const what = `push ${this.name}: blob ${desc.digest}: start upload`;
    const res = await this.send(this.url('/blobs/uploads/'), { method: 'POST', headers: { 'content-length': '0' }, body: '' }, what);
    if (res.status !== 202) throw await this.fail(res, what);
    await res.discard();
    return { session: this.location(res, what), minChunk: Number(res.headers.get('oci-chunk-min-length') ?? '') || 0 };
  }

  /** Tries each mountFrom repository; returns 'mounted', or the upload session the last refusal opened. */
  private async mount(desc: Descriptor): Promise<{ from: string } | { session: string; minChunk: number } | undefined> {
    let opened: { session: string; minChunk: number } | undefined;
    for (const from of this.mountFrom) {
      if (opened !== undefined) await this.cancel(opened.session);
      opened = undefined;
      const what = `push ${this.name}: mount ${desc.digest} from ${from}`;
      const q = new URLSearchParams({ mount: desc.digest, from });
      const res = await this.send(this.url(`/blobs/uploads/?${q.toString()}`), { method: 'POST', headers: { 'content-length': '0' }, body: '' }, what);
      if (res.status === 201) {
        this.checkEcho(res, desc.digest, what);
        await res.discard();
        return { from };
      }
      // 202: not mountable (or mounts unsupported); the registry opened an ordinary upload session instead.
      if (res.status !== 202) throw await this.fail(res, what);
      await res.discard();
      opened = { session: this.location(res, what), minChunk: Number(res.headers.get('oci-chunk-min-length') ?? '') || 0 };
    }
    return opened;
  }

  /** Sends one data request (PATCH or closing PUT) once; failures that a fresh session can cure become RestartUpload. */
  private async sendData(url: string, method: string, headers: Record<string, string>, body: RequestBody | undefined, what: string): Promise<HttpResponse> {
    let res: HttpResponse;
    try {
      res = await this.send(url, { method, headers, ...(body !== undefined ? { body } : {}), attempts: 1 }, what);
    } catch (err) {
      if (err instanceof RegistryUnavailableError) throw new RestartUpload(err);
      throw err;
    }
    const expected = method === 'PATCH' ? 202 : 201;
    if (res.status === expected) return res;
    const err = await this.fail(res, what);
    // 404: session unknown/expired (spec: "the client MUST restart"); 416: out of step; 5xx: transient.
    if (res.status === 404 || res.status === 416 || res.status >= 500) throw new RestartUpload(err);
    throw err;
  }

  private async uploadMonolithic(session: string, desc: Descriptor): Promise<void> {
    const what = `push ${this.name}: upload ${desc.digest}`;
    const u = new URL(session);
    u.searchParams.append('digest', desc.digest);
    const res = await this.sendData(
      u.toString(),
      'PUT',
      { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
      () => this.deps.store.openRead(desc.digest) as AsyncIterable<Buffer>,
      what,
    );
    this.checkEcho(res, desc.digest, what);
    await res.discard();
  }

  private async uploadChunked(session: string, minChunk: number, desc: Descriptor): Promise<void> {
    const what = `push ${this.name}: upload ${desc.digest}`;
    const chunk = Math.max(1, Math.floor(this.opts.chunkSize ?? this.threshold), minChunk);
    const chunks = Math.ceil(desc.size / chunk);
    this.deps.log(`${shortDigest(desc.digest)}: uploading ${humanSize(desc.size)} in ${chunks} chunk${chunks === 1 ? '' : 's'}`);
    let url = session;
    let offset = 0;
    while (offset < desc.size) {
      const start = offset;
      const end = Math.min(start + chunk, desc.size) - 1;
      const res = await this.sendData(
        url,
        'PATCH',
        { 'content-type': 'application/octet-stream', 'content-range': `${start}-${end}`, 'content-length': String(end - start + 1) },
        () => this.deps.store.openRead(desc.digest, { start, end }) as AsyncIterable<Buffer>,
        `${what} (bytes ${start}-${end})`,
      );
      await res.discard();
      const acked = rangeEnd(res.headers.get('range'));
      if (acked !== undefined && acked !== end) {
        throw new RestartUpload(new RegistryPushError(`${what}: ${this.host} acknowledged bytes up to ${acked} after a chunk ending at ${end}`, { status: res.status }));
      }
      url = this.location(res, what);
      offset = end + 1;
      if (offset < desc.size) this.progress({ digest: desc.digest, bytes: offset, total: desc.size, action: 'uploaded' });
    }
    const close = new URL(url);
    close.searchParams.append('digest', desc.digest);
    const res = await this.sendData(close.toString(), 'PUT', { 'content-length': '0' }, undefined, `${what}: close`);
    this.checkEcho(res, desc.digest, what);
    await res.discard();
  }

  private async pushBlob(desc: Descriptor): Promise<void> {
    const label = shortDigest(desc.digest);
    const done = (action: PushAction): void => this.progress({ digest: desc.digest, bytes: desc.size, total: desc.size, action });
    if (await this.blobExists(desc)) {
      this.deps.log(`${label}: already in ${this.ref.repository}`);
      return done('exists');
    }
    const attempts = this.deps.transport.attempts;
    for (let attempt = 0; ; attempt++) {
      let session: { session: string; minChunk: number } | undefined;
      try {
        if (attempt === 0 && this.mountFrom.length > 0) {
          const m = await this.mount(desc);
          if (m !== undefined && 'from' in m) {
            this.deps.log(`${label}: mounted from ${m.from}`);
            return done('mounted');
          }
          session = m;
        }
        session ??= await this.startUpload(desc);
        crashPoint('push:upload');
        const started = Date.now();
        if (desc.size <= this.threshold) {
          this.deps.log(`${label}: uploading ${humanSize(desc.size)}`);
          await this.uploadMonolithic(session.session, desc);
        } else {
          await this.uploadChunked(session.session, session.minChunk, desc);
        }
        this.deps.log(`${label}: uploaded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        return done('uploaded');
      } catch (err) {
        if (!(err instanceof RestartUpload)) {
          if (session !== undefined) await this.cancel(session.session);
          throw err;
        }
        if (session !== undefined) await this.cancel(session.session);
        if (attempt + 1 >= attempts) throw err.error;
        const delay = this.deps.transport.backoff(attempt);
        this.deps.log(`${label}: ${err.message}; restarting the upload with a new session in ${delay} ms (attempt ${attempt + 2}/${attempts})`);
        await sleep(delay);
        // A closing PUT whose response was lost may have completed the upload.
        if (await this.blobExists(desc)) {
          this.deps.log(`${label}: present after all`);
          return done('uploaded');
        }
      }
    }
  }

  // ---- manifests ---------------------------------------------------------

  private async readManifest(desc: Descriptor, kinds: readonly string[], kind: string): Promise<Buffer> {
    if (!kinds.includes(desc.mediaType)) {
      throw new ManifestInvalidError(`push ${this.name}: ${kind} has media type "${desc.mediaType.slice(0, 100)}", expected one of ${kinds.join(', ')}`);
    }
    if (desc.size > MAX_MANIFEST_BYTES) throw new ManifestInvalidError(`push ${this.name}: ${kind} of ${desc.size} bytes exceeds the ${MAX_MANIFEST_BYTES}-byte limit`);
    const bytes = await this.deps.store.readBlob(desc.digest).catch((err: unknown) => {
      if (err instanceof BlobNotFoundError) throw new BlobNotFoundError(`push ${this.name}: ${kind} ${desc.digest} is not in the content store`);
      throw err;
    });
    if (bytes.byteLength !== desc.size || digestOf(bytes, parseDigest(desc.digest).algorithm) !== desc.digest) {
      throw new DigestMismatchError(`push ${this.name}: ${kind} ${desc.digest} in the content store does not match its descriptor`);
    }
    return bytes;
  }

  private async putManifest(desc: Descriptor, bytes: Buffer, reference: string): Promise<string> {
    const what = `push ${this.name}: manifest ${reference === desc.digest ? desc.digest : `:${reference}`}`;
    // Same bytes to the same name: idempotent, so the transport may retry it.
    const res = await this.send(this.url(`/manifests/${reference}`), { method: 'PUT', headers: { 'content-type': desc.mediaType }, body: bytes }, what);
    if (res.status !== 201 && res.status !== 200) throw await this.fail(res, what);
    this.checkEcho(res, desc.digest, what);
    await res.discard();
    return res.headers.get('docker-content-digest') ?? desc.digest;
  }

  async run(image: PushImage): Promise<PushResult> {
    const manifestBytes = await this.readManifest(image.manifest, MANIFEST_MEDIA_TYPES, 'manifest');
    let referenced: Descriptor[] = [];
    try {
      const m = parseImageManifest(JSON.parse(manifestBytes.toString('utf8')) as unknown);
      referenced = [m.config, ...m.layers];
    } catch (err) {
      throw new ManifestInvalidError(`push ${this.name}: manifest ${image.manifest.digest}: ${err instanceof Error ? err.message : String(err)}`);
    }
    let indexBytes: Buffer | undefined;
    if (image.index !== undefined) {
      indexBytes = await this.readManifest(image.index, INDEX_MEDIA_TYPES, 'index');
      const idx = parseImageIndex(JSON.parse(indexBytes.toString('utf8')) as unknown);
      if (!idx.manifests.some((d) => d.digest === image.manifest.digest)) {
        throw new ManifestInvalidError(`push ${this.name}: index ${image.index.digest} does not list manifest ${image.manifest.digest}`);
      }
    }
    const top = image.index ?? image.manifest;
    if (this.ref.digest !== undefined && this.ref.digest !== top.digest) {
      throw new RegistryPushError(`push ${this.name}: the reference pins ${this.ref.digest} but the image is ${top.digest}`);
    }
    const tags = [...new Set(this.opts.tags ?? (this.ref.tag !== undefined ? [this.ref.tag] : []))];
    for (const tag of tags) makeReference({ registry: this.ref.registry, repository: this.ref.repository, tag }); // validates

    const byDigest = new Map<string, Descriptor>();
    for (const d of [...image.blobs, ...referenced]) if (!byDigest.has(d.digest)) byDigest.set(d.digest, d);
    const blobs = [...byDigest.values()];
    // Everything must be local before the first byte goes out: no half-pushed images for a missing blob.
    for (const b of blobs) {
      parseDigest(b.digest);
      if (!(await this.deps.store.has(b.digest))) throw new BlobNotFoundError(`push ${this.name}: blob ${b.digest} is not in the content store`);
      const stored = await this.deps.store.size(b.digest);
      if (stored !== b.size) {
        throw new DigestMismatchError(`push ${this.name}: blob ${b.digest} is ${stored} bytes in the content store, descriptor says ${b.size}`);
      }
    }
    const total = blobs.reduce((n, b) => n + b.size, 0);
    this.deps.log(`${this.name}: pushing ${blobs.length} blob${blobs.length === 1 ? '' : 's'} (${humanSize(total)}) to ${this.host}`);
    await mapPool(blobs, this.deps.concurrency, (b) => this.pushBlob(b));

    // The top-level manifest goes up once per tag (or once by digest when
    // there is no tag); an index's image manifest first, by digest, since the
    // registry checks that an index's entries exist.
    const putTop = async (desc: Descriptor, bytes: Buffer): Promise<string> => {
      let reported = desc.digest;
      for (const reference of tags.length > 0 ? tags : [desc.digest]) reported = await this.putManifest(desc, bytes, reference);
      return reported;
    };
    let manifestDigest: string;
    let indexDigest: string | undefined;
    if (image.index !== undefined && indexBytes !== undefined) {
      manifestDigest = await this.putManifest(image.manifest, manifestBytes, image.manifest.digest);
      indexDigest = await putTop(image.index, indexBytes);
    } else {
      manifestDigest = await putTop(image.manifest, manifestBytes);
    }
    const digest = indexDigest ?? manifestDigest;
    this.deps.log(`${this.name}: pushed ${digest}${tags.length > 0 ? ` as ${tags.join(', ')}` : ''}`);
    return { digest, manifestDigest, ...(indexDigest !== undefined ? { indexDigest } : {}), tags };
  }
}

export function pushImage(deps: PushDeps, ref: Reference, image: PushImage, opts: PushOptions = {}): Promise<PushResult> {
  return new Pusher(deps, ref, opts).run(image);
}

