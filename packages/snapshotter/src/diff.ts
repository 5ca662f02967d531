/** Choosing the change walker for a backend. */
import { nativeChanges, upperChanges, type WalkContext } from './changes.js';
import type { LayerEntry } from './diff-writer.js';
import { overlayXattrNamespace } from './overlay.js';
import type { SnapshotterBackend } from './types.js';
import { hasXattrTools, readXattrsRecursive } from './xattr.js';

export interface DiffOptions {
  /** Clamp every mtime to this many seconds since the epoch (SOURCE_DATE_EPOCH). */
  sourceDateEpoch?: number;
}

async function* fromArray<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}

export async function changesAsync(
  backend: SnapshotterBackend,
  activeFs: string,
  /** native: the parent's tree, if any; overlay: the lower dirs, nearest first. */
  below: string[],
  opts: DiffOptions,
): Promise<AsyncIterable<LayerEntry>> {
  const ctx: WalkContext = {
    ...(opts.sourceDateEpoch !== undefined ? { sourceDateEpoch: Math.floor(opts.sourceDateEpoch) } : {}),
    xattrs: (await hasXattrTools()) ? await readXattrsRecursive(activeFs) : new Map(),
    links: new Map(),
  };
  if (backend === 'overlay') return upperChanges(activeFs, await overlayXattrNamespace(), ctx, below);
  return fromArray(await nativeChanges(activeFs, below[0], ctx));
}
