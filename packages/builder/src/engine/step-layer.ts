import { rm } from 'node:fs/promises';
import type { ContentStore } from '@stowage/registry-client';
import type { LayerDigests, Snapshotter } from '@stowage/snapshotter';

/**
 * A build step's diff as a layer blob in the store: written under ingest/,
 * imported unless the step changed nothing. The temporary file never outlives
 * the call, so a diff that fails half way (a full disk) leaves nothing there.
 * Used by ordinary steps and by --link steps (link.ts).
 */
export async function diffIntoStore(deps: { snapshots: Snapshotter; store: ContentStore; epoch: number }, key: string): Promise<LayerDigests> {
  const tmp = deps.store.tempPath();
  try {
    const layer = await deps.snapshots.diff(key, tmp, { sourceDateEpoch: deps.epoch });
    if (!layer.empty) await deps.store.importFile(tmp, layer.digest);
    return layer;
  } finally {
    // Once imported the name is gone (renamed into blobs/): removing it is then a no-op.
    await rm(tmp, { force: true }).catch(() => undefined);
  }
}
