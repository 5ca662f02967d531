/**
 * Exclusive flock(2) locks on files, for locks between processes.
 *
 * flock rather than an O_EXCL lock file: the kernel drops the lock when the
 * last descriptor of its open file description closes, so a holder killed in
 * any way (SIGKILL and OOM kill included) never leaves a stale lock, and
 * there is no pid check that could race with a takeover. A lock belongs to a
 * file, not to a network namespace, so a process elsewhere (a RUN step with
 * or without the host's network) contends on it only if it can open the
 * file.
 *
 * Node has no flock binding, hence util-linux's flock(1) (part of every
 * Debian system), in its descriptor mode: we open the file ourselves
 * (O_NOFOLLOW: a symlink planted where the lock file goes is refused, not
 * followed to whatever it names), hand the descriptor to `flock FD` as its
 * fd 3, and flock locks it and exits. The lock then belongs to the open file
 * description, which this process keeps open: holding a lock costs one
 * descriptor and no process, and releasing it is closing the descriptor.
 * Node opens files close-on-exec, so RUN steps and other children never
 * inherit (and so never hold) it.
 */
import { spawn } from 'node:child_process';
import { close, constants, fstat, open } from 'node:fs';
import { promisify } from 'node:util';

const openAsync = promisify(open);
const closeAsync = promisify(close);
const fstatAsync = promisify(fstat);

/** A held lock; `release` resolves once another process can take it. Idempotent. */
export interface FileLock {
  release(): Promise<void>;
}

/** The lock could not be attempted: flock(1) missing or failing, or the lock file unusable. */
export class FileLockError extends Error {
  readonly code = 'E_LOCK_FAILED';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FileLockError';
  }
}

/** flock(1)'s exit code (`-E`) when `-n` finds the lock taken or `-w` runs out. */
const CONFLICT = 75;

export interface LockFileOptions {
  /** false: return undefined at once when someone else holds the lock. */
  wait: boolean;
  /** With `wait`: give up (return undefined) after this long. Default: wait as long as it takes. */
  timeoutMs?: number;
  /** With `wait`: called once if the lock is not granted within 200 ms. */
  onWait?: () => void;
}

/** Opens (creating, mode 0600) a lock file without following a symlink, and checks it is a regular file. */
async function openLockFile(path: string): Promise<number> {
  let fd: number;
  try {
    fd = await openAsync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ELOOP' ? 'it is a symbolic link, which a lock file never is' : (err as Error).message;
    throw new FileLockError(`cannot open lock file ${path}: ${why}`, { cause: err });
  }
  const st = await fstatAsync(fd).catch(async (err: unknown) => {
    await closeAsync(fd).catch(() => undefined);
    throw new FileLockError(`cannot stat lock file ${path}: ${(err as Error).message}`, { cause: err });
  });
  if (!st.isFile()) {
    await closeAsync(fd).catch(() => undefined);
    throw new FileLockError(`lock file ${path} is not a regular file`);
  }
  return fd;
}

/** Runs `flock -x [-n | -w SECS] 3` on `fd`: true when it got the lock, false on conflict or timeout. */
function flockFd(fd: number, path: string, opts: { wait: boolean; timeoutMs?: number; onWait?: () => void }): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const bounded = opts.wait && opts.timeoutMs !== undefined && Number.isFinite(opts.timeoutMs);
    const mode = !opts.wait ? ['-n'] : bounded ? ['-w', (Math.max(1, opts.timeoutMs as number) / 1000).toFixed(3)] : [];
    const child = spawn('flock', ['-x', ...mode, '-E', String(CONFLICT), '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
    let stderr = '';
    const waitTimer = opts.wait && opts.onWait ? setTimeout(() => opts.onWait?.(), 200) : undefined;
    // Belt and braces: flock -w ends the wait itself; a stopped flock must not hang us past it.
    // (Not past setTimeout's limit of 2^31-1 ms, where it would fire at once.)
    const killAfter = bounded ? (opts.timeoutMs as number) + 5_000 : Infinity;
    const killTimer = killAfter < 2 ** 31 - 1 ? setTimeout(() => child.kill('SIGKILL'), killAfter) : undefined;
    child.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString('utf8');
    });
    child.on('error', (err) => {
      clearTimeout(waitTimer);
      clearTimeout(killTimer);
      reject(new FileLockError(`cannot run flock to lock ${path}: ${err.message}`, { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(waitTimer);
      clearTimeout(killTimer);
      if (code === 0) resolve(true);
      // Killed by our safety timer: it may have taken the lock on our descriptor first; closing it (the caller does) frees that.
      else if (code === CONFLICT || signal === 'SIGKILL') resolve(false);
      else reject(new FileLockError(`flock ${path} failed (${code !== null ? `exit ${code}` : `signal ${signal}`}): ${stderr.trim()}`));
    });
  });
}

/**
 * An exclusive flock(2) on `path` (created, mode 0600, if missing; a symlink
 * or other non-regular file there is an error). Works across processes and
 * across concurrent users within one process alike (each call opens the file
 * anew, and flock locks belong to open file descriptions).
 */
export async function lockFile(path: string, opts: LockFileOptions): Promise<FileLock | undefined> {
  const fd = await openLockFile(path);
  let granted: boolean;
  try {
    granted = await flockFd(fd, path, opts);
  } catch (err) {
    await closeAsync(fd).catch(() => undefined);
    throw err;
  }
  if (!granted) {
    await closeAsync(fd).catch(() => undefined);
    return undefined;
  }
  let released: Promise<void> | undefined;
  return {
    release: () => (released ??= closeAsync(fd).catch(() => undefined)),
  };
}
