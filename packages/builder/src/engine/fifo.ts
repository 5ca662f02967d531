import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/**
 * Makes a FIFO at `path` (mode 0600 until the caller sets the real one). It is
 * created, never opened: an open would wait for a writer forever. Node has no
 * mkfifo, so coreutils' is run; FIFOs in builds are rare.
 */
export async function makeFifo(path: string): Promise<void> {
  await execFileP('mkfifo', ['-m', '600', '--', path]);
}
