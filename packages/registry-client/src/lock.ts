/**
 * Locks between processes that share one state root (`--root`).
 *
 * A lock is an flock(2) on a file under its scope directory,
 * `<scope>/locks/<sha256 of the name>.lock` (see file-lock.ts): the kernel
 * drops it when its holder closes the file or dies in any way, SIGKILL and
 * OOM kill included, so a lock never outlives its holder and there is
 * nothing stale to break. The files stay (a few bytes each, one per name
 * ever locked); deleting one would let two processes lock two different
 * inodes under one name.
 *
 * Files, not names in Linux's abstract Unix socket namespace (which this
 * used before, for the same never-stale property): that namespace belongs
 * to the network namespace, so a RUN step sharing the host's network, i.e.
 * any Dockerfile a CI runner builds, could connect to or bind
 * `@stowage-lock-…` names and stall other builds, or make one build think it
 * holds a lock another has. A file under the user's state root is reachable
 * only to whoever can already write that root; and a process in another
 * network namespace now contends on the same lock, as it must.
 *
 * The lock directory is created 0700 and must be a real directory, not a
 * symlink; lock and holder files are opened without following symlinks, so
 * a link planted there is refused, never followed.
 *
 * The holder writes one line saying who it is and what it does to a side
 * file, `<hash>.lock.holder`, once it has the lock (by rename, so it is read
 * whole), so that a waiter can tell the user whom it waits for.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, realpath, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FileLockError, lockFile } from './file-lock.js';

/** How long a waiter waits by default: `STOWAGE_LOCK_TIMEOUT` (seconds), else 10 minutes. */
export function defaultLockTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const s = Number(env.STOWAGE_LOCK_TIMEOUT);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 10 * 60 * 1000;
}

export class LockTimeoutError extends Error {
  readonly code = 'E_LOCK_TIMEOUT';
  constructor(
    message: string,
    /** The holder's own description (`pid 123: unpacking …`), when it left one. */
    readonly holder: string | undefined,
  ) {
    super(message);
    this.name = 'LockTimeoutError';
  }
}

export interface LockOptions {
  /** What the holder does, shown to waiters: `downloading blob sha256:…`. */
  what: string;
  /** Give up waiting after this long (default {@link defaultLockTimeoutMs}). */
  timeoutMs?: number;
  /** Called once when the lock is found taken, with the holder's description. */
  onWait?: (holder: string) => void;
}

export interface Lock {
  /** Frees the lock; waiters get it at once. Idempotent. */
  release(): Promise<void>;
}

/** A scope for lock names: the real path of a state directory (created by the caller). Its locks live in `<scope>/locks`. */
export async function lockScope(dir: string): Promise<string> {
  return realpath(dir);
}

/** The lock file of lock `name` in `scope`. */
export function lockAddress(scope: string, name: string): string {
  return join(scope, 'locks', `${createHash('sha256').update(name).digest('hex')}.lock`);
}

/** Lock directories known to be in place, so each is checked once per process. */
const readyDirs = new Set<string>();

/** Creates `<scope>/locks` (0700) if missing; refuses one that is a symlink or not a directory. */
async function ensureLockDir(dir: string): Promise<void> {
  if (readyDirs.has(dir)) return;
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new FileLockError(`cannot create lock directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new FileLockError(`lock directory ${dir} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a directory'}; remove it`);
  readyDirs.add(dir);
}

const HOLDER_MAX = 300;

/** Records who holds the lock at `file` (best effort: a lock without a description still locks). */
async function writeHolder(file: string, line: string): Promise<void> {
  const tmp = `${file}.holder.tmp`; // only the holder writes it, so one name is enough
  try {
    await unlink(tmp).catch(() => undefined); // a leftover of a holder killed mid-write
    const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await fh.writeFile(`${line}\n`);
    } finally {
      await fh.close();
    }
    await rename(tmp, `${file}.holder`); // replaces whatever is there, a symlink included, without following it
  } catch {
    // A waiter then reports no holder, as before when a holder did not answer.
  }
}

/** The holder's description, or undefined when there is none (yet) or it cannot be read. */
async function readHolder(file: string): Promise<string | undefined> {
  try {
    // O_NONBLOCK: a FIFO planted there must not block us; O_NOFOLLOW: nor a link lead elsewhere.
    const fh = await open(`${file}.holder`, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      if (!(await fh.stat()).isFile()) return undefined;
      const buf = Buffer.alloc(HOLDER_MAX + 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      const line = buf.subarray(0, bytesRead).toString('utf8').split('\n')[0]?.trim();
      return line ? line.slice(0, HOLDER_MAX) : undefined;
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Takes lock `name` in `scope`, waiting while another holder has it (the
 * kernel hands it over the moment that holder lets go or dies); throws
 * {@link LockTimeoutError} once `timeoutMs` has passed.
 */
export async function acquireLock(scope: string, name: string, opts: LockOptions): Promise<Lock> {
  const file = lockAddress(scope, name);
  await ensureLockDir(join(scope, 'locks'));
  const timeoutMs = opts.timeoutMs ?? defaultLockTimeoutMs();
  const self = `pid ${process.pid}: ${opts.what}`.replace(/\s+/g, ' ').slice(0, HOLDER_MAX);
  const held = (lock: { release(): Promise<void> }): Lock => {
    let released: Promise<void> | undefined;
    return {
      release: () =>
        (released ??= (async () => {
          // Our description goes first, so no waiter that gets the lock next reads it as the new holder's.
          await unlink(`${file}.holder`).catch(() => undefined);
          await lock.release();
        })()),
    };
  };

  const now = await lockFile(file, { wait: false });
  if (now !== undefined) {
    await writeHolder(file, self);
    return held(now);
  }

  // Taken: say whom we wait for (the holder may not have written its line yet: look again a few times while waiting).
  let holder: string | undefined;
  let waiting = true;
  const describe = (async () => {
    for (let delay = 10; waiting && holder === undefined; delay = Math.min(delay * 2, 250)) {
      holder = await readHolder(file);
      if (holder !== undefined) opts.onWait?.(holder);
      else await sleep(delay);
    }
  })();
  let lock: Awaited<ReturnType<typeof lockFile>>;
  try {
    lock = await lockFile(file, { wait: true, timeoutMs });
  } finally {
    waiting = false;
    await describe;
  }
  if (lock !== undefined) {
    await writeHolder(file, self);
    return held(lock);
  }
  throw new LockTimeoutError(
    `timed out after ${Math.round(timeoutMs / 1000)} s waiting to start ${opts.what}: another process on the same state root holds it` +
      `${holder !== undefined ? ` (${holder})` : ''}. Wait for it to finish or stop it; STOWAGE_LOCK_TIMEOUT=<seconds> waits longer`,
    holder,
  );
}

/**
 * Runs `fn` holding lock `name`. With `onTimeout`, a wait that times out is
 * reported there and `fn` runs anyway: for locks that only avoid doing the
 * same work twice, where the result is published by rename either way.
 */
export async function withLock<T>(
  scope: string,
  name: string,
  opts: LockOptions & { onTimeout?: (err: LockTimeoutError) => void },
  fn: () => Promise<T>,
): Promise<T> {
  let lock: Lock | undefined;
  try {
    lock = await acquireLock(scope, name, opts);
  } catch (err) {
    if (!(err instanceof LockTimeoutError) || opts.onTimeout === undefined) throw err;
    opts.onTimeout(err);
  }
  try {
    return await fn();
  } finally {
    await lock?.release();
  }
}
