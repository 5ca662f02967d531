/**
 * @stowage/snapshotter — layer extraction, snapshots and layer diffs for rootless builds.
 *
 * On-disk layout of a snapshot root (e.g. `<state>/snapshots`), shared by concurrent processes:
 *
 *   backend                    "overlay" | "native": fixed by the first open (link(2) wins the race)
 *   committed/<id>/            immutable committed snapshot; <id> = first 32 hex of sha256(name)
 *     meta.json                { kind: "committed", name, parent?, backend, created }
 *     fs/                      overlay: only this layer's files (+ overlay whiteouts/opaque xattrs),
 *                              used as a lowerdir; native: the full filesystem tree
 *   active/<id>/               writable snapshot; <id> = hash of the key
 *     meta.json                { kind: "active", key, parent?, backend, pid, pidStart, created }
 *     fs/                      overlay upperdir (or the plain dir when there is no parent);
 *                              native: full copy of the parent (cp -a --reflink=auto)
 *     work/, merged/           overlay workdir and mount point (only when there is a parent)
 *   views/<tmp>/               read-only overlay mounts handed out by view()
 *   tmp/<prefix>-<pid>-<rand>  staging for prepare/commit/remove and metadata temp files
 *
 * Atomicity: an active snapshot is assembled in tmp/ and renamed into active/; commit renames
 * active fs/ into a staging dir with its meta.json, then renames that into committed/<id>
 * (rename onto an existing non-empty dir fails → the first committer wins, ours is dropped);
 * remove renames committed/<id> into tmp/ before deleting. Metadata files are written
 * temp + fsync + rename. open() deletes active/tmp/views entries whose owning pid is gone
 * (unmounting any mount left below them when running as real root without a mount namespace).
 */
export { applyLayer, type ApplyOptions, type ApplyResult } from './apply.js';
export { Snapshotter, type OpenOptions } from './snapshotter.js';
export type { DiffOptions } from './diff.js';
export type { LayerDigests } from './diff-writer.js';
export type { SnapshotterBackend } from './types.js';
export {
  SnapshotError,
  UnsafeLayerPathError,
  UnsupportedLayerError,
  InvalidLayerError,
  SnapshotNotFoundError,
  SnapshotExistsError,
  SnapshotInUseError,
  MountError,
  type SnapshotErrorCode,
} from './errors.js';
