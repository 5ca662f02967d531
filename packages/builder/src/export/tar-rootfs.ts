import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { hasXattrTools, readXattrsRecursive, tarHeaderBlocks, type LayerEntry } from '@stowage/snapshotter';
import { prepareStreamedFile, type PendingOutput, type WrittenBytesListener } from './atomic.js';
import type { RootfsTree } from './rootfs.js';

const BLOCK = 512;

/**
 * The entries of a root filesystem tree as one tar stream: paths relative to
 * the root (`bin/`, `bin/sh`), sorted, directories before their contents,
 * hard links as Link entries to the first path seen, xattrs as PAX records
 * (as in the layers and BuildKit's tar export). Owners come from
 * `tree.owners` where the layers named one that could not be set on disk,
 * else from the files; no user or group names. Sockets and device nodes
 * (never created by a rootless build) are left out.
 */
export async function* rootfsTarStream(tree: RootfsTree): AsyncGenerator<Buffer> {
  const seenInodes = new Map<string, string>();
  // One getfattr for the whole tree: only files that have xattrs are in the map.
  const xattrs = (await hasXattrTools()) ? await readXattrsRecursive(tree.dir) : new Map<string, Map<string, Buffer>>();
  async function* walk(rel: string): AsyncGenerator<Buffer> {
    const names = (await readdir(rel === '' ? tree.dir : join(tree.dir, rel))).sort();
    for (const name of names) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const abs = join(tree.dir, path);
      const st = await lstat(abs);
      const owner = tree.owners?.get(path) ?? { uid: st.uid, gid: st.gid };
      const attrs = xattrs.get(abs);
      const base: Omit<LayerEntry, 'type'> = {
        path, mode: st.mode & 0o7777, uid: owner.uid, gid: owner.gid, size: 0, mtime: Math.floor(st.mtimeMs / 1000), ...(attrs?.size ? { xattrs: attrs } : {}),
      };
      if (st.isDirectory()) {
        yield* tarHeaderBlocks({ ...base, type: 'Directory' });
        yield* walk(path);
      } else if (st.isSymbolicLink()) {
        yield* tarHeaderBlocks({ ...base, type: 'SymbolicLink', linkpath: await readlink(abs) });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? seenInodes.get(key) : undefined;
        if (first !== undefined) {
          yield* tarHeaderBlocks({ ...base, type: 'Link', linkpath: first });
          continue;
        }
        if (st.nlink > 1) seenInodes.set(key, path);
        yield* tarHeaderBlocks({ ...base, type: 'File', size: st.size });
        let written = 0;
        for await (const chunk of createReadStream(abs)) {
          const buf = chunk as Buffer;
          const take = Math.min(buf.length, st.size - written);
          if (take > 0) yield take === buf.length ? buf : buf.subarray(0, take);
          written += take;
        }
        if (written < st.size) throw new Error(`${path} shrank while being written to the tar`);
        const pad = (BLOCK - (st.size % BLOCK)) % BLOCK;
        if (pad > 0) yield Buffer.alloc(pad);
      } else if (st.isFIFO()) {
        yield* tarHeaderBlocks({ ...base, type: 'FIFO' });
      }
    }
  }
  yield* walk('');
  yield Buffer.alloc(BLOCK * 2);
}

/** `-o type=tar,dest=FILE`: the root filesystem as one tar, prepared next to FILE. */
export function prepareRootfsTar(tree: RootfsTree, dest: string, onBytes?: WrittenBytesListener): Promise<PendingOutput> {
  return prepareStreamedFile(dest, 'root filesystem tar', Readable.from(rootfsTarStream(tree)), 0o644, onBytes);
}
