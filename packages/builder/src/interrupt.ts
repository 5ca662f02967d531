/**
 * Cleanups to run when the build is interrupted (SIGINT/SIGTERM): kill and
 * delete a running container, release mounts. Each registrant gets a function
 * to unregister itself once its resource is gone.
 */
type Cleanup = () => Promise<void>;

const cleanups = new Set<Cleanup>();
let installed = false;
/** Set once a signal arrived: the process exits with it when the cleanups are done. */
let pendingExit: number | undefined;

/** The exit code an interruption in progress will end the process with, if one is. */
export function interruptExitCode(): number | undefined {
  return pendingExit;
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
    pendingExit = code;
    process.stderr.write(`\ninterrupted (${signal}): cleaning up\n`);
    void runAll().finally(() => process.exit(code));
  };
  process.once('SIGINT', handler('SIGINT', 130));
  process.once('SIGTERM', handler('SIGTERM', 143));
}
