/**
 * Garbage collection of a state root (`stowage prune`), as `buildx prune`:
 *
 *   default          drops what nothing kept refers to: cache records whose
 *                    snapshot or layer is gone, snapshots outside the chains
 *                    of the cache records and image records, blobs no record
 *                    names (exported manifests and configs, layers of dropped
 *                    steps), partial downloads and scratch dirs of dead builds.
 *   keepStorage      then drops the least recently used records (cache and
 *                    image records by mtime, which a hit refreshes) until what
 *                    the rest needs is at most that many bytes.
 *   all              drops every record, snapshot and blob.
 *
 * Kept things come as *roots* (records); a kept record keeps its snapshot
 * with all its ancestors (an overlay child stacks on its parents' files) and
 * its blobs. Order is crash-safe: records go first, then snapshots children
 * before parents, then blobs. A crash in between leaves only unreferenced
 * things (collected next time) and records whose snapshot or blob is gone,
 * which the engine already treats as a cache miss (and a base image as not
 * pulled). The prune lock (leases.ts) keeps builds and pulls out meanwhile.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ContentStore } from '@stowage/registry-client';
import { Snapshotter, SnapshotNotFoundError, diskUsage, type SnapshotInfo } from '@stowage/snapshotter';
import { BuildCache } from './cache.js';
import { ImageStore, recordBlobs } from './images.js';
import { acquirePruneLock } from './leases.js';
import { staleBuildDirs } from './state-root.js';

export interface PruneOptions {
  root: string;
  /** Drop everything: every cache record, pulled image, snapshot and blob. */
  all?: boolean;
  /** Then drop least recently used records until what stays needs at most this many bytes. */
  keepStorage?: number;
  /** Report what would go, remove nothing. */
  dryRun?: boolean;
  log?: (line: string) => void;
}

export interface Freed {
  count: number;
  bytes: number;
}

export interface PruneReport {
  dryRun: boolean;
  cacheRecords: number;
  imageRecords: number;
  snapshots: Freed;
  blobs: Freed;
  /** Partial downloads, scratch dirs of dead builds, temp files of interrupted writes. */
  temporary: Freed;
  /** Bytes freed in total. */
  reclaimed: number;
  /** Bytes the kept snapshots and blobs take. */
  remaining: number;
}

/** A record: what it needs, and whether it can still be used at all. */
interface Root {
  file: string;
  kind: 'cache' | 'image';
  lastUsed: number;
  snapshot: string | undefined;
  blobs: string[];
  valid: boolean;
}

interface Closure {
  snapshots: Set<string>;
  blobs: Set<string>;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

/** Parents before children would break children: deepest first. */
function childrenFirst(snaps: SnapshotInfo[], byName: Map<string, SnapshotInfo>): SnapshotInfo[] {
  const depth = new Map<string, number>();
  const depthOf = (name: string): number => {
    const known = depth.get(name);
    if (known !== undefined) return known;
    // Iterative: chains can be thousands deep.
    const path: string[] = [];
    let cur: string | undefined = name;
    let base = 0;
    while (cur !== undefined && byName.has(cur)) {
      const d = depth.get(cur);
      if (d !== undefined) {
        base = d + 1;
        break;
      }
      path.push(cur);
      cur = byName.get(cur)!.parent;
      if (path.length > byName.size) break; // a cycle cannot be in valid metadata; do not loop
    }
    for (let i = path.length - 1; i >= 0; i--) depth.set(path[i]!, base + (path.length - 1 - i));
    return depth.get(name) ?? 0;
  };
  return [...snaps].sort((a, b) => depthOf(b.name) - depthOf(a.name));
}

export async function prune(opts: PruneOptions): Promise<PruneReport> {
  const log = opts.log ?? (() => undefined);
  const dryRun = opts.dryRun === true;
  const report: PruneReport = {
    dryRun, cacheRecords: 0, imageRecords: 0,
    snapshots: { count: 0, bytes: 0 }, blobs: { count: 0, bytes: 0 }, temporary: { count: 0, bytes: 0 },
    reclaimed: 0, remaining: 0,
  };
  if (!(await exists(opts.root))) return report;
  const release = await acquirePruneLock(opts.root, (pids) => log(`waiting for ${pids.length === 1 ? 'a running build' : `${pids.length} running builds`} to finish (pid ${pids.join(', ')})`));
  let snapshotter: Snapshotter | undefined;
  try {
    const store = await ContentStore.open(join(opts.root, 'content'));
    // Opening also clears active snapshots and staging dirs of dead processes.
    const snapRoot = join(opts.root, 'snapshots');
    if (await exists(join(snapRoot, 'backend'))) snapshotter = await Snapshotter.open(snapRoot);
    const cache = new BuildCache(join(opts.root, 'cache'));
    const images = new ImageStore(join(opts.root, 'images'));

    const snaps = snapshotter ? await snapshotter.list() : [];
    const byName = new Map(snaps.map((s) => [s.name, s]));
    const blobs = new Map((await store.list()).map((b) => [b.digest, b.size]));

    const roots: Root[] = [];
    for (const c of await cache.list()) {
      const r = c.record;
      const snapshot = r?.snapshot ?? undefined;
      const layer = r?.layer?.descriptor.digest;
      const valid = r !== undefined && (snapshot === undefined || byName.has(snapshot)) && (layer === undefined || blobs.has(layer));
      roots.push({ file: c.file, kind: 'cache', lastUsed: c.lastUsed, snapshot, blobs: layer !== undefined ? [layer] : [], valid });
    }
    for (const i of await images.list()) {
      const r = i.record;
      const needed = r !== undefined ? recordBlobs(r) : [];
      const valid = r !== undefined && needed.every((d) => blobs.has(d));
      const snapshot = r?.chainId != null && byName.has(r.chainId) ? r.chainId : undefined;
      roots.push({ file: i.file, kind: 'image', lastUsed: i.lastUsed, snapshot, blobs: needed, valid });
    }

    const closure = (kept: Root[]): Closure => {
      const out: Closure = { snapshots: new Set(), blobs: new Set() };
      for (const root of kept) {
        for (const b of root.blobs) out.blobs.add(b);
        let cur = root.snapshot;
        while (cur !== undefined && byName.has(cur) && !out.snapshots.has(cur)) {
          out.snapshots.add(cur);
          cur = byName.get(cur)!.parent;
        }
      }
      return out;
    };
    const usage = new Map<string, number>();
    const snapshotBytes = async (name: string): Promise<number> => {
      let u = usage.get(name);
      if (u === undefined) {
        u = snapshotter ? await snapshotter.usage(name).then((x) => x.size, () => 0) : 0;
        usage.set(name, u);
      }
      return u;
    };
    const bytesOf = async (c: Closure): Promise<number> => {
      let n = 0;
      for (const s of c.snapshots) n += await snapshotBytes(s);
      for (const b of c.blobs) n += blobs.get(b) ?? 0;
      return n;
    };

    let kept = opts.all === true ? [] : roots.filter((r) => r.valid);
    if (opts.keepStorage !== undefined && kept.length > 0) {
      kept.sort((a, b) => a.lastUsed - b.lastUsed);
      let total = await bytesOf(closure(kept));
      while (total > opts.keepStorage && kept.length > 0) {
        kept = kept.slice(1);
        total = await bytesOf(closure(kept));
      }
    }
    const keep = closure(kept);
    const keptFiles = new Set(kept.map((r) => r.file));

    // 1. Records: once gone, nothing points at what follows.
    for (const r of roots) {
      if (keptFiles.has(r.file)) continue;
      if (!dryRun) await (r.kind === 'cache' ? cache.remove(r.file) : images.remove(r.file));
      if (r.kind === 'cache') report.cacheRecords++;
      else report.imageRecords++;
    }
    // 2. Snapshots, children before their parents.
    for (const s of childrenFirst(snaps.filter((x) => !keep.snapshots.has(x.name)), byName)) {
      const bytes = await snapshotBytes(s.name);
      if (!dryRun) {
        try {
          await snapshotter!.remove(s.name);
        } catch (err) {
          if (err instanceof SnapshotNotFoundError) continue; // gone already (another prune)
          throw err;
        }
      }
      report.snapshots.count++;
      report.snapshots.bytes += bytes;
    }
    // 3. Blobs.
    for (const [digest, size] of blobs) {
      if (keep.blobs.has(digest)) continue;
      if (!dryRun && !(await store.delete(digest))) continue;
      report.blobs.count++;
      report.blobs.bytes += size;
    }
    // 4. Leftovers of processes that are gone: no build or pull is running now, so every partial download is one.
    const ingest = await store.cleanupIngest(0, { dryRun });
    report.temporary.count += ingest.count;
    report.temporary.bytes += ingest.bytes;
    const leftovers = [...(await staleBuildDirs(opts.root)), ...(await tempFiles(cache.dir)), ...(await tempFiles(images.dir))];
    for (const p of leftovers) {
      report.temporary.count++;
      report.temporary.bytes += (await diskUsage(p).catch(() => ({ size: 0 }))).size;
      if (!dryRun) await rm(p, { recursive: true, force: true });
    }
    report.remaining = await bytesOf(keep);
    report.reclaimed = report.snapshots.bytes + report.blobs.bytes + report.temporary.bytes;
    return report;
  } finally {
    await snapshotter?.close().catch(() => undefined);
    await release();
  }
}

/** Temp files of record writes that were interrupted (`.name.random`). */
async function tempFiles(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith('.')).map((n) => join(dir, n));
}
