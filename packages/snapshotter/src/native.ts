/** Native backend helpers: full-tree copies (no mounts needed anywhere). */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { SnapshotError } from './errors.js';

const execFileP = promisify(execFile);

/**
 * Copy `src` to a new directory `dest`, preserving everything cp -a preserves
 * (ownership, modes, timestamps in ns, hardlinks, xattrs); reflinks make it cheap
 * on btrfs/xfs. `dest` must not exist.
 */
export async function copyTree(src: string, dest: string): Promise<void> {
  try {
    await execFileP('cp', ['-a', '--reflink=auto', '--', src, dest], { maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const stderr = (err as { stderr?: unknown }).stderr;
    throw new SnapshotError(`copying snapshot tree failed: ${typeof stderr === 'string' ? stderr.trim() : String(err)}`, 'E_SNAPSHOT', { cause: err });
  }
}
