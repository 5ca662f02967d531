import { applyLayerFile, type Owner, type OwnerRecords } from '@stowage/snapshotter';
import type { ContentStore, Descriptor } from '@stowage/registry-client';

/**
 * Owners the layers asked for, when they could not be set on disk (a
 * single-id user namespace: every file belongs to the one mapped user).
 * Later layers win; a deletion forgets what it covers.
 */
export class OwnerMap {
  private readonly set = new Map<string, Owner>();

  add(records: OwnerRecords): void {
    for (const r of records.removed) {
      for (const p of [...this.set.keys()]) if (covers(r, p)) this.set.delete(p);
    }
    for (const [p, o] of records.set) this.set.set(p, o);
  }

  /** Owner of the root-relative path (`etc/passwd`), if a layer named one. */
  get(path: string): Owner | undefined {
    return this.set.get(path);
  }
}

function covers(removed: string, path: string): boolean {
  if (removed === '/') return true;
  if (removed.endsWith('/')) return path.startsWith(removed);
  return path === removed || path.startsWith(`${removed}/`);
}

export interface RootfsTree {
  /** The directory holding the image's root filesystem. */
  dir: string;
  /** Set when ownership was not applied on disk: the owners to report instead (e.g. in a tar). */
  owners?: OwnerMap;
  /** Entries skipped or degraded while applying (device nodes, xattrs, …). */
  warnings: string[];
}

/**
 * The image's final root filesystem: its layers applied in order onto `dir`
 * (which must exist). Whiteouts become deletions, so no `.wh.` file is left.
 * With `ignoreOwnership` (no subordinate ids) files stay owned by the
 * building user and the owners the layers asked for are returned instead.
 */
export async function applyImageLayers(store: ContentStore, layers: { descriptor: Descriptor }[], dir: string, ignoreOwnership: boolean): Promise<RootfsTree> {
  const owners = ignoreOwnership ? new OwnerMap() : undefined;
  const warnings: string[] = [];
  for (const layer of layers) {
    const result = await applyLayerFile(dir, store.blobPath(layer.descriptor.digest), { ignoreOwnership });
    warnings.push(...result.warnings);
    if (owners && result.owners) owners.add(result.owners);
  }
  return { dir, ...(owners ? { owners } : {}), warnings };
}
