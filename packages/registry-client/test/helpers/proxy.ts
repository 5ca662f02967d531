/**
 * A loopback HTTP server that forwards to the real registry, with hooks to
 * answer some requests itself (auth challenges, token endpoint, faults) or
 * to rewrite blob bytes in transit.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';

export interface SeenRequest {
  method: string;
  url: string;
  authorization?: string;
}

export interface ProxyOptions {
  /** e.g. http://127.0.0.1:5000 */
  target: string;
  /** Return true if the request was fully handled. */
  intercept?: (req: IncomingMessage, res: ServerResponse, body: Buffer) => boolean | Promise<boolean>;
  /** Rewrite a successful blob GET body before sending it on. */
  rewriteBlob?: (body: Buffer) => Buffer;
}

export interface RunningServer {
  host: string;
  url: string;
  port: number;
  seen: SeenRequest[];
  close(): Promise<void>;
}

export function listen(handler: http.RequestListener): Promise<{ server: http.Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = http.createServer(handler);
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve({ server, port: typeof a === 'object' && a !== null ? a.port : 0 });
    });
  });
}

export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function startProxy(opts: ProxyOptions): Promise<RunningServer> {
  const seen: SeenRequest[] = [];
  const { server, port } = await listen((req, res) => {
    void (async () => {
      const body = await readBody(req);
      seen.push({ method: req.method ?? '', url: req.url ?? '', ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
      if (opts.intercept && (await opts.intercept(req, res, body))) return;
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === 'string' && k !== 'host' && k !== 'authorization' && k !== 'connection') headers[k] = v;
      }
      // The registry builds upload Locations from the request's host; point them back at this proxy.
      if (req.headers.host !== undefined) headers['x-forwarded-host'] = req.headers.host;
      const upstream = await fetch(`${opts.target}${req.url ?? '/'}`, {
        method: req.method ?? 'GET',
        headers,
        ...(body.byteLength > 0 ? { body } : {}),
        redirect: 'manual',
      });
      let out: Buffer = Buffer.from(await upstream.arrayBuffer());
      const isBlobGet = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '') && upstream.status === 200;
      if (isBlobGet && opts.rewriteBlob) out = opts.rewriteBlob(out);
      const respHeaders: Record<string, string> = {};
      upstream.headers.forEach((v, k) => {
        if (k !== 'content-length' && k !== 'transfer-encoding' && k !== 'connection' && k !== 'content-encoding') respHeaders[k] = v;
      });
      respHeaders['content-length'] = String(out.byteLength);
      res.writeHead(upstream.status, respHeaders);
      res.end(req.method === 'HEAD' ? undefined : out);
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(err));
    });
  });
  return { host: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}`, port, seen, close: () => closeServer(server) };
}
