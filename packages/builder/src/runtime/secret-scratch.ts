import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** statfs(2) f_type of tmpfs (linux/magic.h). */
const TMPFS_MAGIC = 0x01021994;

export interface SecretScratch {
  /** A 0700 directory in memory (see `kind`) for secret files and the configs that carry secret env values. */
  path: string;
  kind: 'own tmpfs' | 'tmpfs' | 'disk';
  close(): Promise<void>;
}

async function isTmpfs(path: string): Promise<boolean> {
  try {
    return (await statfs(path)).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Where secret values are staged for a build, so that they never touch a
 * disk: preferably a tmpfs of our own, mounted on `<buildTmp>/secrets`
 * inside the build's mount namespace (a user namespace may mount tmpfs),
 * which nobody outside sees and which vanishes with the namespace even if
 * the build is killed. Failing that, a 0700 directory on an existing tmpfs
 * ($XDG_RUNTIME_DIR, /dev/shm; checked with statfs). Failing both, a 0700
 * directory under the build's scratch space on disk: the build still works
 * and the directory is removed at the end, but the bytes did reach a disk,
 * so the caller says so.
 */
export async function openSecretScratch(buildTmp: string): Promise<SecretScratch> {
  const own = join(buildTmp, 'secrets');
  await mkdir(own, { mode: 0o700 });
  try {
    await execFileAsync('mount', ['-t', 'tmpfs', '-o', 'mode=0700,size=64m,nosuid,nodev,noexec', 'stowage-secrets', own]);
    if (await isTmpfs(own)) {
      return {
        path: own,
        kind: 'own tmpfs',
        close: async () => {
          await execFileAsync('umount', [own]).catch(() => execFileAsync('umount', ['-l', own]).catch(() => undefined));
          await rm(own, { recursive: true, force: true });
        },
      };
    }
  } catch {
    // Not allowed here (no mount namespace of our own): try a shared tmpfs.
  }
  for (const candidate of [process.env.XDG_RUNTIME_DIR, '/dev/shm']) {
    if (!candidate || !(await isTmpfs(candidate))) continue;
    try {
      const dir = await mkdtemp(join(candidate, `stowage-secrets-${process.pid}-`));
      await rm(own, { recursive: true, force: true });
      return { path: dir, kind: 'tmpfs', close: () => rm(dir, { recursive: true, force: true }) };
    } catch {
      // Not writable for us: next.
    }
  }
  return { path: own, kind: 'disk', close: () => rm(own, { recursive: true, force: true }) };
}
