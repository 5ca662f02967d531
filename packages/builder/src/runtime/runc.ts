import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, rm, rmdir, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { RuntimeError } from '../errors.js';
import { interruption, onInterrupt } from '../interrupt.js';
import { resolveInRoot, resolveParentInRoot } from '../engine/secure-path.js';
import { assertKernelDirs, assertSafeCwd, plainPathInRoot } from './sandbox.js';
import { buildRuntimeSpec, type NetworkFiles, type NetworkMode, type RuntimeMount, type StepProcess } from './spec.js';
import { startIsolatedNetwork, type IsolatedNetwork } from './network.js';
import { stepBounds } from './bounds.js';
import { crashPoint } from '@stowage/registry-client';

const execFileAsync = promisify(execFile);

export interface RunStepOptions {
  /** Where runc keeps container state and bundles (under the build's --root). */
  stateDir: string;
  network: NetworkMode;
  /** Receives the step's output, line by line, stdout and stderr merged. */
  output: (line: string) => void;
  runcPath?: string;
  /** Further mounts (a heredoc script, RUN --mount targets), after the standard ones, in order. */
  extraMounts?: RuntimeMount[];
  /**
   * Where the bundle and runc's state go instead of `stateDir`: a tmpfs, for
   * a step whose config.json carries secret values in its environment.
   */
  privateDir?: string;
  /** `RUN --security=insecure` (granted with --allow security.insecure): all capabilities, no seccomp filter. */
  insecure?: boolean;
  /**
   * Aborted: the container is killed as on an interrupt, and the step
   * rejects with the signal's reason instead of resolving with exit 137.
   * The engine aborts when another stage failed.
   */
  signal?: AbortSignal;
}

let containerCounter = 0;

/** The step's hostname (BuildKit's is `buildkitsandbox`). */
const HOSTNAME = 'stowage';

/** Destinations runc must create as mount points when the image lacks them (below /dev: in its own tmpfs). */
function mountPoints(spec: ReturnType<typeof buildRuntimeSpec>): string[] {
  return spec.mounts.map((m) => m.destination).filter((d) => !d.startsWith('/dev/'));
}

/**
 * What runc will create for the mount points: every missing component of
 * each destination (outermost first, as rootfs-relative paths, symlinks in
 * the image followed inside the rootfs as runc does), and for each existing
 * directory that gets a new entry, its times and listing before the run.
 */
export interface MountStubs {
  created: string[];
    /** Times in seconds, kept to the microsecond (a Date would drop all below the millisecond). */
  parents: Map<string, { atime: number; mtime: number; names: string[] }>;
}

const seconds = (ns: bigint): number => Number((ns + 500n) / 1000n) / 1e6;

export async function recordMountStubs(rootfs: string, destinations: string[]): Promise<MountStubs> {
  const stubs: MountStubs = { created: [], parents: new Map() };
  for (const dest of destinations) {
    const resolved = posix.relative(rootfs, await resolveInRoot(rootfs, dest));
    if (resolved === '' || resolved.startsWith('..')) continue;
    const parts = resolved.split('/');
    for (let i = 0; i < parts.length; i++) {
      const rel = parts.slice(0, i + 1).join('/');
      if (await lstat(join(rootfs, rel)).then(() => true, () => false)) continue;
      const parent = parts.slice(0, i).join('/');
      if (!stubs.parents.has(parent)) {
        const st = await stat(join(rootfs, parent), { bigint: true }).catch(() => undefined);
        if (st?.isDirectory()) stubs.parents.set(parent, { atime: seconds(st.atimeNs), mtime: seconds(st.mtimeNs), names: (await readdir(join(rootfs, parent))).sort() });
      }
      for (let j = i; j < parts.length; j++) {
        const stub = parts.slice(0, j + 1).join('/');
        if (!stubs.created.includes(stub)) stubs.created.push(stub);
      }
      break;
    }
  }
  return stubs;
}

/**
 * Removes the empty files and directories runc created as mount points, so
 * that they do not leak into the step's layer (BuildKit does the same). A
 * stub the step filled stays. Paths are resolved again inside the rootfs,
 * never following a final symlink: the step may have replaced a directory
 * with a link that points out of it. An existing directory that got a stub
 * gets its times back when its listing is as before the run, so a mount
 * leaves no trace in it either.
 */
export async function removeMountStubs(rootfs: string, stubs: MountStubs): Promise<void> {
  // Deepest first, so a created /run/secrets/x goes before /run/secrets and /run.
  for (const rel of [...stubs.created].sort((a, b) => b.split('/').length - a.split('/').length)) {
    try {
      // Sandbox: the step may have swapped a parent for a symlink to a host path; never remove through one.
      if (!(await plainPathInRoot(rootfs, posix.dirname(rel)))) continue;
      const path = await resolveParentInRoot(rootfs, rel);
      const st = await lstat(path);
      if (st.isDirectory()) {
        if ((await readdir(path)).length === 0) await rmdir(path);
      } else if (st.isFile() && st.size === 0) {
        await unlink(path);
      }
    } catch {
      // Already gone, or the step replaced it with something real: keep it.
    }
  }
  for (const [rel, before] of stubs.parents) {
    try {
      const path = rel === '' ? rootfs : await resolveParentInRoot(rootfs, rel);
      const st = await lstat(path);
      if (!st.isDirectory()) continue;
      const names = (await readdir(path)).sort();
      if (names.length === before.names.length && names.every((n, i) => n === before.names[i])) await utimes(path, before.atime, before.mtime);
    } catch {
      // The step removed or replaced it: nothing to restore.
    }
  }
}

async function hostFile(path: string): Promise<string | undefined> {
  try {
    return (await stat(path)).isFile() ? path : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs one build step in a runc container on `rootfs` and resolves with its
 * exit code. The container is always deleted afterwards, also when the build
 * is interrupted.
 */
export async function runStep(rootfs: string, proc: StepProcess, opts: RunStepOptions): Promise<number> {
  const runc = opts.runcPath ?? 'runc';
  const stateDir = opts.privateDir ?? opts.stateDir;
  const runcRoot = join(stateDir, 'runc');
  await mkdir(runcRoot, { recursive: true, mode: 0o700 });
  const bundle = await mkdtemp(join(stateDir, 'bundle-'));
  const id = `stowage-${process.pid}-${++containerCounter}`;
  // Sandbox checks runc does not make (see sandbox.ts and docs/reliability.md).
  await assertKernelDirs(rootfs);
  await assertSafeCwd(rootfs, proc.cwd);
  const tmpfsTmp = !(await lstat(join(rootfs, 'tmp')).then(() => true, () => false));
  // Set up before anything that needs undoing: a failure here leaves only the bundle to remove.
  let network: IsolatedNetwork | undefined;
  let networkFiles: NetworkFiles = {};
  try {
    if (opts.network === 'sandbox') {
      network = await startIsolatedNetwork(HOSTNAME);
      networkFiles = { resolvConf: network.resolvConf, hosts: network.hosts };
    } else if (opts.network === 'host') {
      networkFiles = { resolvConf: await hostFile('/etc/resolv.conf'), hosts: await hostFile('/etc/hosts') };
    }
  } catch (err) {
    await rm(bundle, { recursive: true, force: true });
    throw err;
  }
  const spec = buildRuntimeSpec(rootfs, proc, {
    network: opts.network,
    ...(network ? { netnsPath: network.netnsPath } : {}),
    networkFiles,
    hostname: HOSTNAME,
    tmpfsTmp,
    ...stepBounds(),
    insecure: opts.insecure ?? false,
  });
  spec.mounts.push(...(opts.extraMounts ?? []));
  const stubs = await recordMountStubs(rootfs, mountPoints(spec));
  await writeFile(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));

  let runcProcess: ChildProcess | undefined;
  let runcExited = false;
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= stopContainer(runc, runcRoot, id, () => runcExited, () => runcProcess?.kill('SIGKILL')));
  const removeHook = onInterrupt(stop);
  const onAbort = () => void stop();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    // A container started once the stop was decided would run on, unseen: the hooks already ran.
    opts.signal?.throwIfAborted();
    if (interruption()) throw new RuntimeError('the build was interrupted');
    const code = await new Promise<number>((resolve, reject) => {
      // Explicit stdio: the container gets nothing else of this process (see watchLauncher in interrupt.ts).
      const child = spawn(runc, ['--root', runcRoot, 'run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
      runcProcess = child;
      // One splitter per stream: a shell writes an error message in pieces (unbuffered stderr),
      // and a stdout line landing between them would be glued to it.
      const out = lineSplitter(opts.output);
      const err = lineSplitter(opts.output);
      child.stdout.on('data', out.push);
      child.stderr.on('data', err.push);
      child.on('error', (err) => {
        runcExited = true;
        reject(new RuntimeError(`cannot start runc: ${err.message}`));
      });
      child.on('spawn', () => crashPoint('run:started'));
      child.on('exit', () => {
        runcExited = true;
      });
      child.on('close', (code, signal) => {
        out.flush();
        err.flush();
        resolve(code ?? (signal ? 128 : 1));
      });
    });
    // Killed because the build is failing elsewhere: that failure is the story, not this exit 137.
    opts.signal?.throwIfAborted();
    return code;
  } finally {
    crashPoint('run:exited');
    opts.signal?.removeEventListener('abort', onAbort);
    removeHook();
    await stopping;
    // `runc run` deletes its container when it exits, also on its own errors; a state dir
    // left behind (runc killed) is what needs `delete`. A stat is cheaper than starting runc.
    if (await lstat(join(runcRoot, id)).then(() => true, () => false)) {
      await execFileAsync(runc, ['--root', runcRoot, 'delete', '--force', id]).catch(() => undefined);
    }
    await network?.close();
    await rm(bundle, { recursive: true, force: true });
    await removeMountStubs(rootfs, stubs);
  }
}

/**
 * Kills container `id` and deletes it. `runc run` creates the container
 * some milliseconds after it starts, and until then `kill` finds nothing and
 * the container would start afterwards: so kill again until `runc run` has
 * exited (it does once its container is dead). After 5 s of that, `runc run`
 * itself is killed; `delete --force` then also removes a container that was
 * created but never started.
 */
async function stopContainer(runc: string, runcRoot: string, id: string, exited: () => boolean, killRunc: () => void): Promise<void> {
  for (let i = 0; i < 50 && !exited(); i++) {
    await execFileAsync(runc, ['--root', runcRoot, 'kill', id, 'KILL']).catch(() => undefined);
    if (!exited()) await sleep(100);
  }
  if (!exited()) killRunc();
  await execFileAsync(runc, ['--root', runcRoot, 'delete', '--force', id]).catch(() => undefined);
}

/** Splits a byte stream into lines without holding more than the current line. */
function lineSplitter(emit: (line: string) => void): { push: (chunk: Buffer) => void; flush: () => void } {
  let pending = '';
  return {
    push(chunk: Buffer) {
      pending += chunk.toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        emit(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    },
    flush() {
      if (pending) emit(pending);
      pending = '';
    },
  };
}
