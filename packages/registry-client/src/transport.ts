/**
 * HTTP for registries: scheme choice, redirects, retries with backoff, idle
 * timeouts and total deadlines. Built on Node's global fetch (undici).
 *
 * Redirects are followed by hand (not by fetch) so that the Authorization
 * header is provably dropped whenever a redirect leaves the origin: blob
 * downloads are routinely redirected to object storage, which must never see
 * registry credentials.
 */
import { isIP } from 'node:net';
import { DestinationRefusedError, RegistryDeadlineError, RegistryError, RegistryUnavailableError } from './errors.js';
import { humanSize, sleep } from './util.js';

export interface RetryOptions {
  /** Total attempts including the first. Default 4. */
  attempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export interface TransportOptions {
  insecureRegistries?: string[];
  retry?: RetryOptions;
  /** Abort when no bytes (or no response headers) arrive for this long. Default 60 s. */
  idleTimeoutMs?: number;
  /**
   * One fixed total deadline for every request: all its attempts, redirects
   * and its whole body. Default: `STOWAGE_REGISTRY_DEADLINE` (seconds) when
   * set, else {@link defaultDeadlineMs} of the bytes the request moves.
   */
  deadlineMs?: number;
  /**
   * Called with every URL before it is fetched, the first one and each
   * redirect's target; a string it returns refuses the request with that
   * reason (DestinationRefusedError). For ADD <url>, which must not reach
   * the runner's own loopback services, also not through a redirect.
   */
  checkDestination?: (url: URL) => Promise<string | undefined>;
  log?: (line: string) => void;
}

/*
 * The idle timeout re-arms on every byte, so on its own a server that sends
 * one byte every 59 s holds a build forever. A total deadline bounds that.
 * The default must not break honest transfers: a blob of several GB over a
 * slow link takes hours, and a flat limit that allows that would also let a
 * small manifest drip for hours. So it scales with what the request is to
 * move (a blob's declared size, a response's Content-Length): 5 minutes for
 * latency, auth and small bodies, plus the time the bytes take at 256 KiB/s
 * (2 Mbit/s, slower than any link one builds images over; a drip of a byte a
 * minute is ten million times slower), capped at 6 hours (the longest a CI job
 * runs on the common hosted runners) because the declared size comes from
 * the server or the manifest, i.e. from whoever a hostile repository points
 * us to. A 5 GiB layer gets 5 h 46 min; a manifest or config about 5 min.
 */
const DEADLINE_BASE_MS = 5 * 60_000;
const DEADLINE_MIN_BYTES_PER_S = 256 * 1024;
const DEADLINE_MAX_MS = 6 * 3600_000;

/** The default total deadline of a request that moves `bytes` (see the comment above). */
export function defaultDeadlineMs(bytes: number): number {
  const b = Number.isFinite(bytes) && bytes > 0 ? bytes : 0;
  return Math.min(DEADLINE_MAX_MS, DEADLINE_BASE_MS + Math.ceil((b / DEADLINE_MIN_BYTES_PER_S) * 1000));
}

/** `STOWAGE_REGISTRY_DEADLINE` (seconds, fractions allowed) as a fixed deadline in ms; undefined when unset or not a positive number. */
export function registryDeadlineFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const s = Number(env.STOWAGE_REGISTRY_DEADLINE);
  return env.STOWAGE_REGISTRY_DEADLINE !== undefined && Number.isFinite(s) && s > 0 ? Math.round(s * 1000) : undefined;
}

/**
 * The total time one request may take against one endpoint, shared by all
 * its attempts, redirect hops and body reads (and, for a blob, by every
 * Range resume): started once, it is never re-armed. Why the whole rather
 * than each attempt: a server that drips until just before a per-attempt
 * deadline and then resets the connection would get attempts × deadline;
 * with one deadline for the whole it gets the deadline, full stop. An
 * honest transfer interrupted once loses nothing by it: a resume asks only
 * for the missing bytes, so the total time the bytes need is the same.
 */
export class Deadline {
  private readonly start = Date.now();
  private limitMs: number;

  constructor(
    ms: number,
    /** A default deadline for a request of unknown size: grows to fit a Content-Length once one is declared. */
    private readonly scalable: boolean,
  ) {
    this.limitMs = ms;
  }

  get ms(): number {
    return this.limitMs;
  }

  remaining(): number {
    return this.start + this.limitMs - Date.now();
  }

  /** A response declared `bytes` of body: a default deadline of unknown size grows to fit them (never shrinks). */
  fit(bytes: number): void {
    if (this.scalable && Number.isFinite(bytes) && bytes > 0) this.limitMs = Math.max(this.limitMs, defaultDeadlineMs(bytes));
  }
}

function formatMs(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s`;
  if (ms < 3600_000) return `${Math.round(ms / 1000)} s`;
  return `${(ms / 3600_000).toFixed(1)} h`;
}

/** The error for a request that ran out of time, naming what, which host, and how to allow longer. */
export function deadlineError(what: string, url: string, deadline: Deadline, detail: string): RegistryDeadlineError {
  let host: string;
  try {
    host = new URL(url).host;
  } catch {
    host = '<invalid url>';
  }
  return new RegistryDeadlineError(
    `${what}: ${host} did not finish within the ${formatMs(deadline.ms)} deadline for the whole request, retries included (${detail}). ` +
      'A server that keeps a transfer alive this slowly may be stalling on purpose; if the link is just slow, STOWAGE_REGISTRY_DEADLINE=<seconds> allows longer',
    { host, deadlineMs: deadline.ms },
  );
}

/** Why a controller was aborted when the total deadline passed (told apart from the idle timeout's reason). */
class DeadlinePassed extends Error {}

const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;
const USER_AGENT = 'stowage-registry-client/0.1';
/** A server may ask for a long Retry-After; we honour it up to this bound so a pull never hangs for hours. */
const MAX_RETRY_AFTER_MS = 60_000;

/** Splits `host[:port]` (IPv6 in brackets) into its parts. */
export function splitHostPort(hostPort: string): { hostname: string; port?: string } {
  if (hostPort.startsWith('[')) {
    const end = hostPort.indexOf(']');
    const hostname = hostPort.slice(1, end === -1 ? undefined : end);
    const rest = end === -1 ? '' : hostPort.slice(end + 1);
    return rest.startsWith(':') ? { hostname, port: rest.slice(1) } : { hostname };
  }
  const colon = hostPort.lastIndexOf(':');
  if (colon !== -1 && hostPort.indexOf(':') === colon) return { hostname: hostPort.slice(0, colon), port: hostPort.slice(colon + 1) };
  return { hostname: hostPort };
}

/** Loopback as Docker treats it: localhost, 127.0.0.0/8 and ::1 are reachable over plain HTTP. */
export function isLoopbackHost(hostPort: string): boolean {
  const { hostname } = splitHostPort(hostPort);
  const h = hostname.toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

/** The host that actually serves the API; Docker Hub's reference domain is not it. */
export function apiHost(registry: string): string {
  return registry === 'docker.io' || registry === 'index.docker.io' ? 'registry-1.docker.io' : registry;
}

/** Host and path only: query strings of redirect targets carry signatures and must not reach logs. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.host}${u.pathname}`;
  } catch {
    return '<invalid url>';
  }
}

/**
 * A response whose body reads are guarded by the idle timeout and by the
 * request's total deadline. Always consume it (bytes/stream) or discard it,
 * so the connection is released.
 */
export class HttpResponse {
  constructor(
    private readonly res: Response,
    private readonly controller: AbortController,
    private readonly idleTimeoutMs: number,
    /** Final URL after redirects. */
    readonly url: string,
    private readonly what: string,
    private readonly deadline?: Deadline,
  ) {}

  get status(): number {
    return this.res.status;
  }

  get headers(): Headers {
    return this.res.headers;
  }

  /**
   * Streams the body; throws RegistryUnavailableError if it stalls for longer
   * than the idle timeout, RegistryDeadlineError once the request's total
   * deadline has passed, however steadily bytes trickle in.
   */
  async *stream(): AsyncGenerator<Uint8Array> {
    const body = this.res.body;
    if (body === null) return;
    const reader = body.getReader();
    let finished = false;
    let received = 0;
    try {
      for (;;) {
        const left = this.deadline?.remaining() ?? Infinity;
        const overdue = (): RegistryDeadlineError =>
          deadlineError(this.what, this.url, this.deadline as Deadline, `${humanSize(received)} of the body received`);
        if (left <= 0) throw overdue();
        // One timer per read: whichever of the two limits comes first.
        const byDeadline = left < this.idleTimeoutMs;
        let timer: NodeJS.Timeout | undefined;
        const stalled = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                byDeadline ? overdue() : new RegistryUnavailableError(`${this.what}: no data received for ${this.idleTimeoutMs} ms from ${describeUrl(this.url)}`),
              ),
            byDeadline ? left : this.idleTimeoutMs,
          );
        });
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await Promise.race([reader.read(), stalled]);
        } catch (err) {
          if (err instanceof RegistryUnavailableError || err instanceof RegistryDeadlineError) throw err;
          throw new RegistryUnavailableError(`${this.what}: connection to ${describeUrl(this.url)} failed while reading: ${errorText(err)}`, { cause: err });
        } finally {
          clearTimeout(timer);
        }
        if (chunk.done) {
          finished = true;
          return;
        }
        received += chunk.value.byteLength;
        yield chunk.value;
      }
    } finally {
      if (!finished) {
        // Early exit (error, timeout, consumer stopped): tear the connection down.
        this.controller.abort();
        reader.cancel().catch(() => undefined);
      }
      try {
        reader.releaseLock();
      } catch {
        // Older stream implementations refuse while a read is pending; the body is cancelled anyway.
      }
    }
  }

  /** Reads the whole body, refusing more than `limit` bytes. */
  async bytes(limit: number, tooLarge: (limit: number) => Error): Promise<Buffer> {
    const declared = Number(this.res.headers.get('content-length') ?? '');
    if (Number.isFinite(declared) && declared > limit) {
      await this.discard();
      throw tooLarge(limit);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const c of this.stream()) {
      total += c.byteLength;
      if (total > limit) throw tooLarge(limit); // generator's finally aborts the connection
      chunks.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    }
    return Buffer.concat(chunks, total);
  }

  async text(limit = 1 << 20): Promise<string> {
    return (await this.bytes(limit, (l) => new RegistryUnavailableError(`${this.what}: response larger than ${l} bytes`))).toString('utf8');
  }

  async discard(): Promise<void> {
    this.controller.abort();
    await this.res.body?.cancel().catch(() => undefined);
  }
}

/**
 * A request body. Streamed bodies are given as a factory so that a redirect
 * (or a caller's retry) can send them again from the start; each call must
 * return a fresh stream.
 */
export type RequestBody = string | Uint8Array | (() => AsyncIterable<Uint8Array | string>);

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: RequestBody;
  /** Human description for errors and logs, e.g. "manifest docker.io/library/golang:1.21". */
  what: string;
  /**
   * Overrides the transport's attempt count for this request. Non-idempotent
   * requests (blob data PATCH/PUT) pass 1: their caller restarts the whole
   * upload instead.
   */
  attempts?: number;
  /**
   * The total deadline to share with other requests of the same fetch (a
   * blob's Range resumes); default a new one for this request, from the
   * transport's fixed deadline or scaled by `bytes`.
   */
  deadline?: Deadline;
  /** Body bytes this request moves, either way, to scale the default deadline; default the request's Content-Length, else unknown. */
  bytes?: number;
}

type ErrorLike = Error & { code?: string; cause?: unknown };

/** Duck-typed: undici's errors may come from another realm (a vm context), where `instanceof Error` fails. */
function isErrorLike(e: unknown): e is ErrorLike {
  return typeof e === 'object' && e !== null && typeof (e as Error).message === 'string';
}

/** What a broken-off body means, by the cause's code, for undici's bare "terminated". */
const BROKEN_OFF: Record<string, string> = {
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed by the server',
};

function errorText(err: unknown): string {
  if (!isErrorLike(err)) return String(err);
  const cause = err.cause;
  const code = isErrorLike(cause) ? (cause.code ?? cause.message) : undefined;
  // undici says only "fetch failed"; the useful part (ECONNREFUSED, ENOTFOUND, …) is in the cause.
  if (err.message === 'fetch failed' && code !== undefined) return code;
  // …and "terminated" when a body breaks off: name the fault (a reset, a close) so the error does.
  if (err.message === 'terminated' && code !== undefined) return `${BROKEN_OFF[code] ?? 'body broken off'} (${code})`;
  return code !== undefined && code !== err.message ? `${err.message} (${code})` : err.message;
}


/**
 * Loads Node's HTTP client: undici and its WebAssembly HTTP parser are loaded
 * and compiled on the first request, 20-30 MB of memory for a moment. A
 * process that talks to a registry only at its end (a build that pushes)
 * calls this first, so that happens while the process is small rather than
 * on top of a finished build's peak. The request goes to a server of its own
 * on the loopback interface, not to any registry.
 */
export async function loadHttpClient(): Promise<void> {
  const { createServer } = await import('node:http');
  const server = createServer((_req, res) => res.end());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const address = server.address();
    if (address === null || typeof address === 'string') return;
    const res = await fetch(`http://127.0.0.1:${address.port}/`, { signal: AbortSignal.timeout(5000) });
    await res.arrayBuffer();
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

/** Retry-After is either delta-seconds or an HTTP-date. */
export function parseRetryAfter(v: string | null, now = Date.now()): number | undefined {
  if (v === null || v.trim() === '') return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

export class Transport {
  private readonly insecure: Set<string>;
  readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  readonly idleTimeoutMs: number;
  /** The fixed total deadline (option, else STOWAGE_REGISTRY_DEADLINE); undefined: scaled per request. */
  readonly deadlineMs: number | undefined;
  private readonly log: (line: string) => void;
  private readonly checkDestination: TransportOptions['checkDestination'];

  constructor(opts: TransportOptions = {}) {
    this.checkDestination = opts.checkDestination;
    this.insecure = new Set((opts.insecureRegistries ?? []).map((h) => h.toLowerCase()));
    this.attempts = Math.max(1, Math.floor(opts.retry?.attempts ?? 4));
    this.baseDelayMs = Math.max(0, opts.retry?.baseDelayMs ?? 250);
    this.maxDelayMs = Math.max(this.baseDelayMs, opts.retry?.maxDelayMs ?? 10_000);
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
    const fixed = opts.deadlineMs ?? registryDeadlineFromEnv();
    if (fixed !== undefined && !(Number.isFinite(fixed) && fixed > 0)) throw new RangeError(`deadlineMs must be a positive number of milliseconds, not ${fixed}`);
    // setTimeout takes at most 2^31-1 ms (24.8 days) and fires at once beyond that; longer means "no deadline" anyway.
    this.deadlineMs = fixed === undefined ? undefined : Math.min(fixed, 2 ** 31 - 1);
    this.log = opts.log ?? (() => undefined);
  }

  /**
   * A new total deadline, started now, for a fetch that moves `bytes` (a
   * blob's declared size; undefined when unknown: then a Content-Length the
   * response declares extends it). A fixed deadline ignores sizes.
   */
  deadline(bytes?: number): Deadline {
    if (this.deadlineMs !== undefined) return new Deadline(this.deadlineMs, false);
    return new Deadline(defaultDeadlineMs(bytes ?? 0), bytes === undefined);
  }

  /** Plain HTTP only for loopback and explicitly insecure registries (HOST or HOST:PORT). */
  schemeFor(hostPort: string): 'http' | 'https' {
    const h = hostPort.toLowerCase();
    if (isLoopbackHost(h) || this.insecure.has(h) || this.insecure.has(splitHostPort(h).hostname)) return 'http';
    return 'https';
  }

  baseUrl(registryHost: string): string {
    const host = apiHost(registryHost);
    return `${this.schemeFor(host)}://${host}`;
  }

  /** Exponential backoff with "equal jitter": half fixed, half random, so retries from many clients spread out. */
  backoff(attempt: number): number {
    const exp = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** attempt);
    return Math.round(exp / 2 + Math.random() * (exp / 2));
  }

  /**
   * Sends a request, following redirects and retrying transient failures
   * (connection errors, timeouts, 429, 500/502/503/504). Other statuses are
   * returned for the caller to interpret. Throws RegistryUnavailableError once
   * every attempt is used up, RegistryDeadlineError (not retried) once the
   * total deadline has passed, whatever the attempt.
   */
  async request(url: string, opts: RequestOptions): Promise<HttpResponse> {
    let lastProblem = '';
    let lastError: unknown;
    const attempts = Math.max(1, Math.floor(opts.attempts ?? this.attempts));
    const deadline = opts.deadline ?? this.deadline(opts.bytes ?? declaredLength(opts.headers));
    for (let attempt = 0; attempt < attempts; attempt++) {
      let delay = 0;
      try {
        const res = await this.once(url, opts, deadline);
        if (!RETRY_STATUSES.has(res.status)) return res;
        lastProblem = `HTTP ${res.status} from ${describeUrl(res.url)}`;
        const retryAfter = res.status === 429 || res.status === 503 ? parseRetryAfter(res.headers.get('retry-after')) : undefined;
        delay = retryAfter !== undefined ? Math.min(retryAfter, MAX_RETRY_AFTER_MS) : this.backoff(attempt);
        await res.discard();
      } catch (err) {
        // Our own body source refused its bytes (RegistryError other than unavailable): retrying cannot help.
        if (err instanceof RegistryError && !(err instanceof RegistryUnavailableError)) throw err;
        lastError = err;
        lastProblem = err instanceof RegistryUnavailableError ? err.message : errorText(err);
        delay = this.backoff(attempt);
      }
      if (attempt + 1 < attempts) {
        // A wait that ends past the deadline would only fail then: fail now, saying what went wrong last.
        if (delay >= deadline.remaining()) throw deadlineError(opts.what, url, deadline, `last problem: ${lastProblem}`);
        this.log(`retrying ${opts.what} in ${delay} ms (attempt ${attempt + 2}/${attempts}): ${lastProblem}`);
        await sleep(delay);
      }
    }
    throw new RegistryUnavailableError(`${opts.what}: ${lastProblem}${attempts > 1 ? ` (gave up after ${attempts} attempts)` : ''}`, { cause: lastError });
  }

  /** One attempt: fetch plus manual redirect handling. */
  private async once(startUrl: string, opts: RequestOptions, deadline: Deadline): Promise<HttpResponse> {
    let url = startUrl;
    const origin = new URL(startUrl).origin;
    let method = opts.method ?? 'GET';
    let body = opts.body;
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...opts.headers };
    // Once a redirect leaves the origin, credentials stay off for the rest of
    // the chain, even if it later bounces back.
    let leftOrigin = false;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      if (deadline.remaining() <= 0) throw deadlineError(opts.what, url, deadline, hop > 0 ? `after ${hop} redirects` : 'no time left for another attempt');
      const refused = await this.checkDestination?.(new URL(url));
      if (refused !== undefined) throw new DestinationRefusedError(refused);
      const controller = new AbortController();
      // The total deadline bounds sending the request (a slowly read upload)
      // and waiting for headers alike; the response's body reads take it over.
      const deadlineTimer = setTimeout(() => controller.abort(new DeadlinePassed()), deadline.remaining());
      // Time to response headers is bounded by the same idle timeout; while a
      // streamed body is being sent, each chunk taken re-arms it, so a long
      // upload is fine but a stalled one is not.
      let timer: NodeJS.Timeout | undefined;
      let settled = false;
      const arm = (): void => {
        if (settled) return; // headers are in: the response's own idle guard takes over
        clearTimeout(timer);
        timer = setTimeout(() => controller.abort(new Error(`no progress for ${this.idleTimeoutMs} ms`)), this.idleTimeoutMs);
      };
      arm();
      let res: Response;
      // A failure of our own body source (a blob that does not match its digest) is not the network's.
      let sourceError: { error: unknown } | undefined;
      try {
        if (new URL(url).origin !== origin) leftOrigin = true;
        const sendHeaders = leftOrigin ? withoutAuthorization(headers) : headers;
        const init: RequestInit & { duplex?: 'half' } = { method, headers: sendHeaders, redirect: 'manual', signal: controller.signal };
        if (typeof body === 'function') {
          init.body = streamBody(body(), arm, (error) => (sourceError ??= { error }));
          init.duplex = 'half';
        } else if (body !== undefined) {
          init.body = body;
        }
        res = await fetch(url, init);
      } catch (err) {
        if (sourceError !== undefined && sourceError.error instanceof RegistryError) throw sourceError.error;
        const reason = controller.signal.aborted ? (controller.signal.reason as unknown) : err;
        if (reason instanceof DeadlinePassed) throw deadlineError(opts.what, url, deadline, typeof body === 'function' ? 'while sending the request body' : 'no response headers yet');
        throw new RegistryUnavailableError(`cannot reach ${describeUrl(url)}: ${errorText(reason)}`, { cause: err });
      } finally {
        settled = true;
        clearTimeout(timer);
        clearTimeout(deadlineTimer);
      }
      const location = res.headers.get('location');
      if (!REDIRECT_STATUSES.has(res.status) || location === null) {
        deadline.fit(Number(res.headers.get('content-length') ?? ''));
        return new HttpResponse(res, controller, this.idleTimeoutMs, url, opts.what, deadline);
      }
      await res.body?.cancel().catch(() => undefined);
      const next = new URL(location, url);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new RegistryUnavailableError(`refusing redirect to ${next.protocol} URL`);
      }
      url = next.toString();
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
        method = 'GET';
        body = undefined;
        for (const k of Object.keys(headers)) if (/^content-(length|type|range)$/i.test(k)) delete headers[k];
      }
    }
    throw new RegistryUnavailableError(`more than ${MAX_REDIRECTS} redirects from ${describeUrl(startUrl)}`);
  }
}

/**
 * Adapts an async iterable to the ReadableStream fetch sends, calling
 * `progress` for each chunk taken and `failed` when the source throws.
 */
function streamBody(source: AsyncIterable<Uint8Array | string>, progress: () => void, failed: (err: unknown) => void): ReadableStream<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let r: IteratorResult<Uint8Array | string>;
      try {
        r = await it.next();
      } catch (err) {
        failed(err);
        throw err;
      }
      if (r.done === true) {
        controller.close();
        return;
      }
      progress();
      const v = r.value;
      controller.enqueue(typeof v === 'string' ? Buffer.from(v, 'utf8') : v);
    },
    async cancel() {
      await it.return?.();
    },
  });
}

/** A request's own Content-Length header, if it has one. */
function declaredLength(headers: Record<string, string> | undefined): number | undefined {
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (k.toLowerCase() !== 'content-length') continue;
    const n = Number(v);
    return Number.isFinite(n) && n >= 0 ? n : undefined;
  }
  return undefined;
}

function withoutAuthorization(h: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (k.toLowerCase() !== 'authorization') out[k] = v;
  return out;
}
