// A full device under --root. Writes of stowage itself fail with ENOSPC,
// which becomes E_NO_SPACE naming --root. A RUN step that fills it sees
// ENOSPC inside the container, where its program may report anything ("I/O
// error", a truncated file); the step's failure then says the disk is full.
import { statfs } from 'node:fs/promises';
import { BuildError, withLocation } from '../errors.js';

/** Below this much free space (for unprivileged writers) a device counts as full. */
export const FULL_BELOW_BYTES = 1 << 20;

/** Bytes an unprivileged process can still write on the filesystem holding `dir`; undefined when unknown. */
export async function availableBytes(dir: string): Promise<number | undefined> {
  try {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

/** ` (the device holding --root R has N bytes left: …)` when that device is full, else ''. */
export async function fullRootNote(root: string): Promise<string> {
  const free = await availableBytes(root);
  if (free === undefined || free >= FULL_BELOW_BYTES) return '';
  return ` (the device holding --root ${root} has ${free} bytes left: the step probably ran out of space; free space there or use another --root)`;
}

/**
 * A full disk surfaces as a bare `ENOSPC: …, write` from whichever write hit
 * it; say where the space ran out (and for what, `purpose`) and what to do, keeping the Dockerfile line.
 * (Partial files are already gone: ingest, layer writes and snapshot staging
 * clean up.) Other errors are returned as they are.
 */
export function noSpaceError(err: unknown, root: string, purpose = ''): unknown {
  if (!(err instanceof Error) || (err as NodeJS.ErrnoException).code !== 'ENOSPC') return err;
  const located = err as Error & { file?: string; line?: number };
  const wrapped = new BuildError('E_NO_SPACE', `no space left on the device holding --root ${root}${purpose ? ` ${purpose}` : ''} (${err.message}): free space there or use another --root; the state root stays consistent`);
  return withLocation(Object.assign(wrapped, { cause: err }), { ...(located.file !== undefined ? { file: located.file } : {}), ...(located.line !== undefined ? { line: located.line } : {}) });
}
