import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/**
 * Kills and deletes every container whose runc state is under `runcRoot`:
 * those of a build that died (SIGKILL, OOM) while a RUN step ran. Its
 * `runc run` outlives it and the step keeps running, writing into a snapshot
 * nobody will commit; the state directory is all that knows about it. Never
 * throws: a container that is gone already is what we want.
 */
export async function reapContainers(runcRoot: string, runc = 'runc'): Promise<void> {
  let ids: string[];
  try {
    ids = await readdir(runcRoot);
  } catch {
    return;
  }
  for (const id of ids) {
    await execFileAsync(runc, ['--root', runcRoot, 'kill', id, 'KILL']).catch(() => undefined);
    await execFileAsync(runc, ['--root', runcRoot, 'delete', '--force', id]).catch(() => undefined);
  }
}
