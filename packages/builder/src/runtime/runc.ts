import { spawn, execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { crashPoint } from '../crash-point.js';
import { RuntimeError } from '../errors.js';
import { onInterrupt } from '../interrupt.js';
import { buildRuntimeSpec, type NetworkMode, type RuntimeMount, type StepProcess } from './spec.js';

const execFileAsync = promisify(execFile);

export interface RunStepOptions {
  /** Where runc keeps container state and bundles (under the build's --root). */
  stateDir: string;
  network: NetworkMode;
  /** Receives the step's output, line by line, stdout and stderr merged. */
  output: (line: string) => void;
  runcPath?: string;
  /** Further mounts (e.g. a heredoc script), placed under /dev so that they leave nothing in the rootfs. */
  extraMounts?: RuntimeMount[];
}

let containerCounter = 0;

/** Destinations runc must create as mount points when the image lacks them. */
function mountPoints(spec: ReturnType<typeof buildRuntimeSpec>): string[] {
  return spec.mounts.map((m) => m.destination).filter((d) => !d.startsWith('/dev/'));
}

/** The outermost ancestor of `dest` missing from the rootfs: what runc would create. */
async function firstMissing(rootfs: string, dest: string): Promise<string | undefined> {
  const parts = dest.split('/').filter(Boolean);
  let current = '';
  for (const part of parts) {
    current = `${current}/${part}`;
    try {
      await lstat(join(rootfs, current));
    } catch {
      return current;
    }
  }
  return undefined;
}

/**
 * Removes the empty files and directories runc created as mount points, so
 * that they do not leak into the step's layer (BuildKit does the same).
 */
async function removeMountStubs(rootfs: string, created: string[]): Promise<void> {
  // Deepest first, so a created /etc is removed after a created /etc/hosts.
  for (const rel of [...created].sort((a, b) => b.length - a.length)) {
    const path = join(rootfs, rel);
    try {
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
  const runcRoot = join(opts.stateDir, 'runc');
  await mkdir(runcRoot, { recursive: true, mode: 0o700 });
  const bundle = await mkdtemp(join(opts.stateDir, 'bundle-'));
  const id = `stowage-${process.pid}-${++containerCounter}`;
  const tmpfsTmp = !(await lstat(join(rootfs, 'tmp')).then(() => true, () => false));
  const spec = buildRuntimeSpec(rootfs, proc, {
    network: opts.network,
    hostname: 'stowage',
    tmpfsTmp,
    hostFiles: { resolvConf: await hostFile('/etc/resolv.conf'), hosts: await hostFile('/etc/hosts') },
  });
  spec.mounts.push(...(opts.extraMounts ?? []));
  const created: string[] = [];
  for (const dest of mountPoints(spec)) {
    const missing = await firstMissing(rootfs, dest);
    if (missing) created.push(missing);
  }
  await writeFile(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));

  const removeHook = onInterrupt(async () => {
    await execFileAsync(runc, ['--root', runcRoot, 'kill', id, 'KILL']).catch(() => undefined);
    await execFileAsync(runc, ['--root', runcRoot, 'delete', '--force', id]).catch(() => undefined);
  });
  try {
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(runc, ['--root', runcRoot, 'run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
      const forward = lineSplitter(opts.output);
      child.stdout.on('data', forward.push);
      child.stderr.on('data', forward.push);
      child.on('error', (err) => reject(new RuntimeError(`cannot start runc: ${err.message}`)));
      child.on('spawn', () => crashPoint('run:started'));
      child.on('close', (code, signal) => {
        forward.flush();
        resolve(code ?? (signal ? 128 : 1));
      });
    });
  } finally {
    crashPoint('run:exited');
    removeHook();
    await execFileAsync(runc, ['--root', runcRoot, 'delete', '--force', id]).catch(() => undefined);
    await rm(bundle, { recursive: true, force: true });
    await removeMountStubs(rootfs, created);
  }
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
