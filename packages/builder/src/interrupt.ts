/**
 * Cleanups to run when the build is interrupted (SIGINT/SIGTERM): kill and
 * delete a running container, release mounts. Each registrant gets a function
 * to unregister itself once its resource is gone.
 */
type Cleanup = () => Promise<void>;

const cleanups = new Set<Cleanup>();
let installed = false;
/** Set once a signal arrived: its handler exits (128 + signal) when the cleanups are done. */
let interrupted = false;

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
    interrupted = true;
    process.stderr.write(`\ninterrupted (${signal}): cleaning up\n`);
    // A cleanup that hangs must not keep the process (and its exit code) hostage.
    setTimeout(() => process.exit(code), 30_000);
    void runAll().finally(() => process.exit(code));
  };
  process.once('SIGINT', handler('SIGINT', 130));
  process.once('SIGTERM', handler('SIGTERM', 143));
}
