import { lstat, mkdtemp, chmod, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { ContentStore, Descriptor } from '@stowage/registry-client';
import { BuildError } from '../errors.js';
import { removeDeadTemporaries, trackTemporary, type PendingOutput } from './atomic.js';
import { applyImageLayers, type RootfsTree } from './rootfs.js';

/** What is at a `type=local` destination: nothing, or an empty directory; anything else is refused. */
export async function localDestState(dest: string): Promise<'absent' | 'empty-dir'> {
  const st = await lstat(dest).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!st) return 'absent';
  if (!st.isDirectory()) throw new BuildError('E_EXPORT', `${dest} exists and is not a directory`);
  if ((await readdir(dest)).length > 0) throw new BuildError('E_EXPORT', `${dest} exists and is not empty (give a new or an empty directory)`);
  return 'empty-dir';
}

/**
 * `-o type=local,dest=DIR`: the image's root filesystem is assembled in a
 * temporary directory next to DIR (same filesystem); commit renames it to
 * DIR, or, when DIR is an existing empty directory, moves its entries into
 * DIR. Before commit nothing is visible at DIR.
 *
 * Owners: with a subordinate id range the files get the image's owners
 * (mapped through the range, as `podman unshare` shows them); without one,
 * or for owners outside the range, they stay the building user's.
 */
export async function prepareLocal(
  store: ContentStore,
  layers: { descriptor: Descriptor }[],
  dest: string,
  ignoreOwnership: boolean,
): Promise<PendingOutput & { tree: RootfsTree }> {
  await localDestState(dest); // refuse early, before the work
  await removeDeadTemporaries(dest);
  const tmp = await mkdtemp(join(dirname(dest), `.${basename(dest)}.stowage-${process.pid}-`));
  const untrack = trackTemporary(tmp);
  let tree: RootfsTree;
  try {
    await chmod(tmp, 0o755); // a root filesystem's root, not mkdtemp's 0700
    tree = await applyImageLayers(store, layers, tmp, ignoreOwnership);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    untrack();
    throw err;
  }
  let moved: string[] | undefined; // entries moved into an existing empty DIR
  return {
    dest,
    kind: 'root filesystem directory',
    tree,
    async commit() {
      const state = await localDestState(dest);
      if (state === 'absent') {
        await rename(tmp, dest);
        untrack();
        return;
      }
      moved = [];
      try {
        for (const name of await readdir(tmp)) {
          await rename(join(tmp, name), join(dest, name));
          moved.push(name);
        }
      } catch (err) {
        for (const name of moved) await rename(join(dest, name), join(tmp, name)).catch(() => rm(join(dest, name), { recursive: true, force: true }));
        moved = undefined;
        throw err;
      }
      await rmdir(tmp);
      untrack();
    },
    async abort() {
      await rm(tmp, { recursive: true, force: true });
      untrack();
    },
    async revert() {
      if (moved === undefined) await rm(dest, { recursive: true, force: true });
      else for (const name of moved) await rm(join(dest, name), { recursive: true, force: true });
    },
  };
}
