/**
 * Locks between processes that share one state root (`--root`).
 *
 * A lock is a name in Linux's abstract Unix socket namespace, bound by its
 * holder: bind(2) of a name that is taken fails with EADDRINUSE, and the
 * kernel frees the name when the holder closes the socket or dies in any
 * way, SIGKILL and OOM kill included. So a lock never outlives its holder and
 * there is nothing stale to break. Lock files (`O_EXCL`, holding pid and start
 * time) need breaking, and that cannot be made safe: two waiters that both see
 * the holder dead both delete the file, and the second deletes the lock the
 * first has just taken.
 *
 * The abstract namespace belongs to the network namespace: every process
 * sharing a root must share one (stowage's user namespace keeps the host's).
 * Names are a hash of the root's real path and the lock's name, so roots
 * never contend with each other.
 *
 * The holder answers a connection with one line saying who it is and what it
 * does, so that a waiter can tell the user whom it waits for.
 */
import { createHash } from 'node:crypto';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { realpath } from 'node:fs/promises';

/** How long a waiter waits by default: `STOWAGE_LOCK_TIMEOUT` (seconds), else 10 minutes. */
export function defaultLockTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const s = Number(env.STOWAGE_LOCK_TIMEOUT);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 10 * 60 * 1000;
}

export class LockTimeoutError extends Error {
  readonly code = 'E_LOCK_TIMEOUT';
  constructor(
    message: string,
    /** The holder's own description (`pid 123: unpacking …`), when it answered. */
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
  /** Frees the lock; waiters get it on their next try. Idempotent. */
  release(): Promise<void>;
}

/** A scope for lock names: the real path of a state directory (created by the caller). */
export async function lockScope(dir: string): Promise<string> {
  return realpath(dir);
}

/** The abstract socket address of lock `name` in `scope` (a leading NUL: no file anywhere). */
export function lockAddress(scope: string, name: string): string {
  return `\0stowage-lock-${createHash('sha256').update(`${scope}\0${name}`).digest('hex').slice(0, 40)}`;
}

function tryBind(address: string, what: string): Promise<Lock | undefined> {
  return new Promise((resolve, reject) => {
    const peers = new Set<Socket>();
    const server: Server = createServer((socket) => {
      peers.add(socket);
      socket.unref();
      socket.on('error', () => undefined);
      socket.on('close', () => peers.delete(socket));
      socket.end(`pid ${process.pid}: ${what}\n`);
    });
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') resolve(undefined);
      else reject(err);
    });
    server.listen({ path: address }, () => {
      // A held lock must not keep the process alive on its own; a failed accept must not crash it.
      server.unref();
      server.on('error', () => undefined);
      let released: Promise<void> | undefined;
      resolve({
        release: () => {
          released ??= new Promise<void>((done) => {
            for (const s of peers) s.destroy();
            server.close(() => done());
          });
          return released;
        },
      });
    });
  });
}

/** The holder's description, or undefined when nobody answers (it has just released). */
function describeHolder(address: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    let text = '';
    const socket = createConnection({ path: address });
    const timer = setTimeout(() => socket.destroy(), 1000);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const line = text.split('\n')[0]?.trim();
      resolve(line ? line.slice(0, 300) : undefined);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Takes lock `name` in `scope`, waiting (with backoff up to 250 ms between
 * tries) while another holder has it; throws {@link LockTimeoutError} once
 * `timeoutMs` has passed.
 */
export async function acquireLock(scope: string, name: string, opts: LockOptions): Promise<Lock> {
  const address = lockAddress(scope, name);
  const timeoutMs = opts.timeoutMs ?? defaultLockTimeoutMs();
  const deadline = Date.now() + timeoutMs;
  let holder: string | undefined;
  let delay = 5;
  for (;;) {
    const lock = await tryBind(address, opts.what);
    if (lock) return lock;
    if (holder === undefined) {
      holder = await describeHolder(address);
      if (holder !== undefined) opts.onWait?.(holder);
    }
    if (Date.now() >= deadline) {
      throw new LockTimeoutError(
        `timed out after ${Math.round(timeoutMs / 1000)} s waiting to start ${opts.what}: another process on the same state root holds it` +
          `${holder !== undefined ? ` (${holder})` : ''}. Wait for it to finish or stop it; STOWAGE_LOCK_TIMEOUT=<seconds> waits longer`,
        holder,
      );
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 250);
  }
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
