// SIGINT/SIGTERM stop a build cleanly wherever it is: during a RUN step (the
// container is killed and deleted), during a pull (the download is dropped)
// and during the export (the outputs' temporaries are removed). The exit
// code is 130/143, nothing is left under --root (no mount, no active
// snapshot, no partial download, no scratch, no lease, no process), and the
// next build on the same --root gives the image an undisturbed build gives.
import { spawn, spawnSync } from 'node:child_process';
import { watch } from 'node:fs';
import { chown, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { Socket } from 'node:net';
import path from 'node:path';
import { leftovers, makeWorkDir, runStowage, testEnv, userBaseEnv, type WorkDir } from '../lib/index.js';

const T = 300_000;
const DOCKERFILE = 'FROM busybox\nARG SLEEP=60\nRUN echo started && sleep $SLEEP && echo finished > /done\n';
// 256 MiB of random bytes: a layer big enough that copying it into the OCI tars takes a while.
const BIG = 'FROM busybox\nRUN head -c 268435456 /dev/urandom > /big\n';
const SIGNALS = [['SIGINT', 130], ['SIGTERM', 143]] as const;

/**
 * Starts a build as the test user and resolves with its exit code and output; `signal` is sent
 * once `when` says so: a test on the output so far, or a promise.
 */
function buildAndInterrupt(
  work: WorkDir,
  root: string,
  signal: NodeJS.Signals,
  args: string[],
  when: ((output: string) => boolean) | Promise<void>,
): Promise<{ code: number | null; output: string; sent: boolean }> {
  const e = testEnv();
  const env = Object.entries(userBaseEnv()).map(([k, v]) => `${k}=${v}`);
  const child = spawn('setpriv', [`--reuid=${e.uid}`, `--regid=${e.gid}`, '--init-groups', '--', 'env', '-i', ...env,
    e.nodePath, e.cliPath, 'build', '--root', root, ...args, '.'], { cwd: work.dir });
  let output = '';
  let sent = false;
  const send = () => {
    if (sent || child.exitCode !== null) return;
    sent = true;
    child.kill(signal);
  };
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    if (typeof when === 'function' && when(output)) send();
  };
  if (typeof when !== 'function') void when.then(send, () => undefined);
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, output, sent })));
}

/** The step's `sleep 60`, if still alive: container root is the test user's own uid on the host. */
function leftoverSleep(uid: number): string {
  return spawnSync('pgrep', ['-u', String(uid), '-f', 'sleep 60'], { encoding: 'utf8' }).stdout.trim();
}

/**
 * Forwards to the loopback registry, pacing the body of every blob over 500 kB at 320 KiB/s
 * (16 KiB every 50 ms): the busybox layer takes about 3 s. `reached(n)` resolves once n bytes
 * of such a blob went out.
 */
async function startSlowProxy(): Promise<{ host: string; sent: () => number; reached: (n: number) => Promise<void>; close: () => Promise<void> }> {
  const [upHost, upPort] = testEnv().registry.split(':') as [string, string];
  let sent = 0;
  const waiting: Array<{ n: number; resolve: () => void }> = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const up = http.request({ host: upHost, port: Number(upPort), path: req.url, method: req.method, headers: { ...req.headers, host: testEnv().registry } }, async (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      if (req.method !== 'GET' || !/\/blobs\/sha256:/.test(req.url ?? '') || Number(ur.headers['content-length'] ?? 0) <= 500_000) {
        ur.pipe(res);
        return;
      }
      try {
        for await (const chunk of ur) {
          for (let i = 0; i < (chunk as Buffer).length; i += 16 * 1024) {
            if (res.destroyed) return;
            const part = (chunk as Buffer).subarray(i, i + 16 * 1024);
            res.write(part);
            sent += part.length;
            for (const w of waiting.filter((x) => sent >= x.n)) {
              waiting.splice(waiting.indexOf(w), 1);
              w.resolve();
            }
            await new Promise((r) => setTimeout(r, 50));
          }
        }
        res.end();
      } catch {
        res.destroy();
      }
    });
    up.on('error', () => res.destroy());
    up.end();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    host: `127.0.0.1:${port}`,
    sent: () => sent,
    reached: (n) => (sent >= n ? Promise.resolve() : new Promise((resolve) => waiting.push({ n, resolve }))),
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Resolves when a file named like an output temporary (`.<name>.stowage-<pid>-<r>.tmp`) appears in `dir`. */
function temporaryAppears(dir: string): { appeared: Promise<void>; close: () => void } {
  let resolve!: () => void;
  const appeared = new Promise<void>((r) => (resolve = r));
  const watcher = watch(dir, (_event, name) => {
    if (name !== null && /\.stowage-\d+-\w+\.tmp$/.test(name.toString())) resolve();
  });
  return { appeared, close: () => watcher.close() };
}

describe('interrupting a build', () => {
  let work: WorkDir;
  let reference: string;
  const mirror = () => ['--registry-mirror', `docker.io=${testEnv().registry}`];
  const outDir = async (name: string) => {
    const dir = path.join(work.base, name);
    await mkdir(dir);
    await chown(dir, testEnv().uid, testEnv().gid);
    return dir;
  };
  const digestOf = async (metaFile: string) => (JSON.parse(await readFile(metaFile, 'utf8')) as Record<string, string>)['containerimage.digest'];
  /** The build again on the same root, undisturbed: it succeeds with `digest`. */
  const rebuild = async (root: string, digest: string, args: string[] = []) => {
    const out = await outDir(`again-${path.basename(root)}`);
    const again = await runStowage(['build', '--root', root, ...mirror(), ...args, '--metadata-file', `${out}/meta.json`, '-o', `${out}/out.tar`, '.'], { cwd: work.dir, timeoutMs: T });
    expect({ code: again.code, stderr: again.code === 0 ? '' : again.stderr }).toEqual({ code: 0, stderr: '' });
    expect(await digestOf(`${out}/meta.json`)).toBe(digest);
  };

  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: DOCKERFILE, 'big.Dockerfile': BIG });
    const out = await outDir('reference');
    const r = await runStowage(['build', '--root', path.join(work.base, 'root-reference'), ...mirror(), '--build-arg', 'SLEEP=0', '--metadata-file', `${out}/meta.json`, '-o', `${out}/out.tar`, '.'], { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    reference = (await digestOf(`${out}/meta.json`))!;
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  for (const [signal, expected] of SIGNALS) {
    test(`${signal} during RUN: exit ${expected}, container gone, nothing left under --root, the next build gives the same image`, async () => {
      const root = path.join(work.base, `root-run-${signal}`);
      const out = await outDir(`run-${signal}`);
      const r = await buildAndInterrupt(work, root, signal, [...mirror(), '-o', `${out}/out.tar`], (o) => /#\d+ started/.test(o));
      expect(r.output).toContain(`interrupted (${signal})`);
      expect(r.code).toBe(expected);
      expect(leftoverSleep(testEnv().uid)).toBe('');
      expect(await leftovers(root)).toEqual([]);
      expect(await readdir(out)).toEqual([]);
      await rebuild(root, reference, ['--build-arg', 'SLEEP=0']);
    }, T);
  }

  for (const [signal, expected] of SIGNALS) {
    test(`${signal} during a pull: exit ${expected}, the download dropped, nothing left under --root, the next build gives the same image`, async () => {
      const proxy = await startSlowProxy();
      const root = path.join(work.base, `root-pull-${signal}`);
      const out = await outDir(`pull-${signal}`);
      try {
        // A quarter of the 1 MiB busybox layer is through: the pull is mid-download.
        const r = await buildAndInterrupt(work, root, signal, ['--registry-mirror', `docker.io=${proxy.host}`, '--build-arg', 'SLEEP=0', '-o', `${out}/out.tar`], proxy.reached(256 * 1024));
        expect(r.sent).toBe(true);
        expect(r.output).toContain(`interrupted (${signal})`);
        expect(r.code).toBe(expected);
        // It stopped mid-layer: the index, manifest and config are stored, not the layer.
        expect(proxy.sent()).toBeLessThan(1024 * 1024);
        expect(await readdir(path.join(root, 'content', 'blobs', 'sha256'))).toHaveLength(3);
      } finally {
        await proxy.close();
      }
      expect(await leftovers(root)).toEqual([]);
      expect(await readdir(out)).toEqual([]);
      await rebuild(root, reference, ['--build-arg', 'SLEEP=0']);
    }, T);
  }

  describe('during the export', () => {
    let bigDigest: string;
    const root = () => path.join(work.base, 'root-export');
    beforeAll(async () => {
      const out = await outDir('export-reference');
      const r = await runStowage(['build', '--root', root(), ...mirror(), '-f', 'big.Dockerfile', '--metadata-file', `${out}/meta.json`, '-o', `${out}/out.tar`, '.'], { cwd: work.dir, timeoutMs: T });
      expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
      bigDigest = (await digestOf(`${out}/meta.json`))!;
      await rm(out, { recursive: true, force: true });
    }, T);

    for (const [signal, expected] of SIGNALS) {
      test(`${signal} while the outputs are written: exit ${expected}, no output nor temporary left, nothing under --root, the next build gives the same image`, async () => {
        const out = await outDir(`export-${signal}`);
        const watcher = temporaryAppears(out);
        try {
          // Every step is cached: the build goes straight to writing three archives of the 256 MiB layer, one after the other.
          const outputs = ['-o', `type=oci,dest=${out}/a.tar`, '-o', `type=docker,dest=${out}/b.tar`, '-o', `type=oci,dest=${out}/c.tar`, '--iidfile', `${out}/iid`];
          const r = await buildAndInterrupt(work, root(), signal, [...mirror(), '-f', 'big.Dockerfile', ...outputs], watcher.appeared);
          expect(r.sent).toBe(true);
          expect(r.output).toMatch(/exporting stage/);
          expect(r.output).toContain(`interrupted (${signal})`);
          expect(r.code).toBe(expected);
        } finally {
          watcher.close();
        }
        // Interrupted before the outputs were committed: none of them, and no temporary.
        expect(await readdir(out)).toEqual([]);
        expect(await leftovers(root())).toEqual([]);
        await rebuild(root(), bigDigest, ['-f', 'big.Dockerfile']);
        await rm(path.join(work.base, `again-${path.basename(root())}`), { recursive: true, force: true });
        await rm(out, { recursive: true, force: true });
      }, T);
    }
  });
});
