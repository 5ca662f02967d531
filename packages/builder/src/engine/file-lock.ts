/**
 * flock(2) locks on files: one implementation, in the registry client, whose
 * state-root locks (lock.ts there) use it too; see file-lock.ts there for how
 * it works and why flock.
 */
export { lockFile, FileLockError, type FileLock, type LockFileOptions } from '@stowage/registry-client';
