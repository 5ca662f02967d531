/**
 * @stowage/snapshotter — layer extraction, snapshots and layer diffs for rootless builds.
 *
 * Contract (after containerd's snapshotter; names and keys are arbitrary strings):
 *
 *   prepare(key, parent?) → path   Create the *active* (writable) snapshot `key` whose tree starts
 *                                  as committed `parent`'s (empty without one) and return the path
 *                                  to mutate. Fails E_SNAPSHOT_EXISTS if `key` is active already,
 *                                  E_SNAPSHOT_NOT_FOUND if `parent` is not committed.
 *   diff(key, dest, opts) → digests  Write the changes of active `key` against its parent as a
 *                                  deterministic gzip OCI layer to `dest` (`empty` when nothing
 *                                  changed). Call it after the last mutation and before commit:
 *                                  commit may keep what diff recorded (native backend), so the tree
 *                                  must not change between diff and commit.
 *   commit(name, key)              Turn active `key` into the *committed* (immutable) snapshot
 *                                  `name`; `key` is gone afterwards. Names are content addresses
 *                                  (chain IDs): if `name` exists already, the first commit wins and
 *                                  ours is dropped.
 *   release(pathOrKey)             Discard an active snapshot, or give back a path view() returned.
 *   view(name) → path              A read-only tree of committed `name`; must be released. Never
 *                                  write below it.
 *   remove(name)                   Delete a committed snapshot; E_SNAPSHOT_IN_USE while children
 *                                  depend on it.
 *   list() → [{name, parent?}]     Every committed snapshot (for garbage collection).
 *   usage(name) → {size, inodes}   Bytes (allocated blocks) and inodes this snapshot itself holds,
 *                                  as containerd's Usage: overlay → its own layer dir (an active
 *                                  key → its upper dir); native → the tree it holds (if any) plus
 *                                  its recorded layer and manifest. Shared caches (flat/) and
 *                                  parents are not counted.
 *   exists(name), close()          close() unmounts what this instance mounted and hands back
 *                                  borrowed trees; active snapshots stay for their owner.
 *
 * Active snapshots belong to the process that prepared them (pid + start time in meta.json);
 * committed ones are shared by every process using the root and never change content.
 *
 * On-disk layout of a snapshot root (e.g. `<state>/snapshots`), shared by concurrent processes:
 *
 *   backend                    "overlay" | "native": fixed by the first open (link(2) wins the race)
 *   committed/<id>/            committed snapshot; <id> = first 32 hex of sha256(name)
 *     meta.json                { kind: "committed", name, parent?, backend, created, layer? }
 *     fs/                      overlay: only this layer's files (+ overlay whiteouts/opaque xattrs),
 *                              used as a lowerdir; native: the full tree of an *immutable*
 *                              snapshot (one committed without a diff, i.e. base image layers)
 *     layer.tar.gz             native, *movable* snapshot (meta.layer set: committed after diff()):
 *                              the layer diff() produced (hard link of diff's dest, or a copy)
 *     tree/{fs/,manifest}      native, movable snapshot: its full tree and the manifest describing
 *                              it (path → inode, size, mode, uid, gid, mtime/ctime ns, link target,
 *                              rdev, xattrs, sha256 when computed). Absent (a "ghost") while a
 *                              child's active snapshot or a view has moved the tree away; then
 *                              rebuilt on demand = copy of the nearest immutable ancestor's fs/
 *                              (or an empty dir) + the recorded layers above it, applied in order.
 *   active/<id>/               writable snapshot; <id> = hash of the key
 *     meta.json                { kind: "active", key, parent?, backend, pid, pidStart, created,
 *                                tree?: "empty"|"moved"|"copied"|"rebuilt", reference? }
 *     fs/                      overlay upperdir (or the plain dir when there is no parent);
 *                              native: the working tree — the parent's own tree moved here when
 *                              the parent is movable and holds it, else a copy (cp -a
 *                              --reflink=auto) of an immutable parent, else a rebuild
 *     base.manifest            native: manifest of fs/ as prepared (the moved parent's manifest,
 *                              or a scan of the copy/rebuild); diff compares against it
 *     manifest, layer.tar.gz,  native, written by diff(): the tree's new manifest (from the same
 *     layer.json               walk), the layer, and { diffID, digest, size, empty }
 *     work/, merged/           overlay workdir and mount point (only when there is a parent)
 *   flat/<id of name>/         overlay: cached merged tree of committed `name`'s whole chain
 *     meta.json, fs/           ({ kind: "flat", name, depth }); used as one lowerdir when a chain
 *                              is too deep for the one-page mount options. Flatten points sit at
 *                              depths that are multiples of FLATTEN_STRIDE (64), built
 *                              incrementally (64 lowers + the flat below), shared by every build
 *                              on the root, published by rename (first one wins).
 *   views/<tmp>/               read-only overlay mounts handed out by view(); native: a movable
 *                              snapshot's tree borrowed by a view (tree/, renamed back on release)
 *                              or a rebuilt tree (fs/)
 *   tmp/<prefix>-<pid>-<rand>  staging for prepare/commit/remove/flatten and metadata temp files
 *
 * Native: what is renamed when. prepare(key, P) with P movable: committed/P/tree → tmp staging →
 * (fs, base.manifest) → active/<key>; so a chain of steps keeps mutating one tree and no step
 * copies it. commit(N, key) after diff: active fs + manifest + layer → tmp/commit-…/{tree,
 * layer.tar.gz} → committed/N (first committer wins; if N exists without a tree, ours becomes its
 * tree). release(key) after an empty diff: the tree goes back to P's tree/. view(N) of a movable
 * N: committed/N/tree → views/<tmp>/tree, renamed back on release. Whoever renamed a tree away
 * owns it exclusively, so concurrent processes never see a tree change under them; losers of a
 * rename race rebuild. Immutable snapshots are copied, never moved.
 *
 * Owners without subordinate ids: in a single-id user namespace only root exists on disk, so
 * applyLayer({ignoreOwnership}) returns the owners the layer asked for (and the paths it deleted),
 * and recordOwners(key, …) keeps them — and COPY --chown's — in active/<id>/owners.json, moved
 * into committed/<id>/owners.json by commit. diff() writes, for an entry root owns on disk, the
 * owner recorded for the same path by the nearest snapshot of the chain that wrote it (unless a
 * nearer one deleted it): see owners.ts. A path deleted and re-created by a step therefore keeps
 * its old owner, the one approximation of this mode.
 *
 * Atomicity: an active snapshot is assembled in tmp/ and renamed into active/; commit renames
 * active fs/ into a staging dir with its meta.json, then renames that into committed/<id>
 * (rename onto an existing non-empty dir fails → the first committer wins, ours is dropped);
 * remove renames committed/<id> into tmp/ before deleting. Metadata files are written
 * temp + fsync + rename. open() deletes active/tmp/views entries whose owning pid is gone
 * (unmounting any mount left below them when running as real root without a mount namespace);
 * a tree that was moved away by a crashed process is simply gone, and its snapshot is rebuilt
 * from the recorded layers when next needed.
 */
export { applyLayer, applyLayerFile, type ApplyOptions, type ApplyResult } from './apply.js';
export { type Owner, type OwnerRecords } from './owners.js';
export { Snapshotter, type OpenOptions, type SnapshotInfo, type Usage } from './snapshotter.js';
export { findExecutable } from './which.js';
export { diskUsage } from './native.js';
export { hasXattrTools, readXattrsOf, readXattrsRecursive, setXattr } from './xattr.js';
export type { DiffOptions } from './diff.js';
export { encodeHeader as tarHeaderBlocks, type LayerDigests, type LayerEntry } from './diff-writer.js';
export { gzipMembers, defaultGzipConcurrency, GZIP_BLOCK_SIZE, GZIP_PARALLEL_THRESHOLD, type GzipMemberOptions } from './gzip-members.js';
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
