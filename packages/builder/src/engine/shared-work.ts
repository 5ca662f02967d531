import { acquireLock, LockTimeoutError, type Lock } from '@stowage/registry-client';

/**
 * The root-wide lock `name`, for work that another build on the same root
 * may be doing at the same time (unpacking a layer into a chain ID, running a
 * step with a given cache key): waiting lets this build take the other one's
 * result instead of doing the work again. Correctness never depends on it,
 * since results are published by rename and the first one wins; so when the
 * wait times out (STOWAGE_LOCK_TIMEOUT, default 10 min) the work is done here
 * too, with a warning, and undefined is returned.
 */
export async function lockSharedWork(scope: string, name: string, what: string, log: (line: string) => void): Promise<Lock | undefined> {
  try {
    return await acquireLock(scope, name, { what, onWait: (holder) => log(`waiting for ${holder}`) });
  } catch (err) {
    if (!(err instanceof LockTimeoutError)) throw err;
    log(`warning: ${err.message}; doing it here too`);
    return undefined;
  }
}
