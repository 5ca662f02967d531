import { DigestMismatchError } from '../src/errors.js';
import { Transport, apiHost, defaultDeadlineMs, isLoopbackHost, loadHttpClient, parseRetryAfter, registryDeadlineFromEnv, splitHostPort } from '../src/transport.js';

test('plain HTTP only for loopback and insecure registries', () => {
  const t = new Transport({ insecureRegistries: ['registry.lan:5000', 'plainhost'] });
  expect(t.schemeFor('localhost:5000')).toBe('http');
  expect(t.schemeFor('localhost')).toBe('http');
  expect(t.schemeFor('127.0.0.1:5000')).toBe('http');
  expect(t.schemeFor('127.8.9.10')).toBe('http');
  expect(t.schemeFor('[::1]:5000')).toBe('http');
  expect(t.schemeFor('registry.lan:5000')).toBe('http');
  expect(t.schemeFor('registry.lan:5001')).toBe('https');
  expect(t.schemeFor('plainhost:1234')).toBe('http');
  expect(t.schemeFor('128.0.0.1')).toBe('https');
  expect(t.schemeFor('localhost.evil.com')).toBe('https');
  expect(t.schemeFor('ghcr.io')).toBe('https');
  expect(t.baseUrl('docker.io')).toBe('https://registry-1.docker.io');
  expect(t.baseUrl('127.0.0.1:5000')).toBe('http://127.0.0.1:5000');
});

test('host helpers', () => {
  expect(apiHost('docker.io')).toBe('registry-1.docker.io');
  expect(apiHost('quay.io')).toBe('quay.io');
  expect(splitHostPort('[::1]:5000')).toEqual({ hostname: '::1', port: '5000' });
  expect(splitHostPort('a.b:1')).toEqual({ hostname: 'a.b', port: '1' });
  expect(splitHostPort('a.b')).toEqual({ hostname: 'a.b' });
  expect(isLoopbackHost('::1')).toBe(true);
  expect(isLoopbackHost('10.0.0.1:5000')).toBe(false);
});

test('Retry-After: seconds and HTTP dates', () => {
  const now = Date.parse('2024-01-01T00:00:00Z');
  expect(parseRetryAfter('3', now)).toBe(3000);
  expect(parseRetryAfter('Mon, 01 Jan 2024 00:00:05 GMT', now)).toBe(5000);
  expect(parseRetryAfter('garbage', now)).toBeUndefined();
  expect(parseRetryAfter(null, now)).toBeUndefined();
});

test('backoff grows exponentially, is jittered, and is capped', () => {
  const t = new Transport({ retry: { baseDelayMs: 100, maxDelayMs: 1000 } });
  for (let i = 0; i < 50; i++) {
    const d0 = t.backoff(0);
    expect(d0).toBeGreaterThanOrEqual(50);
    expect(d0).toBeLessThanOrEqual(100);
    const d3 = t.backoff(3);
    expect(d3).toBeGreaterThanOrEqual(400);
    expect(d3).toBeLessThanOrEqual(800);
    expect(t.backoff(20)).toBeLessThanOrEqual(1000);
  }
});

describe('streamed request bodies', () => {
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  test('a slow but steady upload outlives the idle timeout; a stalled one does not; redirects resend from the start', async () => {
    const { listen, closeServer } = await import('./helpers/proxy.js');
    const received: number[] = [];
    const { server, port } = await listen((req, res) => {
      let n = 0;
      req.on('data', (d: Buffer) => (n += d.byteLength));
      req.on('end', () => {
        if (req.url === '/redirect') {
          res.writeHead(307, { location: '/final' });
          res.end();
          return;
        }
        received.push(n);
        res.writeHead(201, { 'content-type': 'text/plain' });
        res.end(String(n));
      });
      req.on('error', () => undefined);
    });
    try {
      const t = new Transport({ idleTimeoutMs: 250, retry: { attempts: 1 } });
      let opened = 0;
      const steady = async function* (): AsyncGenerator<Uint8Array> {
        opened++;
        for (let i = 0; i < 6; i++) {
          await sleep(80); // 480 ms in all, but never 250 ms without progress
          yield Buffer.alloc(1000, i);
        }
      };
      const res = await t.request(`http://127.0.0.1:${port}/redirect`, { method: 'PUT', headers: { 'content-length': '6000' }, body: steady, what: 'upload' });
      expect(res.status).toBe(201);
      expect(await res.text()).toBe('6000');
      expect(opened).toBe(2); // once for the 307, once more for its target
      expect(received).toEqual([6000]);

      const stalled = async function* (): AsyncGenerator<Uint8Array> {
        yield Buffer.alloc(10);
        await sleep(600);
        yield Buffer.alloc(10);
      };
      await expect(t.request(`http://127.0.0.1:${port}/x`, { method: 'PATCH', body: stalled, what: 'stalled upload' })).rejects.toMatchObject({
        code: 'E_REGISTRY_UNAVAILABLE',
        message: expect.stringMatching(/no progress for 250 ms/),
      });

      // A body source that fails with a registry error (bad bytes) is not a network problem: its error, no retry.
      let tries = 0;
      const bad = async function* (): AsyncGenerator<Uint8Array> {
        tries++;
        yield Buffer.alloc(10);
        throw new DigestMismatchError('blob sha256:abc does not match its digest');
      };
      const retrying = new Transport({ retry: { attempts: 3, baseDelayMs: 1 } });
      await expect(retrying.request(`http://127.0.0.1:${port}/x`, { method: 'PUT', body: bad, what: 'bad upload' })).rejects.toBeInstanceOf(DigestMismatchError);
      expect(tries).toBe(1);
    } finally {
      await closeServer(server);
    }
  }, 10_000);
});

test('default total deadline: 5 min plus the bytes at 256 KiB/s, at most 6 h; STOWAGE_REGISTRY_DEADLINE fixes it', () => {
  expect(defaultDeadlineMs(0)).toBe(300_000);
  expect(defaultDeadlineMs(4 * 1024 * 1024)).toBe(316_000); // a manifest at its limit
  expect(defaultDeadlineMs(5 * 1024 ** 3)).toBe(300_000 + 20_480_000); // a 5 GiB layer: 5 h 46 min
  expect(defaultDeadlineMs(100 * 1024 ** 3)).toBe(6 * 3600_000); // a declared size cannot buy more than 6 h
  expect(defaultDeadlineMs(Number.NaN)).toBe(300_000);
  expect(registryDeadlineFromEnv({ STOWAGE_REGISTRY_DEADLINE: '90' })).toBe(90_000);
  expect(registryDeadlineFromEnv({ STOWAGE_REGISTRY_DEADLINE: '0.5' })).toBe(500);
  for (const bad of ['', '0', '-3', 'ten']) expect(registryDeadlineFromEnv({ STOWAGE_REGISTRY_DEADLINE: bad })).toBeUndefined();
  expect(registryDeadlineFromEnv({})).toBeUndefined();
  // Scaled by size by default; a fixed deadline (option or env) ignores sizes.
  expect(new Transport().deadline(1024 ** 3).ms).toBe(defaultDeadlineMs(1024 ** 3));
  expect(new Transport({ deadlineMs: 1234 }).deadline(1024 ** 3).ms).toBe(1234);
  expect(() => new Transport({ deadlineMs: -1 })).toThrow(RangeError);
  const unknown = new Transport().deadline();
  unknown.fit(1024 ** 3); // a response's Content-Length extends a deadline of unknown size
  expect(unknown.ms).toBe(defaultDeadlineMs(1024 ** 3));
  const known = new Transport().deadline(10);
  known.fit(1024 ** 3); // but not one sized from a descriptor
  expect(known.ms).toBe(defaultDeadlineMs(10));
});

describe('total deadline', () => {
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  test('a body dripped faster than the idle timeout, and an upload read too slowly, end at the deadline with E_REGISTRY_DEADLINE', async () => {
    const { listen, closeServer } = await import('./helpers/proxy.js');
    const { server, port } = await listen((req, res) => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-length': '1000000' });
        const t = setInterval(() => res.write('x'), 20);
        res.on('close', () => clearInterval(t));
        return;
      }
      req.on('data', () => undefined);
      req.on('end', () => res.end('ok'));
    });
    try {
      const t = new Transport({ idleTimeoutMs: 1000, deadlineMs: 400, retry: { attempts: 3, baseDelayMs: 1 } });
      const started = Date.now();
      const res = await t.request(`http://127.0.0.1:${port}/drip`, { what: 'manifest example/app:1' });
      const err = await res.text().then(() => undefined, (e: unknown) => e as Error & { code: string; host: string });
      expect(Date.now() - started).toBeLessThan(1000);
      expect(err).toMatchObject({ code: 'E_REGISTRY_DEADLINE', host: `127.0.0.1:${port}`, deadlineMs: 400 });
      expect(err!.message.startsWith(`manifest example/app:1: 127.0.0.1:${port} did not finish within the 0.4 s deadline for the whole request`)).toBe(true);
      expect(err!.message).toMatch(/\(\d+ B of the body received\)/);
      expect(err!.message.endsWith('STOWAGE_REGISTRY_DEADLINE=<seconds> allows longer')).toBe(true);

      let opened = 0;
      const steady = async function* (): AsyncGenerator<Uint8Array> {
        opened++;
        for (let i = 0; i < 10; i++) {
          await sleep(80); // never idle for 1 s, but 800 ms in all
          yield Buffer.alloc(100, i);
        }
      };
      await expect(t.request(`http://127.0.0.1:${port}/upload`, { method: 'PUT', body: steady, what: 'push example/app:1: upload' })).rejects.toMatchObject({
        code: 'E_REGISTRY_DEADLINE',
        message: expect.stringContaining('(while sending the request body)'),
      });
      expect(opened).toBe(1); // not retried
    } finally {
      await closeServer(server);
    }
  }, 10_000);
});

test('loadHttpClient makes one request to a server of its own and closes it', async () => {
  const { getActiveResourcesInfo } = process;
  const before = getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;
  await loadHttpClient();
  await loadHttpClient(); // twice: nothing left bound from the first call
  expect(getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length).toBe(before);
});

describe('destination check', () => {
  test('every hop is checked: a redirect to a refused host fails at once, with the reason, and is not retried', async () => {
    const { listen, closeServer } = await import('./helpers/proxy.js');
    let hits = 0;
    const { server, port } = await listen((req, res) => {
      hits++;
      res.writeHead(302, { location: `http://127.0.0.2:${port}/inside` });
      res.end();
    });
    const seen: string[] = [];
    const t = new Transport({
      retry: { attempts: 3, baseDelayMs: 1 },
      checkDestination: async (u) => {
        seen.push(u.host);
        return u.hostname === '127.0.0.2' ? `${u.hostname} is refused` : undefined;
      },
    });
    try {
      const err = await t.request(`http://127.0.0.1:${port}/start`, { what: 'file' }).catch((e: Error) => e);
      expect({ name: (err as Error).name, code: (err as { code?: string }).code, message: (err as Error).message }).toEqual({ name: 'DestinationRefusedError', code: 'E_DESTINATION_REFUSED', message: '127.0.0.2 is refused' });
      expect({ hits, seen }).toEqual({ hits: 1, seen: [`127.0.0.1:${port}`, `127.0.0.2:${port}`] });
    } finally {
      await closeServer(server);
    }
  });
});
