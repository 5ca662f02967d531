// SIGINT/SIGTERM stop a build cleanly wherever it is: during a RUN step (the
// container is killed and deleted), during a pull (the download is dropped)
// and during the export (the outputs' temporaries are removed). The exit
// code is 130/143, nothing is left under --root (no mount, no active
// snapshot, no partial download, no scratch, no lease, no process), and the
// next build on the same --root gives the image an undisturbed build gives.
import { spawn, spawnSync } from 'node:child_process';
import { watch } from 'node:fs';
import { chown, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { Socket } from 'node:net';
import path from 'node:path';
import { leftovers, makeWorkDir, processesUnder, runStowage, testEnv, userBaseEnv, type WorkDir } from '../lib/index.js';

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

// However the build ends, no process of it survives: not the build inside the namespace, not runc,
// not the RUN container. The CLI re-executes itself in a user namespace, and that child runs in a
// session of its own: a terminal's Ctrl-C or hangup reaches only the CLI, which forwards it once; the
// child stops when the CLI dies, even by SIGKILL (fd 4 reaches EOF); and when one stage fails, a RUN
// running in another stage is killed rather than left to run to its end.
describe('a build ends with no process of it left', () => {
  let work: WorkDir;
  let count = 0;
  const mirror = () => ['--registry-mirror', `docker.io=${testEnv().registry}`];
  // The RUN prints "42-up" (the Dockerfile's text, shown as the step's title, does not hold it), then
  // sleeps `secs` in a shell whose command line holds the test's marker.
  const sleeper = (marker: string, secs: number) => `RUN echo $((6*7))-up && sh -c 'sleep ${secs}; echo ${marker}'`;
  /** A fresh marker and sleep duration, and a context with a Dockerfile made from them. */
  const fresh = async (dockerfile: (marker: string, secs: number) => string) => {
    count += 1;
    const marker = `stowage-marker-${process.pid}-${count}-${Math.random().toString(36).slice(2, 8)}`;
    const secs = 3000 + ((process.pid * 7 + count * 13) % 997);
    const file = `${marker}.Dockerfile`;
    await writeFile(work.path(file), dockerfile(marker, secs));
    await chown(work.path(file), testEnv().uid, testEnv().gid);
    const root = path.join(work.base, `root-${marker}`);
    current = { marker, secs, root };
    return { marker, secs, file, root };
  };
  /** The running test's build, for afterEach: a failing test must not leave a 50-minute sleep behind. */
  let current: { marker: string; secs: number; root: string } | undefined;
  const started: Started[] = [];
  const track = (b: Started) => {
    started.push(b);
    return b;
  };

  beforeAll(async () => {
    work = await makeWorkDir({});
  }, T);
  afterEach(async () => {
    for (const b of started.splice(0)) b.kill('SIGKILL');
    for (const p of current ? await buildProcesses(current.root, current.marker, current.secs) : []) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // Gone meanwhile.
      }
    }
    current = undefined;
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('Ctrl-C on a terminal during RUN: only the CLI is in the foreground group, exit 130 within seconds, no process and no mount left', async () => {
    const { marker, secs, file, root } = await fresh((m, s) => `FROM busybox\n${sleeper(m, s)}\n`);
    // tostop: a background process writing to the terminal would be stopped (SIGTTOU); the build inside
    // is in no process group of the terminal's session, and its output must still come through.
    const b = track(startOnTerminal(work, cliCommand(['build', '--root', root, ...mirror(), '--network', 'none', '-f', file, '.']), 'stty tostop'));
    await b.waitFor(/42-up/);
    // script(1) itself (its command line names the root too) is not part of the build.
    const procs = (await buildProcesses(root, marker, secs)).filter((p) => !p.cmdline.startsWith('script '));
    expect(procs.map((p) => p.cmdline)).toEqual(expect.arrayContaining([expect.stringMatching(/^runc /), expect.stringContaining(marker), `sleep ${secs}`]));
    // The CLI (whose parent is script) holds the terminal; nothing else of the build is in its foreground group.
    const cli = procs.find((p) => !procs.some((q) => q.pid === p.ppid))!;
    expect(cli.cmdline).toContain(testEnv().cliPath);
    expect(cli.tpgid).toBe(cli.pgrp);
    expect(procs.filter((p) => p !== cli && p.pgrp === cli.tpgid).map((p) => p.cmdline)).toEqual([]);
    b.type('\x03');
    const r = await exitWithin(b, 10_000);
    expect(r.output).toContain('interrupted (SIGINT)');
    expect(r.code).toBe(130);
    expect(await buildProcesses(root, marker, secs)).toEqual([]);
    expect(await leftovers(root)).toEqual([]);
  }, T);

  test('Ctrl-C pressed again and again during the cleanup: one interrupt, exit 130, no process and no mount left', async () => {
    const { marker, secs, file, root } = await fresh((m, s) => `FROM busybox\n${sleeper(m, s)}\n`);
    const b = track(startOnTerminal(work, cliCommand(['build', '--root', root, ...mirror(), '--network', 'none', '-f', file, '.'])));
    await b.waitFor(/42-up/);
    // The second press lands while the first one's cleanup runs: it used to find the default action
    // (the handler was `once`) and kill the build half-way, its container running on.
    for (let i = 0; i < 5; i++) {
      b.type('\x03');
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    const r = await exitWithin(b, 10_000);
    expect(r.output.split('interrupted (SIGINT)').length - 1).toBe(1);
    expect(r.code).toBe(130);
    expect(await buildProcesses(root, marker, secs)).toEqual([]);
    expect(await leftovers(root)).toEqual([]);
  }, T);

  test('the terminal closes during RUN (its window or ssh session gone): the build stops within seconds, no process and no mount left', async () => {
    const { marker, secs, file, root } = await fresh((m, s) => `FROM busybox\n${sleeper(m, s)}\n`);
    const b = track(startOnTerminal(work, cliCommand(['build', '--root', root, ...mirror(), '--network', 'none', '-f', file, '.'])));
    await b.waitFor(/42-up/);
    // script(1) holds the terminal's master side: killing it hangs the terminal up (SIGHUP to the CLI, EIO on writes).
    b.kill('SIGKILL');
    expect(await gone(root, marker, secs)).toEqual([]);
    expect(await leftovers(root)).toEqual([]);
  }, T);

  test('SIGHUP (a CI runner cancelling the job) during RUN: exit 129, no process and no mount left', async () => {
    const { marker, secs, file, root } = await fresh((m, s) => `FROM busybox\n${sleeper(m, s)}\n`);
    const b = track(startPiped(work, cliCommand(['build', '--root', root, ...mirror(), '--network', 'none', '--progress', 'plain', '-f', file, '.'])));
    await b.waitFor(/#\d+ 42-up/);
    b.kill('SIGHUP');
    const r = await exitWithin(b, 10_000);
    expect(r.output).toContain('interrupted (SIGHUP)');
    expect(r.code).toBe(129);
    expect(await buildProcesses(root, marker, secs)).toEqual([]);
    expect(await leftovers(root)).toEqual([]);
  }, T);

  test('the CLI killed with SIGKILL during RUN: the build inside and its container are gone within seconds, nothing left under --root', async () => {
    const { marker, secs, file, root } = await fresh((m, s) => `FROM busybox\n${sleeper(m, s)}\n`);
    const b = track(startPiped(work, cliCommand(['build', '--root', root, ...mirror(), '--network', 'none', '--progress', 'plain', '-f', file, '.'])));
    await b.waitFor(/#\d+ 42-up/);
    b.kill('SIGKILL');
    expect(await gone(root, marker, secs)).toEqual([]);
    const r = await exitWithin(b, 10_000);
    expect(r.output).toContain('interrupted (the stowage process that started this build exited)');
    expect(await leftovers(root)).toEqual([]);
  }, T);

  test('a stage fails while another stage runs a long RUN: that RUN is killed, the build fails promptly with the first error, no process left', async () => {
    // The failing stage waits (on a shared cache mount) until the other stage's RUN runs.
    const { marker, secs, file, root } = await fresh((m, s) => [
      'FROM busybox AS slow',
      `RUN --mount=type=cache,id=${m},target=/sync sh -c 'touch /sync/up; sleep ${s}; echo ${m}'`,
      'FROM busybox AS broken',
      `RUN --mount=type=cache,id=${m},target=/sync sh -c 'while [ ! -e /sync/up ]; do sleep 1; done; echo failing on purpose; exit 3'`,
      'FROM busybox',
      'COPY --from=slow /etc/hostname /a',
      'COPY --from=broken /etc/hostname /b',
      '',
    ].join('\n'));
    const began = Date.now();
    const r = await runStowage(['build', '--root', root, ...mirror(), '--network', 'none', '--progress', 'plain', '-f', file, '.'], { cwd: work.dir, timeoutMs: 60_000 });
    const elapsed = Date.now() - began;
    expect(r.timedOut).toBe(false);
    expect(elapsed).toBeLessThan(45_000);
    expect(r.code).toBe(1);
    const error = r.stderr.split('\n').filter((l) => l.startsWith('error:'));
    expect(error).toEqual([expect.stringMatching(/^error: \S*:4: RUN .*exit code 3/)]);
    expect(r.stderr).not.toMatch(/exit code 137/);
    // The slow stage's step says why it stopped.
    expect(r.stderr).toMatch(/cancelled: another stage failed \(\S*:4\)/);
    expect(await buildProcesses(root, marker, secs)).toEqual([]);
    expect(await leftovers(root)).toEqual([]);
  }, T);
});

interface Started {
  /** Resolves once the output so far matches (rejects when the process exits first). */
  waitFor: (re: RegExp) => Promise<void>;
  /** Writes to its stdin (on a terminal: what the user types). */
  type: (text: string) => void;
  kill: (signal: NodeJS.Signals) => void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>;
}

/** The CLI's command line, as the test user runs it. */
function cliCommand(args: string[]): string[] {
  const e = testEnv();
  return [e.nodePath, e.cliPath, ...args];
}

/** `argv` as the test user with its own environment, in `work.dir`, stdio pipes; output is stdout and stderr merged. */
function startPiped(work: WorkDir, argv: string[]): Started {
  const e = testEnv();
  const env = Object.entries(userBaseEnv()).map(([k, v]) => `${k}=${v}`);
  const child = spawn('setpriv', [`--reuid=${e.uid}`, `--regid=${e.gid}`, '--init-groups', '--', 'env', '-i', ...env, ...argv], { cwd: work.dir });
  let output = '';
  const waiting: Array<{ re: RegExp; resolve: () => void }> = [];
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    for (const w of waiting.filter((x) => x.re.test(output))) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve();
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, output }));
  });
  return {
    waitFor: (re) =>
      re.test(output)
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            waiting.push({ re, resolve });
            void exited.then((r) => reject(new Error(`exited (${r.code ?? r.signal}) before ${re}: ${r.output.slice(-2000)}`)));
          }),
    type: (text) => child.stdin.write(text),
    kill: (signal) => child.kill(signal),
    exited,
  };
}

/**
 * `words` (a shell command, quoted here) on a real terminal: script(1) runs it on a pseudo-terminal
 * whose master side it copies to and from its own stdio. A ^C typed into its stdin goes through the
 * terminal's line discipline, which sends SIGINT to the terminal's foreground process group, as in a
 * terminal emulator or tmux. The CLI is exec'd, so it is the terminal's session leader, as under a
 * login shell's job control. script -e exits with the CLI's exit code.
 */
function startOnTerminal(work: WorkDir, argv: string[], setup?: string): Started {
  const quote = (w: string) => `'${w.replace(/'/g, `'\\''`)}'`;
  const cmd = `${setup !== undefined ? `${setup}; ` : ''}exec ${argv.map(quote).join(' ')}`;
  return startPiped(work, ['script', '-qfec', cmd, '/dev/null']);
}

interface ProcInfo {
  pid: number;
  ppid: number;
  pgrp: number;
  /** Foreground process group of the process's controlling terminal; -1 without one. */
  tpgid: number;
  cmdline: string;
}

async function procInfo(pid: number): Promise<ProcInfo | undefined> {
  const [statText, cmd] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''), readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')]);
  const cmdline = cmd.replace(/\0/g, ' ').trim();
  if (statText === '' || cmdline === '') return undefined; // gone, or a zombie
  // Fields after the command name, which is in parentheses and may hold spaces: state ppid pgrp session tty_nr tpgid …
  const f = statText.slice(statText.lastIndexOf(')') + 2).split(' ');
  return { pid, ppid: Number(f[1]), pgrp: Number(f[2]), tpgid: Number(f[5]), cmdline };
}

/**
 * The build's live processes: those whose command line or root is under `root` (the CLI, the
 * build inside, runc), and the test user's processes of the RUN: the shell holding `marker`,
 * and `sleep <secs>`.
 */
async function buildProcesses(root: string, marker: string, secs: number): Promise<ProcInfo[]> {
  const pids = new Set((await processesUnder(root)).map((line) => Number(line.split(' ')[0])));
  const uid = testEnv().uid;
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const owner = await stat(`/proc/${name}`).then((s) => s.uid, () => -1);
    if (owner !== uid) continue;
    const cmdline = (await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).replace(/\0/g, ' ').trim();
    if (cmdline.includes(marker) || cmdline === `sleep ${secs}`) pids.add(Number(name));
  }
  const infos = await Promise.all([...pids].map(procInfo));
  return infos.filter((p): p is ProcInfo => p !== undefined);
}

/** The exit of `b`, which must come within `ms`. */
async function exitWithin(b: Started, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`still running ${ms} ms later`)), ms);
  });
  try {
    return await Promise.race([b.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits up to 10 s for the build's processes to be gone; resolves with those still there. */
async function gone(root: string, marker: string, secs: number): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const left = await buildProcesses(root, marker, secs);
    if (left.length === 0 || Date.now() > deadline) return left.map((p) => `${p.pid} ${p.cmdline}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
