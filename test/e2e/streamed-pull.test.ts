// Base layers unpack while they download (engine unpackBaseLayer). When a
// layer's download has to start over, what was unpacked from the first
// attempt is thrown away and the layer is unpacked from the verified blob:
// same image digest as an undisturbed build, nothing left behind.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { leftovers, makeWorkDir, runStowage, testEnv, type WorkDir } from '../lib/index.js';

const T = 300_000;

/**
 * Forwards to the loopback registry; cuts the first big blob download after
 * 400 kB, then ignores Range requests, so the client must start that download
 * over from byte 0. The retry is answered 1.5 s late, so the build is surely
 * unpacking from the download when it starts over, however loaded the machine.
 */
async function startRestartingProxy(): Promise<{ host: string; restarts: () => number; close: () => Promise<void> }> {
  const [upHost, upPort] = testEnv().registry.split(':') as [string, string];
  let cut = 0;
  const server = http.createServer((req, res) => {
    const blob = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');
    const headers = { ...req.headers, host: testEnv().registry };
    const retry = blob && cut > 0 && headers.range !== undefined;
    if (blob && cut > 0) delete headers.range;
    // Pulls send no request bodies: the request is complete when it arrives.
    const forward = (): void => {
      const up = http.request({ host: upHost, port: Number(upPort), path: req.url, method: req.method, headers }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        if (!blob || cut > 0 || Number(ur.headers['content-length'] ?? 0) <= 500_000) {
          ur.pipe(res);
          return;
        }
        cut++;
        let sent = 0;
        ur.on('data', (chunk: Buffer) => {
          if (sent >= 400_000) return;
          const part = chunk.subarray(0, 400_000 - sent);
          sent += part.length;
          res.write(part);
          if (sent >= 400_000) {
            ur.destroy();
            res.socket?.destroy();
          }
        });
      });
      up.on('error', () => res.destroy());
      up.end();
    };
    if (retry) setTimeout(forward, 1500);
    else forward();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    host: `127.0.0.1:${port}`,
    restarts: () => cut,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('base layers unpacked while they download', () => {
  let work: WorkDir;
  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: 'FROM busybox\nRUN echo streamed > /s\n' });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  const build = (name: string, registry: string) =>
    runStowage(['build', '--root', path.join(work.base, `root-${name}`), '--registry-mirror', `docker.io=${registry}`, '--progress', 'plain',
      '--iidfile', `${name}.iid`, '-o', `${name}.tar`, '.'], { cwd: work.dir, timeoutMs: T });

  test('a download that starts over: the layer is unpacked again from the verified blob, same digest, nothing left behind', async () => {
    const proxy = await startRestartingProxy();
    try {
      const r = await build('restarted', proxy.host);
      expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
      expect(proxy.restarts()).toBe(1);
      expect(r.stderr).toMatch(/ignored the range request; restarting from byte 0/);
      expect(r.stderr).toMatch(/download of sha256:[0-9a-f]{64} started over: unpacking sha256:[0-9a-f]{64} from the store once downloaded/);
    } finally {
      await proxy.close();
    }
    expect(await leftovers(path.join(work.base, 'root-restarted'))).toEqual([]);
    const clean = await build('clean', testEnv().registry);
    expect(clean.code).toBe(0);
    expect(clean.stderr).not.toMatch(/started over/);
    expect(await readFile(work.path('restarted.iid'), 'utf8')).toBe(await readFile(work.path('clean.iid'), 'utf8'));
  }, T);
});
