import { spawn } from 'node:child_process';

/** A held lock; `release` resolves once another process can take it. */
export interface FileLock {
  release(): Promise<void>;
}

/** flock(1)'s exit code when `-n` finds the lock taken (`-E`). */
const CONFLICT = 75;

/**
 * An exclusive flock(2) on `path` (created if missing), held by a `flock`
 * child process that lives as long as its stdin pipe is open. flock rather
 * than an O_EXCL lock file: the kernel drops the lock when the holder dies,
 * so a build killed in any way (even SIGKILL: the pipe closes, `cat` sees
 * EOF) never leaves a stale lock for the next one, and there is no pid check
 * that could race with a takeover. Works across processes and across
 * concurrent stages of one build alike. Node has no flock binding, hence
 * util-linux's flock (part of every Debian system).
 *
 * `wait: false` returns undefined at once when someone else holds the lock.
 * `onWait` is called once if the lock is not granted within 200 ms.
 */
export function lockFile(path: string, opts: { wait: boolean; onWait?: () => void }): Promise<FileLock | undefined> {
  return new Promise((resolve, reject) => {
    const args = ['-x', ...(opts.wait ? [] : ['-n', '-E', String(CONFLICT)]), path, 'sh', '-c', 'echo locked && exec cat >/dev/null'];
    const child = spawn('flock', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let granted = false;
    let stderr = '';
    const exited = new Promise<void>((done) => child.on('close', () => done()));
    const waitTimer = opts.onWait ? setTimeout(() => opts.onWait?.(), 200) : undefined;
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString('utf8');
    });
    child.stdout.on('data', (b: Buffer) => {
      if (granted || !b.toString('utf8').includes('locked')) return;
      granted = true;
      clearTimeout(waitTimer);
      resolve({
        release: async () => {
          child.stdin.end();
          await exited;
        },
      });
    });
    child.on('error', (err) => {
      clearTimeout(waitTimer);
      reject(new Error(`cannot run flock to lock ${path}: ${err.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(waitTimer);
      if (granted) return;
      if (code === CONFLICT && !opts.wait) resolve(undefined);
      else reject(new Error(`flock ${path} failed (exit ${code}): ${stderr.trim()}`));
    });
  });
}
