import { lstat, mkdir, mkdtemp, chmod, readdir, rename, rm, rmdir } from 'node:fs/promises';
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

/** S_ISUID | S_ISGID. */
const SETID_BITS = 0o6000;

/**
 * Clears the setuid and setgid bits of every regular file under `root`
 * (symlinks are not followed; a hard-linked file counts once). Returns how
 * many bits it cleared. Directories keep theirs: setgid on a directory only
 * makes new entries inherit its group, which gives nobody anything, and
 * setuid on a directory means nothing on Linux. Sticky bits are harmless
 * and kept.
 */
export async function dropSetidBits(root: string): Promise<number> {
  let bits = 0;
  const seen = new Set<string>(); // inodes, so that a file's hard links count it once
  const dirs = [root];
  for (let dir = dirs.pop(); dir !== undefined; dir = dirs.pop()) {
    const entries = await readdir(dir, { withFileTypes: true });
    const files: string[] = [];
    for (const e of entries) {
      if (e.isDirectory()) dirs.push(join(dir, e.name));
      else if (e.isFile()) files.push(join(dir, e.name));
    }
    for (let i = 0; i < files.length; i += 64) {
      await Promise.all(
        files.slice(i, i + 64).map(async (path) => {
          const st = await lstat(path);
          const special = st.mode & SETID_BITS;
          if (!st.isFile() || special === 0) return;
          const inode = `${st.dev}:${st.ino}`;
          if (seen.has(inode)) return;
          seen.add(inode);
          await chmod(path, st.mode & 0o1777);
          bits += (special & 0o4000 ? 1 : 0) + (special & 0o2000 ? 1 : 0);
        }),
      );
    }
  }
  return bits;
}

export interface LocalOutputOptions {
  /** `preserve-special=true`: keep the setuid/setgid bits of files as the image has them. */
  preserveSpecial?: boolean;
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
 *
 * Setuid/setgid bits of files are dropped unless `preserveSpecial`: the
 * files belong to the building user (or its subordinate ids), not to the
 * image's root, so a setuid-root binary of the image would become a program
 * that runs as the building user for whoever else on the host starts it.
 * BuildKit's local exporter keeps them, but it runs as root, where they mean
 * what the image meant. `dropped` counts the bits cleared and `note` says so
 * in one line. The tree is staged in `<tmp>/rootfs` with `<tmp>` mode 0700,
 * so no other user can reach a file of it before its bits are dropped, nor
 * in what a killed build leaves behind.
 */
export async function prepareLocal(
  store: ContentStore,
  layers: { descriptor: Descriptor }[],
  dest: string,
  ignoreOwnership: boolean,
  opts: LocalOutputOptions = {},
): Promise<PendingOutput & { tree: RootfsTree; dropped: number; note?: string }> {
  await localDestState(dest); // refuse early, before the work
  await removeDeadTemporaries(dest);
  const tmp = await mkdtemp(join(dirname(dest), `.${basename(dest)}.stowage-${process.pid}-`)); // 0700: stays so until committed
  const untrack = trackTemporary(tmp);
  const rootfs = join(tmp, 'rootfs');
  let tree: RootfsTree;
  let dropped = 0;
  try {
    await mkdir(rootfs);
    await chmod(rootfs, 0o755); // a root filesystem's root (a layer's own `./` entry may still say otherwise)
    tree = await applyImageLayers(store, layers, rootfs, ignoreOwnership);
    if (opts.preserveSpecial !== true) dropped = await dropSetidBits(rootfs);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    untrack();
    throw err;
  }
  const removeStaging = async (): Promise<void> => {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined); // empty by now; a leftover would be cleaned by the next build's removeDeadTemporaries
    untrack();
  };
  let moved: string[] | undefined; // entries moved into an existing empty DIR
  return {
    dest,
    kind: 'root filesystem directory',
    tree,
    dropped,
    ...(dropped > 0 ? { note: `note: ${dropped} setuid/setgid bit${dropped === 1 ? '' : 's'} dropped from ${dest} (add preserve-special=true to keep them)` } : {}),
    async commit() {
      const state = await localDestState(dest);
      if (state === 'absent') {
        await rename(rootfs, dest);
        await removeStaging();
        return;
      }
      moved = [];
      try {
        for (const name of await readdir(rootfs)) {
          await rename(join(rootfs, name), join(dest, name));
          moved.push(name);
        }
      } catch (err) {
        for (const name of moved) await rename(join(dest, name), join(rootfs, name)).catch(() => rm(join(dest, name), { recursive: true, force: true }));
        moved = undefined;
        throw err;
      }
      await rmdir(rootfs);
      await removeStaging();
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
