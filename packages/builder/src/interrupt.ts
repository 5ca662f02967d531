/**
 * Cleanups to run when the build is interrupted (SIGINT/SIGTERM): kill and
 * delete a running container, release mounts. Each registrant gets a function
 * to unregister itself once its resource is gone.
 */
type Cleanup = () => Promise<void>;

const cleanups = new Set<Cleanup>();
let installed = false;
let interrupted: { done: Promise<void>; exitCode: number } | undefined;
let notice = (line: string): void => {
  process.stderr.write(`\n${line}\n`);
};

/** Where the "interrupted" line goes: the CLI routes it through its progress output (e.g. as a JSON event). */
export function setInterruptNotice(write: (line: string) => void): void {
  notice = write;
}

/**
 * Set once SIGINT/SIGTERM arrived: `done` settles when the cleanups have
 * run, right before the process exits with `exitCode`. The build fails at
 * the same time (its container was killed) and must not exit first, which
 * would cut the cleanups short.
 */
export function interruption(): { done: Promise<void>; exitCode: number } | undefined {
  return interrupted;
}

/**
 * Exits with `code`, unless the build was interrupted: then the signal's
 * handler exits, with 130/143, once its cleanups are done. (The build,
 * whose container the handler killed, usually fails meanwhile with exit 1.)
 */
export function exitUnlessInterrupted(code: number): void {
  if (!interrupted) process.exit(code);
}

export function onInterrupt(cleanup: Cleanup): () => void {
  install();
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

/** Newest first, one at a time: a container must be gone before the scratch space it runs from. */
async function runAll(): Promise<void> {
  const pending = [...cleanups].reverse();
  cleanups.clear();
  for (const cleanup of pending) await cleanup().catch(() => undefined);
}

function install(): void {
  if (installed) return;
  installed = true;
  const handler = (signal: NodeJS.Signals, code: number) => () => {
    notice(`interrupted (${signal}): cleaning up`);
    const done = runAll();
    interrupted = { done, exitCode: code };
    // A cleanup that hangs must not keep the process (and its exit code) hostage.
    setTimeout(() => process.exit(code), 30_000);
    void done.finally(() => process.exit(code));
  };
  process.once('SIGINT', handler('SIGINT', 130));
  process.once('SIGTERM', handler('SIGTERM', 143));
}
