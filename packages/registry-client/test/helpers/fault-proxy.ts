/**
 * A fault-injecting HTTP proxy in front of a real registry, for tests.
 *
 * Loopback only: it listens on 127.0.0.1 and refuses a target that is not a
 * loopback address. Bounded: bodies are streamed with backpressure (a 100 MB
 * layer never sits in memory), connections are capped, and a stalled
 * response is held for at most `maxStallMs` before the socket is destroyed,
 * so a test that forgets to close it still ends.
 *
 * Each request is offered to `fault(req)`; the fault it returns (if any) is
 * applied to that one request, everything else is forwarded verbatim
 * (including Range, so the registry's own 206 answers come through).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { isLoopbackHost } from '../../src/index.js';

export type Fault =
  /** Answer with this status (and headers) instead of forwarding. */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  /** Forward, but stop after `after` body bytes: 'close' destroys the socket (Content-Length kept), 'clean' ends a chunked body normally. */
  | { kind: 'truncate'; after: number; mode: 'close' | 'clean' }
  /** Forward, but send a TCP RST after `after` body bytes. */
  | { kind: 'reset'; after: number }
  /** Forward, but flip every bit of the byte at `at` (same length). */
  | { kind: 'corrupt'; at: number }
  /** Send headers and `after` body bytes (-1: not even headers), then nothing. */
  | { kind: 'stall'; after: number }
  /**
   * Forward headers and `after` body bytes, then the rest one byte every `every` ms: never idle long
   * enough for an idle timeout, never done. Stops when the client goes away, or after `maxStallMs`.
   */
  | { kind: 'drip'; every: number; after?: number }
  /** Answer 307 to `location`. */
  | { kind: 'redirect'; location: string }
  /** Answer with this body and headers (status 200); `chunked` sends no Content-Length. */
  | { kind: 'replace'; body: Buffer | string; headers: Record<string, string>; chunked?: boolean }
  /** Forward without the Range header: the registry answers 200 with the whole body. */
  | { kind: 'ignore-range' }
  /**
   * Answer 200 with `size` filler bytes (generated, never held whole), `chunk` bytes per write and
   * one write per event-loop turn after a 1 ms pause, so a client in this process has read one chunk
   * before the next is sent; stops as soon as the client goes away. `declare` sends Content-Length.
   * With the client in this process, `sent` is then what it read, give or take the chunk in flight.
   */
  | { kind: 'flood'; size: number; chunk: number; declare: boolean; headers: Record<string, string> };

export interface SeenRequest {
  method: string;
  url: string;
  range?: string;
  authorization?: string;
  status?: number;
  fault?: Fault['kind'];
  /** Body bytes sent to the client. */
  sent: number;
}

export interface FaultProxyOptions {
  /** Upstream registry, e.g. http://127.0.0.1:5055. Must be loopback. */
  target: string;
  fault?: (req: IncomingMessage, seen: SeenRequest[]) => Fault | undefined;
  /** Require this Authorization header on every request; answer 401 with a Basic challenge otherwise. */
  requireAuthorization?: string;
  /** Upper bound on how long a stalled response is held open (default 30 s). */
  maxStallMs?: number;
}

export interface FaultProxy {
  host: string;
  url: string;
  port: number;
  seen: SeenRequest[];
  close(): Promise<void>;
}

const MAX_CONNECTIONS = 64;

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(opts.target);
  if (target.protocol !== 'http:' || !isLoopbackHost(target.host)) throw new Error(`fault proxy: target must be a loopback http URL, not ${opts.target}`);
  const maxStallMs = opts.maxStallMs ?? 30_000;
  const seen: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const server = http.createServer((req, res) => {
    const entry: SeenRequest = { method: req.method ?? '', url: req.url ?? '', sent: 0 };
    if (req.headers.range !== undefined) entry.range = req.headers.range;
    if (req.headers.authorization !== undefined) entry.authorization = req.headers.authorization;
    seen.push(entry);
    res.on('finish', () => (entry.status = res.statusCode));
    if (opts.requireAuthorization !== undefined && req.headers.authorization !== opts.requireAuthorization) {
      entry.status = 401;
      res.writeHead(401, { 'www-authenticate': 'Basic realm="fault-proxy"', 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      return;
    }
    const fault = opts.fault?.(req, seen);
    if (fault !== undefined) entry.fault = fault.kind;
    handle(req, res, entry, fault).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(err));
    });
  });
  server.maxConnections = MAX_CONNECTIONS;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function handle(req: IncomingMessage, res: ServerResponse, entry: SeenRequest, fault: Fault | undefined): Promise<void> {
    // Drain any request body: registry GETs have none, and we never forward one.
    req.resume();
    switch (fault?.kind) {
      case 'status':
        res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
        res.end(fault.body ?? '');
        return;
      case 'redirect':
        res.writeHead(307, { location: fault.location, 'content-length': '0' });
        res.end();
        return;
      case 'replace': {
        const body = typeof fault.body === 'string' ? Buffer.from(fault.body) : fault.body;
        res.writeHead(200, fault.chunked === true ? fault.headers : { ...fault.headers, 'content-length': String(body.byteLength) });
        res.end(req.method === 'HEAD' ? undefined : body);
        entry.sent = body.byteLength;
        return;
      }
      case 'flood':
        await flood(res, fault, entry);
        return;
      case 'stall':
        if (fault.after < 0) {
          holdOpen(res, false);
          return;
        }
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v !== 'string' || k === 'host' || k === 'connection' || k === 'authorization') continue;
      if (k === 'range' && fault?.kind === 'ignore-range') continue;
      headers[k] = v;
    }
    const upstream = await new Promise<IncomingMessage>((resolve, reject) => {
      const r = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, resolve);
      r.on('error', reject);
      r.end();
    });
    const status = upstream.statusCode ?? 502;
    const outHeaders = { ...upstream.headers };
    delete outHeaders.connection;
    delete outHeaders['keep-alive'];
    if (fault?.kind === 'truncate' && fault.mode === 'clean') {
      // Chunked, so ending early is a well-formed (short) response.
      delete outHeaders['content-length'];
    }
    res.writeHead(status, outHeaders);
    if (req.method === 'HEAD') {
      upstream.resume();
      res.end();
      return;
    }
    if (fault?.kind === 'drip') {
      await drip(res, upstream, fault, entry);
      return;
    }
    let pos = 0;
    for await (const raw of upstream) {
      let chunk = raw as Buffer;
      const start = pos;
      pos += chunk.byteLength;
      if (fault?.kind === 'corrupt' && fault.at >= start && fault.at < pos) {
        chunk = Buffer.from(chunk);
        chunk[fault.at - start] = chunk[fault.at - start]! ^ 0xff;
      }
      const cut = fault?.kind === 'truncate' || fault?.kind === 'reset' || fault?.kind === 'stall' ? fault.after : undefined;
      if (cut !== undefined && pos >= cut) {
        await write(res, chunk.subarray(0, cut - start), entry);
        upstream.destroy();
        if (fault?.kind === 'stall') {
          holdOpen(res, true);
        } else if (fault?.kind === 'reset') {
          // Let the bytes leave before the RST, so the client sees a partial body.
          await new Promise((r) => setTimeout(r, 20));
          res.socket?.resetAndDestroy();
        } else if (fault?.kind === 'truncate' && fault.mode === 'clean') {
          res.end();
        } else {
          await new Promise((r) => setTimeout(r, 20));
          res.socket?.destroy();
        }
        return;
      }
      await write(res, chunk, entry);
    }
    res.end();
  }

  /** The body of a 'drip' fault: `after` bytes at once, then a byte at a time, for at most maxStallMs. */
  async function drip(res: ServerResponse, upstream: IncomingMessage, fault: Extract<Fault, { kind: 'drip' }>, entry: SeenRequest): Promise<void> {
    res.flushHeaders();
    let gone = false;
    const closed = new Promise<void>((resolve) =>
      res.on('close', () => {
        gone = true;
        resolve();
      }),
    );
    const until = Date.now() + maxStallMs;
    let pos = 0;
    try {
      for await (const raw of upstream) {
        const chunk = raw as Buffer;
        for (let i = 0; i < chunk.byteLength; ) {
          if (gone || res.destroyed) return;
          if (Date.now() >= until) {
            res.socket?.destroy();
            return;
          }
          const n = pos < (fault.after ?? 0) ? Math.min(chunk.byteLength - i, (fault.after ?? 0) - pos) : 1;
          if (n === 1) await new Promise((r) => setTimeout(r, fault.every));
          if (gone || res.destroyed) return;
          // A write to a socket the client just closed may never call back: the close ends the wait too.
          await Promise.race([write(res, chunk.subarray(i, i + n), entry).catch(() => undefined), closed]);
          i += n;
          pos += n;
        }
      }
      res.end();
    } finally {
      upstream.destroy();
    }
  }

  /** Keeps a response open without sending anything, for at most maxStallMs. */
  function holdOpen(res: ServerResponse, headers: boolean): void {
    if (headers && !res.headersSent) res.flushHeaders();
    const t = setTimeout(() => {
      timers.delete(t);
      res.socket?.destroy();
    }, maxStallMs);
    timers.add(t);
    res.on('close', () => {
      clearTimeout(t);
      timers.delete(t);
    });
  }

  const { port } = await new Promise<{ port: number }>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve({ port: typeof a === 'object' && a !== null ? a.port : 0 });
    });
  });

  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function flood(res: ServerResponse, fault: Extract<Fault, { kind: 'flood' }>, entry: SeenRequest): Promise<void> {
  res.writeHead(200, fault.declare ? { ...fault.headers, 'content-length': String(fault.size) } : fault.headers);
  res.flushHeaders();
  let gone = false;
  const closed = new Promise<void>((resolve) =>
    res.on('close', () => {
      gone = true;
      resolve();
    }),
  );
  const filler = Buffer.alloc(fault.chunk, 0x20);
  for (let pos = 0; pos < fault.size; pos += fault.chunk) {
    await new Promise((r) => setTimeout(r, 1));
    // Past the poll phase: a close the client made while reading the last chunk is seen now.
    await new Promise((r) => setImmediate(r));
    if (gone || res.destroyed) return;
    // A write to a socket the client just closed may never call back: the close ends the wait too.
    const ok = await Promise.race([write(res, filler.subarray(0, Math.min(fault.chunk, fault.size - pos)), entry).then(() => true, () => false), closed.then(() => false)]);
    if (!ok) return;
  }
  res.end();
}

/** Writes with backpressure. */
function write(res: ServerResponse, chunk: Buffer, entry: SeenRequest): Promise<void> {
  entry.sent += chunk.byteLength;
  if (chunk.byteLength === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    res.write(chunk, (err) => (err ? reject(err) : resolve()));
  });
}

/** A second loopback server standing in for another origin (object storage); records the headers it received. */
export async function startOrigin(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; port: number; received: IncomingMessage['headers'][]; close(): Promise<void> }> {
  const received: IncomingMessage['headers'][] = [];
  const server = http.createServer((req, res) => {
    received.push({ ...req.headers });
    handler(req, res);
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? a.port : 0);
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
