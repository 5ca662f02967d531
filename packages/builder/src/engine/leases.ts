/**
 * Who may use a state root at once. Builds and pulls hold a *lease*
 * (`<root>/leases/<pid>`) for their lifetime; `stowage prune` holds the
 * *prune lock* (`<root>/prune.lock`). Both files say `<pid> <start time>`,
 * so one left by a crashed process is recognised as dead (pid gone, or
 * reused by a process started at another time) and ignored.
 *
 * The protocol is two flags, each set before the other is checked, so at
 * least one side always sees the other:
 *   lease:  write lease → prune lock held by a live process? → drop the
 *           lease, wait until the lock is gone, start again.
 *   prune:  create the lock (exclusively) → wait until no live lease is left.
 * A prune therefore never runs while a build or pull is using the root, and
 * a build that starts during a prune waits for it.
 */
import { link, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isProcessAlive, processStartTime } from '@stowage/registry-client';
import { BuildError } from '../errors.js';

export const PRUNE_LOCK = 'prune.lock';
export const LEASES_DIR = 'leases';
const POLL_MS = 200;

interface Owner {
  pid: number;
  start: string | undefined;
}

async function ownerText(): Promise<string> {
  return `${process.pid} ${processStartTime(process.pid) ?? ''}\n`;
}

function parseOwner(text: string): Owner | undefined {
  const [pid, start] = text.trim().split(/\s+/);
  const n = Number(pid);
  return Number.isInteger(n) && n > 0 ? { pid: n, start: start || undefined } : undefined;
}

async function readOwner(path: string): Promise<Owner | undefined> {
  try {
    return parseOwner(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The process holding the prune lock on `root`, when it is alive. */
export async function livePruneHolder(root: string): Promise<Owner | undefined> {
  const owner = await readOwner(join(root, PRUNE_LOCK));
  if (owner === undefined || owner.pid === process.pid) return undefined;
  return isProcessAlive(owner.pid, owner.start) ? owner : undefined;
}

/** Live processes (other than this one) holding a lease on `root`. */
export async function liveLeases(root: string): Promise<number[]> {
  const dir = join(root, LEASES_DIR);
  const out: number[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const pid = Number(name);
    const owner = await readOwner(join(dir, name));
    if (isProcessAlive(pid, owner?.pid === pid ? owner.start : undefined)) out.push(pid);
    else await rm(join(dir, name), { force: true }); // a crashed build's lease
  }
  return out;
}

/**
 * Takes a lease on `root` for a build or a pull, waiting while a prune runs
 * (`onWait` is told once). Resolves with the function that gives it back.
 */
export async function acquireLease(root: string, onWait?: (prunePid: number) => void): Promise<() => Promise<void>> {
  const dir = join(root, LEASES_DIR);
  await mkdir(dir, { recursive: true });
  const file = join(dir, String(process.pid));
  let told = false;
  const text = await ownerText();
  for (;;) {
    // Written whole (temp + rename): a prune never reads half a lease.
    const tmp = join(dir, `.${process.pid}.tmp`);
    await writeFile(tmp, text);
    await rename(tmp, file);
    const holder = await livePruneHolder(root);
    if (holder === undefined) break;
    // Dropped while waiting, or the prune would wait for us while we wait for it.
    await rm(file, { force: true });
    if (!told) onWait?.(holder.pid);
    told = true;
    while ((await livePruneHolder(root)) !== undefined) await sleep(POLL_MS);
  }
  await sweepDeadLeases(dir);
  return () => rm(file, { force: true });
}

/**
 * Removes the leases of builds and pulls that were killed (SIGKILL cannot
 * give a lease back), so a crash leaves nothing behind once the root is used
 * again. Only a pid no process has at all is swept: a reused pid could be a
 * new build writing its lease under that name right now. Prune's
 * liveLeases() still tells those apart by start time.
 */
async function sweepDeadLeases(dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    if (processStartTime(Number(name)) === undefined) await rm(join(dir, name), { force: true });
  }
}

/**
 * Takes the prune lock on `root`, then waits until every live lease is
 * gone (`onWait` is told the pids once). Fails with `E_PRUNE_RUNNING` when
 * another live prune holds the lock; a dead one's lock is taken over.
 */
export async function acquirePruneLock(root: string, onWait?: (pids: number[]) => void): Promise<() => Promise<void>> {
  await mkdir(root, { recursive: true });
  const lock = join(root, PRUNE_LOCK);
  const tmp = join(root, `.${PRUNE_LOCK}.${process.pid}`);
  await writeFile(tmp, await ownerText());
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(tmp, lock); // atomic, fails if the lock exists
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 5) throw err;
      }
      const owner = await readOwner(lock);
      if (owner !== undefined && isProcessAlive(owner.pid, owner.start)) {
        throw new BuildError('E_PRUNE_RUNNING', `another stowage prune (pid ${owner.pid}) is running on ${root}`);
      }
      await rm(lock, { force: true }); // left by a prune that died
    }
  } finally {
    await rm(tmp, { force: true });
  }
  const release = () => rm(lock, { force: true });
  try {
    let told = false;
    for (;;) {
      const pids = await liveLeases(root);
      if (pids.length === 0) break;
      if (!told) onWait?.(pids);
      told = true;
      await sleep(POLL_MS);
    }
  } catch (err) {
    await release();
    throw err;
  }
  return release;
}
