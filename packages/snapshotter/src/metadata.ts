/**
 * Snapshot ids and crash-safe metadata files.
 *
 * Several builder processes may share one snapshot root, so every metadata write
 * is temp file + fsync + rename (readers see the old or the new file, never half),
 * and the directory is fsynced so the rename itself survives a crash.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { SnapshotterBackend } from './types.js';

export const META_FILE = 'meta.json';

/**
 * Directory id for a snapshot name or key: names are arbitrary strings (`sha256:…`
 * chain ids, cache keys), so hash them. 32 hex chars (128 bit) keeps overlay
 * lowerdir strings short; the full name is stored in meta.json and checked on read.
 */
export function snapshotId(name: string): string {
  return createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 32);
}

/** Unique name for temp dirs/files; carries the pid so crash cleanup can tell whose it is. */
export function tempName(prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

export interface CommittedMeta {
  version: 1;
  kind: 'committed';
  name: string;
  /** Name of the committed parent snapshot, if any. */
  parent?: string;
  backend: SnapshotterBackend;
  created: string;
  /**
   * Native backend: the layer diff() produced for this snapshot, kept as `layer.tar.gz`
   * next to meta.json. Such a snapshot's tree (`tree/`) may be moved into a child's
   * active snapshot; it is then rebuilt on demand from the nearest materialised
   * ancestor plus the recorded layers. Snapshots without it (base image layers) are
   * materialised in `fs/` and immutable.
   */
  layer?: { diffID: string; digest: string; size: number };
}

/** How a native active snapshot got its tree. */
export type ActiveTree = 'empty' | 'moved' | 'copied' | 'rebuilt';

/** Overlay: a cached flattened tree (the merged view of a chain), in flat/<id of name>. */
export interface FlatMeta {
  version: 1;
  kind: 'flat';
  /** The committed snapshot whose whole chain this tree is. */
  name: string;
  depth: number;
  created: string;
}

export interface ActiveMeta {
  version: 1;
  kind: 'active';
  key: string;
  parent?: string;
  backend: SnapshotterBackend;
  /** Owner process and its start time (pid reuse guard), for stale-snapshot cleanup. */
  pid: number;
  pidStart: string;
  created: string;
  /** Native backend only. */
  tree?: ActiveTree;
  /** Native, tree "copied": the immutable tree (relative to the root) it was copied from. */
  reference?: string;
}

/** Native: what the last diff() of an active snapshot produced (active/<id>/layer.json). */
export interface DiffRecord {
  diffID: string;
  digest: string;
  size: number;
  empty: boolean;
}

export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * `durable: false` for what a power loss may take with it (an active snapshot is
 * deleted at the next open() anyway): still atomic, without the two fsyncs.
 */
export async function writeJsonAtomic(path: string, value: unknown, { durable = true }: { durable?: boolean } = {}): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${tempName('tmp')}`);
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(`${JSON.stringify(value, null, 2)}\n`);
    if (durable) await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  if (durable) await fsyncPath(dirname(path));
}

export async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw err;
  }
}
