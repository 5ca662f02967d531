import { spawn, execFile } from 'node:child_process';
import { readlink, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserNamespaceError } from '../errors.js';
import { LAUNCHER_FD_ENV } from '../interrupt.js';
import { planIdMapping, type IdMapping, type IdRange, type MappingMode } from './id-map.js';

const execFileAsync = promisify(execFile);

/** Set in the re-executed child so that it knows it already runs inside the namespace. */
export const USERNS_ENV = 'STOWAGE_USERNS_MODE';

/** The mapping mode when this process already runs inside stowage's namespace. */
export function currentMappingMode(): MappingMode | undefined {
  const v = process.env[USERNS_ENV];
  return v === 'subid' || v === 'single' || v === 'root' ? v : undefined;
}

/** What the parent passes on to the child. */
const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Re-executes this CLI inside a new user + mount namespace, the way podman
 * unshare and rootlesskit do, and resolves with the child's exit code.
 *
 * The child is held on a pipe until its id maps are written: `unshare` creates
 * the namespace, then a tiny shell blocks on fd 3, so the build itself never
 * runs with an unmapped (nobody) identity. Maps are written through the
 * setuid helpers newuidmap/newgidmap for subordinate ranges, and directly for
 * the cases the kernel allows (single id, or real root).
 *
 * The child runs in a session (and process group) of its own, so a terminal's
 * Ctrl-C, or its hangup, reaches only this process, which forwards SIGINT,
 * SIGTERM and SIGHUP once each. Before, the terminal signalled this process,
 * the child and runc at once, and the forwarded copy arrived as a second
 * signal in the middle of the child's cleanup. The child also holds fd 4, a
 * socket only this process has the other end of: when this process dies,
 * even by SIGKILL, the child sees EOF and stops the build (`watchLauncher`).
 * It still writes to the inherited stdout/stderr: a process outside the
 * terminal's session is not subject to its job control (no SIGTTOU, even with
 * `stty tostop`).
 */
export async function runInUserNamespace(argv: string[], log: (line: string) => void): Promise<number> {
  const mapping = await planIdMapping();
  if (mapping.mode === 'single') {
    log('warning: no /etc/subuid and /etc/subgid range for this user: running with a single-id mapping. Only root exists inside the build; owners from base layers and COPY --chown are kept in snapshot metadata and written into the layers, RUN cannot switch to another USER');
  }
  // fd 3 is the gate (closed before node starts), fd 4 the lifeline (kept: see watchLauncher).
  const holdScript = 'read -r _ <&3 || exit 125; exec 3<&-; exec "$@"';
  const child = spawn(
    'unshare',
    ['--user', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', holdScript, 'stowage-userns', process.execPath, ...process.execArgv, ...argv],
    {
      stdio: ['inherit', 'inherit', 'inherit', 'pipe', 'pipe'],
      env: { ...process.env, [USERNS_ENV]: mapping.mode, [LAUNCHER_FD_ENV]: '4' },
      // setsid(): out of the terminal's foreground process group, and so is every runc it starts.
      detached: true,
    },
  );
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', (err) => reject(new UserNamespaceError(`cannot start unshare (util-linux): ${err.message}`)));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + signalNumber(signal) : 1)));
  });
  // Never written to; it only has to stay open while this process lives. Its end may see a reset when the child exits.
  const lifeline = child.stdio[4];
  lifeline?.on('error', () => undefined);
  // The child's handlers act on the first signal and ignore repeats, so each is forwarded once;
  // this process stays to report the child's exit code. A second Ctrl-C is not a way out: the
  // child's cleanup has a 30 s cap of its own.
  const forwarded = new Set<NodeJS.Signals>();
  const forward = (sig: NodeJS.Signals) => () => {
    if (forwarded.has(sig)) return;
    forwarded.add(sig);
    child.kill(sig);
  };
  const handlers = FORWARDED.map((sig) => [sig, forward(sig)] as const);
  for (const [sig, handler] of handlers) process.on(sig, handler);
  // The live view reads the terminal's width at every frame; the child, outside the terminal's session, is not told it changed.
  const resize = () => child.kill('SIGWINCH');
  process.on('SIGWINCH', resize);
  try {
    const pid = child.pid;
    if (pid === undefined) return await exited;
    const gate = child.stdio[3] as NodeJS.WritableStream;
    try {
      await waitForNewNamespace(pid);
      await writeIdMaps(pid, mapping);
    } catch (err) {
      child.kill('SIGKILL');
      await exited.catch(() => 1);
      // Interrupted while the namespace was being set up (the shell died of the signal): not a namespace problem.
      const first = [...forwarded][0];
      if (first !== undefined) return 128 + signalNumber(first);
      throw err;
    }
    gate.end('go\n');
    return await exited;
  } finally {
    for (const [sig, handler] of handlers) process.off(sig, handler);
    process.off('SIGWINCH', resize);
    // The child is gone: nothing is left to watch it, and an open handle would keep this process alive.
    lifeline?.destroy();
  }
}

function signalNumber(signal: NodeJS.Signals): number {
  const table: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return table[signal] ?? 1;
}

/** Maps can only be written once unshare(2) has run in the child; until then its ns is ours. */
async function waitForNewNamespace(pid: number): Promise<void> {
  const ours = await readlink('/proc/self/ns/user');
  for (let i = 0; i < 2000; i++) {
    let theirs: string;
    try {
      theirs = await readlink(`/proc/${pid}/ns/user`);
    } catch {
      throw new UserNamespaceError('unshare exited before the user namespace was set up (are unprivileged user namespaces enabled?)');
    }
    if (theirs !== ours) return;
    await sleep(2);
  }
  throw new UserNamespaceError('timed out waiting for unshare to create the user namespace');
}

function mapArgs(ranges: IdRange[]): string[] {
  return ranges.flatMap((r) => [String(r.inside), String(r.outside), String(r.count)]);
}

function mapText(ranges: IdRange[]): string {
  return ranges.map((r) => `${r.inside} ${r.outside} ${r.count}`).join('\n') + '\n';
}

async function writeIdMaps(pid: number, mapping: IdMapping): Promise<void> {
  try {
    if (mapping.mode === 'subid') {
      await execFileAsync('newuidmap', [String(pid), ...mapArgs(mapping.uidMap)]);
      await execFileAsync('newgidmap', [String(pid), ...mapArgs(mapping.gidMap)]);
      return;
    }
    if (mapping.mode === 'single') {
      // An unprivileged process may map only its own ids, and must give up setgroups first.
      await writeFile(`/proc/${pid}/setgroups`, 'deny');
    }
    await writeFile(`/proc/${pid}/uid_map`, mapText(mapping.uidMap));
    await writeFile(`/proc/${pid}/gid_map`, mapText(mapping.gidMap));
  } catch (err) {
    const detail = err instanceof Error ? (err as Error & { stderr?: string }).stderr?.trim() || err.message : String(err);
    throw new UserNamespaceError(`cannot map ids into the build's user namespace (${mapping.mode}): ${detail}. Is the uidmap package installed and does the user have /etc/subuid and /etc/subgid entries?`);
  }
}
