/**
 * Snapshot management over a shared state directory (layout and contract documented in index.ts).
 * Every state change that other processes may observe is a single rename.
 */
import { copyFile, link, mkdir, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { changesAsync, type DiffOptions } from './diff.js';
import { MountError, SnapshotError, SnapshotExistsError, SnapshotInUseError, SnapshotNotFoundError } from './errors.js';
import { readManifest, scanTree, writeManifest, type Manifest } from './manifest.js';
import {
  META_FILE,
  fsyncPath,
  readJson,
  snapshotId,
  tempName,
  writeJsonAtomic,
  type ActiveMeta,
  type ActiveTree,
  type CommittedMeta,
  type DiffRecord,
  type FlatMeta,
} from './metadata.js';
import { copyTree, diskUsage, rebuildTree, type RecordedLayer, type Usage } from './native.js';
import { crashPoint } from './crash-point.js';
import { FLATTEN_STRIDE, fitsMountOptions, mountOverlay, mountsUnder, probeOverlay, unmount } from './overlay.js';
import { isProcessAlive, processStartTime } from './proc.js';
import { writeLayer, type LayerDigests, type LayerEntry } from './diff-writer.js';
import { OWNERS_FILE, OwnerView, mergeOwnerRecords, readOwnerRecords, writeOwnerRecords, type Owner, type OwnerRecords } from './owners.js';
import type { SnapshotterBackend } from './types.js';
import { hasXattrTools } from './xattr.js';

const errCode = (err: unknown): string | undefined =>
  typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
const isExists = (err: unknown): boolean => errCode(err) === 'ENOTEMPTY' || errCode(err) === 'EEXIST';

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * On disk a single-id namespace shows every file as root's; the recorded
 * owner of the same path along the chain is what the layer must say.
 */
async function* withRecordedOwners(entries: AsyncIterable<LayerEntry>, view: OwnerView): AsyncGenerator<LayerEntry> {
  for await (const e of entries) {
    const owner = e.uid === 0 && e.gid === 0 && !isWhiteoutPath(e.path) ? view.lookup(e.path) : undefined;
    yield owner ? { ...e, uid: owner.uid, gid: owner.gid } : e;
  }
}

function isWhiteoutPath(path: string): boolean {
  return (path.split('/').pop() ?? '').startsWith('.wh.');
}

async function* fromArray<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}

/** A committed snapshot as list() reports it. */
export interface SnapshotInfo {
  name: string;
  parent?: string;
  created: string;
}

export interface OpenOptions {
  backend?: SnapshotterBackend | 'auto';
}

export type { Usage } from './native.js';

/** File names inside snapshot dirs (see index.ts). */
const TREE = 'tree';
const LAYER = 'layer.tar.gz';
const MANIFEST = 'manifest';
const BASE_MANIFEST = 'base.manifest';
const DIFF_RECORD = 'layer.json';

interface Link {
  name: string;
  id: string;
  meta: CommittedMeta;
}

interface ViewRecord {
  name: string;
  /** native: a movable snapshot's tree lent to this view (views/<tmp>/tree), to hand back on release. */
  borrowed?: string;
  /** Directory under views/ to delete on release. */
  owned?: string;
}

export class Snapshotter {
  /** Mount points this instance created (active merged dirs and views). */
  private readonly mounts = new Set<string>();
  /** prepare() result path → key, so release() accepts either. */
  private readonly activePaths = new Map<string, string>();
  /** view path → what to undo on release. */
  private readonly views = new Map<string, ViewRecord>();
  /** Owner records of committed snapshots (immutable, so cached); null = none recorded. */
  private readonly ownerCache = new Map<string, OwnerRecords | null>();

  private constructor(
    readonly root: string,
    readonly backend: SnapshotterBackend,
  ) {}

  static async open(root: string, opts: OpenOptions = {}): Promise<Snapshotter> {
    for (const d of ['committed', 'active', 'views', 'tmp', 'flat']) await mkdir(join(root, d), { recursive: true });
    await cleanupStale(root);
    const backend = await chooseBackend(root, opts.backend ?? 'auto');
    return new Snapshotter(root, backend);
  }

  private committedDir(name: string): string {
    return join(this.root, 'committed', snapshotId(name));
  }
  private activeDir(key: string): string {
    return join(this.root, 'active', snapshotId(key));
  }
  private tmp(prefix: string): string {
    return join(this.root, 'tmp', tempName(prefix));
  }

  private async committedMeta(name: string): Promise<CommittedMeta | undefined> {
    const meta = await readJson<CommittedMeta>(join(this.committedDir(name), META_FILE));
    return meta?.name === name ? meta : undefined;
  }

  private async activeMeta(key: string): Promise<ActiveMeta> {
    const meta = await readJson<ActiveMeta>(join(this.activeDir(key), META_FILE));
    if (meta?.key !== key) throw new SnapshotNotFoundError(`active snapshot ${key}`);
    return meta;
  }

  /** Committed snapshots from `name` down to the base layer, nearest first. */
  private async chain(name: string): Promise<Link[]> {
    const out: Link[] = [];
    let cur: string | undefined = name;
    while (cur !== undefined) {
      const meta = await this.committedMeta(cur);
      if (!meta) throw new SnapshotNotFoundError(cur);
      out.push({ name: cur, id: snapshotId(cur), meta });
      cur = meta.parent;
    }
    return out;
  }

  async exists(name: string): Promise<boolean> {
    return (await this.committedMeta(name)) !== undefined;
  }

  /**
   * Every committed snapshot with its parent, for garbage collection. A
   * directory without a readable meta.json (one being removed) is skipped.
   */
  async list(): Promise<SnapshotInfo[]> {
    const out: SnapshotInfo[] = [];
    for (const id of await readdir(join(this.root, 'committed'))) {
      const meta = await readJson<CommittedMeta>(join(this.root, 'committed', id, META_FILE)).catch(() => undefined);
      if (meta?.kind !== 'committed' || snapshotId(meta.name) !== id) continue;
      out.push({ name: meta.name, ...(meta.parent !== undefined ? { parent: meta.parent } : {}), created: meta.created });
    }
    return out;
  }

  // ---------------------------------------------------------------- overlay: lowerdirs, flattening

  /**
   * Lower dirs (relative to the root, nearest first) for mounting `chain`. When the
   * option string would not fit one page, the deepest part of the chain is replaced
   * by a flattened tree at the deepest flatten point (a multiple of FLATTEN_STRIDE).
   */
  private async overlayLowers(chain: Link[], upper: { upper: string; work: string } | undefined): Promise<string[]> {
    const direct = chain.map((l) => `committed/${l.id}/fs`);
    if (await fitsMountOptions({ lowers: direct, ...upper, target: '', cwd: this.root })) return direct;
    const depth = chain.length;
    const f = Math.floor(depth / FLATTEN_STRIDE) * FLATTEN_STRIDE;
    const flat = await this.ensureFlat(chain.slice(depth - f));
    return [...direct.slice(0, depth - f), flat];
  }

  /** The flattened tree of `chain` (its whole depth, a multiple of FLATTEN_STRIDE): cached in flat/<id>, built once. */
  private async ensureFlat(chain: Link[]): Promise<string> {
    const top = chain[0] as Link;
    const rel = `flat/${top.id}`;
    const meta = await readJson<FlatMeta>(join(this.root, rel, META_FILE));
    if (meta?.name === top.name) return `${rel}/fs`;
    const lowers =
      chain.length > FLATTEN_STRIDE
        ? [...chain.slice(0, FLATTEN_STRIDE).map((l) => `committed/${l.id}/fs`), await this.ensureFlat(chain.slice(FLATTEN_STRIDE))]
        : chain.map((l) => `committed/${l.id}/fs`);
    const staging = this.tmp('flatten');
    const mnt = join(staging, 'mnt');
    await mkdir(mnt, { recursive: true });
    try {
      if (lowers.length === 1) await copyTree(join(this.root, lowers[0] as string), join(staging, 'fs'));
      else {
        await mountOverlay({ lowers, target: mnt, cwd: this.root });
        try {
          await copyTree(mnt, join(staging, 'fs'));
        } finally {
          await unmount(mnt);
        }
      }
      await rmdir(mnt);
      const m: FlatMeta = { version: 1, kind: 'flat', name: top.name, depth: chain.length, created: new Date().toISOString() };
      await writeJsonAtomic(join(staging, META_FILE), m);
      await fsyncPath(staging);
      try {
        await rename(staging, join(this.root, rel)); // first flattener wins; identical content either way
      } catch (err) {
        if (!isExists(err)) throw err;
      }
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
    return `${rel}/fs`;
  }

  // ---------------------------------------------------------------- native: moving and rebuilding trees

  /** Try to take a movable snapshot's tree (fs + manifest) by renaming it to `to`. */
  private async takeTree(link: Link, to: string): Promise<boolean> {
    try {
      await rename(join(this.root, 'committed', link.id, TREE), to);
      return true;
    } catch (err) {
      if (errCode(err) === 'ENOENT') return false;
      throw err;
    }
  }

  /** Hand a tree dir ({fs, manifest}) back to a movable committed snapshot; dropped if it has one again. */
  private async giveTree(treeDir: string, name: string): Promise<void> {
    try {
      await rename(treeDir, join(this.committedDir(name), TREE));
    } catch (err) {
      if (!isExists(err) && errCode(err) !== 'ENOENT') throw err;
      await rm(treeDir, { recursive: true, force: true });
    }
  }

  /** Build `chain[0]`'s tree at `dest` from the nearest immutable ancestor and the recorded layers above it. */
  private async rebuild(chain: Link[], dest: string): Promise<void> {
    const layers: RecordedLayer[] = [];
    let from: string | undefined;
    for (const l of chain) {
      if (l.meta.layer === undefined) {
        from = join(this.root, 'committed', l.id, 'fs');
        break;
      }
      layers.unshift({ file: join(this.root, 'committed', l.id, LAYER), diffID: l.meta.layer.diffID, name: l.name });
    }
    await rebuildTree(dest, from, layers);
  }

  /** Assemble a native working tree for a child of `chain[0]` in staging/fs (+ base.manifest). */
  private async nativeTree(chain: Link[], staging: string): Promise<{ tree: ActiveTree; reference?: string }> {
    const parent = chain[0] as Link;
    const fs = join(staging, 'fs');
    if (parent.meta.layer !== undefined) {
      const taken = join(staging, TREE);
      if (await this.takeTree(parent, taken)) {
        crashPoint('prepare:after-move');
        await rename(join(taken, 'fs'), fs);
        await rename(join(taken, MANIFEST), join(staging, BASE_MANIFEST));
        await rmdir(taken);
        return { tree: 'moved' };
      }
      await this.rebuild(chain, fs);
      crashPoint('prepare:after-rebuild');
      await writeManifest(join(staging, BASE_MANIFEST), (await scanTree(fs, new Map())).manifest);
      return { tree: 'rebuilt' };
    }
    const reference = `committed/${parent.id}/fs`;
    await copyTree(join(this.root, reference), fs);
    crashPoint('prepare:after-copy');
    await writeManifest(join(staging, BASE_MANIFEST), (await scanTree(fs, new Map())).manifest);
    return { tree: 'copied', reference };
  }

  // ---------------------------------------------------------------- the API

  async prepare(key: string, parent?: string): Promise<string> {
    const chain = parent !== undefined ? await this.chain(parent) : [];
    const dir = this.activeDir(key);
    if (await exists(join(dir, META_FILE))) throw new SnapshotExistsError(`active snapshot ${key}`);
    // Build the skeleton (with meta) in tmp/, then rename: the active dir appears complete or not at all,
    // and a concurrent prepare of the same key loses the rename race cleanly.
    const staging = this.tmp('prepare');
    await mkdir(staging);
    const meta: ActiveMeta = {
      version: 1,
      kind: 'active',
      key,
      ...(parent !== undefined ? { parent } : {}),
      backend: this.backend,
      pid: process.pid,
      pidStart: (await processStartTime(process.pid)) ?? '',
      created: new Date().toISOString(),
    };
    try {
      if (this.backend === 'native' && chain.length > 0) {
        const t = await this.nativeTree(chain, staging);
        meta.tree = t.tree;
        if (t.reference !== undefined) meta.reference = t.reference;
      } else {
        await mkdir(join(staging, 'fs'), { mode: 0o755 });
        if (this.backend === 'native') meta.tree = 'empty';
      }
      if (this.backend === 'overlay' && chain.length > 0) {
        await mkdir(join(staging, 'work'));
        await mkdir(join(staging, 'merged'), { mode: 0o755 });
      }
      // An overlay active snapshot holds nothing a power loss could cost (open() deletes it);
      // a native one may hold a parent's moved tree, whose record must survive.
      const durable = this.backend === 'native';
      await writeJsonAtomic(join(staging, META_FILE), meta, { durable });
      if (durable) await fsyncPath(staging);
      try {
        await rename(staging, dir);
      } catch (err) {
        if (isExists(err)) throw new SnapshotExistsError(`active snapshot ${key}`);
        throw err;
      }
    } catch (err) {
      if (meta.tree === 'moved' && parent !== undefined) await this.returnTree(staging, join(staging, BASE_MANIFEST), parent).catch(() => undefined);
      await rm(staging, { recursive: true, force: true });
      throw err;
    }
    if (this.backend === 'overlay' && chain.length > 0) {
      const rel = `active/${snapshotId(key)}`;
      const target = join(dir, 'merged');
      try {
        const upper = { upper: `${rel}/fs`, work: `${rel}/work` };
        await mountOverlay({ lowers: await this.overlayLowers(chain, upper), ...upper, target, cwd: this.root });
      } catch (err) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
      crashPoint('prepare:mounted');
      this.mounts.add(target);
      this.activePaths.set(target, key);
      return target;
    }
    const fs = join(dir, 'fs');
    this.activePaths.set(fs, key);
    return fs;
  }

  /**
   * Give an unchanged native working tree (dir/fs) back to its movable parent, with
   * `manifest` (or dir/base.manifest when that does not exist) describing it.
   */
  private async returnTree(dir: string, manifest: string, parent: string): Promise<void> {
    const pm = await this.committedMeta(parent);
    if (pm?.layer === undefined) return;
    const t = this.tmp('return');
    await mkdir(t);
    try {
      await rename(join(dir, 'fs'), join(t, 'fs'));
      await rename((await exists(manifest)) ? manifest : join(dir, BASE_MANIFEST), join(t, MANIFEST));
      await this.giveTree(t, parent);
    } finally {
      await rm(t, { recursive: true, force: true });
    }
  }

  private async unmountActive(key: string): Promise<void> {
    const dir = this.activeDir(key);
    for (const mp of await mountsUnder(dir)) {
      await unmount(mp);
      this.mounts.delete(mp);
    }
  }

  private forgetActive(key: string): void {
    for (const [p, k] of this.activePaths) if (k === key) this.activePaths.delete(p);
  }

  async commit(name: string, key: string): Promise<void> {
    const active = await this.activeMeta(key);
    await this.unmountActive(key);
    const dir = this.activeDir(key);
    const dest = this.committedDir(name);
    // Native: a snapshot whose layer diff() recorded (and whose manifest describes the tree) is movable.
    const record = this.backend === 'native' ? await readJson<DiffRecord>(join(dir, DIFF_RECORD)) : undefined;
    const movable = record !== undefined && (await exists(join(dir, MANIFEST))) && (await exists(join(dir, LAYER)));
    const existing = await this.committedMeta(name);
    if (existing === undefined) {
      const staging = this.tmp('commit');
      await mkdir(staging);
      const meta: CommittedMeta = {
        version: 1,
        kind: 'committed',
        name,
        ...(active.parent !== undefined ? { parent: active.parent } : {}),
        backend: this.backend,
        created: new Date().toISOString(),
        ...(movable && record ? { layer: { diffID: record.diffID, digest: record.digest, size: record.size } } : {}),
      };
      if (movable) {
        await mkdir(join(staging, TREE));
        await rename(join(dir, 'fs'), join(staging, TREE, 'fs'));
        await rename(join(dir, MANIFEST), join(staging, TREE, MANIFEST));
        await rename(join(dir, LAYER), join(staging, LAYER));
      } else {
        await rename(join(dir, 'fs'), join(staging, 'fs'));
      }
      if (await exists(join(dir, OWNERS_FILE))) await rename(join(dir, OWNERS_FILE), join(staging, OWNERS_FILE));
      await writeJsonAtomic(join(staging, META_FILE), meta);
      crashPoint('commit:before-publish');
      try {
        await rename(staging, dest); // atomic publish; fails if another build committed `name` first
      } catch (err) {
        if (!isExists(err)) throw err;
      }
      await rm(staging, { recursive: true, force: true });
      await fsyncPath(join(this.root, 'committed'));
    } else if (movable && existing.layer !== undefined && !(await exists(join(dest, TREE)))) {
      // Same name = same content: our tree can serve the existing (tree-less) snapshot.
      const t = this.tmp('adopt');
      await mkdir(t);
      await rename(join(dir, 'fs'), join(t, 'fs'));
      await rename(join(dir, MANIFEST), join(t, MANIFEST));
      await this.giveTree(t, name);
      await rm(t, { recursive: true, force: true });
    }
    await rm(dir, { recursive: true, force: true });
    this.forgetActive(key);
  }

  async view(name: string): Promise<string> {
    const chain = await this.chain(name);
    const top = chain[0] as Link;
    if (this.backend === 'native') {
      // Materialised, immutable snapshots are handed out as they are (read-only by contract).
      if (top.meta.layer === undefined) {
        const fs = join(this.root, 'committed', top.id, 'fs');
        this.views.set(fs, { name });
        return fs;
      }
      // A movable snapshot: borrow its tree (no one can move it away meanwhile), or rebuild one.
      const owned = join(this.root, 'views', tempName('view'));
      await mkdir(owned);
      try {
        if (await this.takeTree(top, join(owned, TREE))) {
          const fs = join(owned, TREE, 'fs');
          this.views.set(fs, { name, borrowed: join(owned, TREE), owned });
          return fs;
        }
        const fs = join(owned, 'fs');
        await this.rebuild(chain, fs);
        this.views.set(fs, { name, owned });
        return fs;
      } catch (err) {
        await rm(owned, { recursive: true, force: true });
        throw err;
      }
    }
    const lowers = await this.overlayLowers(chain, undefined);
    // A single lower has nothing to merge (and overlay needs two without an upper): hand it out.
    if (lowers.length === 1) {
      const p = join(this.root, lowers[0] as string);
      this.views.set(p, { name });
      return p;
    }
    const target = join(this.root, 'views', tempName('view'));
    await mkdir(target);
    try {
      // No upperdir: a read-only overlay.
      await mountOverlay({ lowers, target, cwd: this.root });
    } catch (err) {
      await rm(target, { recursive: true, force: true });
      throw err;
    }
    crashPoint('view:mounted');
    this.mounts.add(target);
    this.views.set(target, { name, owned: target });
    return target;
  }

  private async releaseView(path: string, v: ViewRecord): Promise<void> {
    this.views.delete(path);
    if (this.mounts.has(path)) {
      await unmount(path);
      this.mounts.delete(path);
    }
    if (v.borrowed !== undefined) await this.giveTree(v.borrowed, v.name);
    if (v.owned !== undefined) await rm(v.owned, { recursive: true, force: true });
  }

  async release(pathOrKey: string): Promise<void> {
    const v = this.views.get(pathOrKey);
    if (v !== undefined) return this.releaseView(pathOrKey, v);
    const key = this.activePaths.get(pathOrKey) ?? pathOrKey;
    const active = await this.activeMeta(key); // throws NotFound
    await this.unmountActive(key);
    const dir = this.activeDir(key);
    if (this.backend === 'native' && active.parent !== undefined) {
      // An empty diff means the tree is still exactly the parent's: hand it back instead of
      // throwing it away (the builder releases steps that changed nothing, e.g. WORKDIR).
      const record = await readJson<DiffRecord>(join(dir, DIFF_RECORD));
      if (record?.empty === true && (await exists(join(dir, MANIFEST)))) {
        await this.returnTree(dir, join(dir, MANIFEST), active.parent).catch(() => undefined);
      }
    }
    await rm(dir, { recursive: true, force: true });
    this.forgetActive(key);
  }

  async remove(name: string): Promise<void> {
    if (!(await this.exists(name))) throw new SnapshotNotFoundError(name);
    // Overlay children stack on their parents' files, and native children whose trees are
    // rebuilt from recorded layers need their ancestors: removing a parent would break them.
    for (const sub of ['committed', 'active'] as const) {
      for (const id of await readdir(join(this.root, sub))) {
        const meta = await readJson<CommittedMeta | ActiveMeta>(join(this.root, sub, id, META_FILE));
        if (meta?.parent !== name) continue;
        if (this.backend === 'overlay' || (meta.kind === 'committed' && meta.layer !== undefined)) {
          throw new SnapshotInUseError(name, `${meta.kind} snapshot ${meta.kind === 'committed' ? meta.name : meta.key} is based on it`);
        }
      }
    }
    const trash = join(this.root, 'tmp', tempName('remove'));
    await rename(this.committedDir(name), trash); // disappears atomically for other processes
    await rm(trash, { recursive: true, force: true });
    const flat = join(this.root, 'flat', snapshotId(name));
    if (await exists(flat)) {
      const t = this.tmp('remove');
      await rename(flat, t).catch(() => undefined);
      await rm(t, { recursive: true, force: true });
    }
  }

  /**
   * Bytes and inodes held by this snapshot itself (containerd's Usage): overlay → its own
   * layer dir (committed fs/ or active upper); native → its full tree when it holds one,
   * plus a movable snapshot's recorded layer and manifest. `name` may be an active key.
   */
  async usage(name: string): Promise<Usage> {
    const add = (a: Usage, b: Usage): Usage => ({ size: a.size + b.size, inodes: a.inodes + b.inodes });
    const meta = await this.committedMeta(name);
    if (meta !== undefined) {
      const dir = this.committedDir(name);
      if (this.backend === 'overlay' || meta.layer === undefined) return diskUsage(join(dir, 'fs'));
      let u = await diskUsage(join(dir, LAYER));
      if (await exists(join(dir, TREE))) u = add(u, await diskUsage(join(dir, TREE)));
      return u;
    }
    const dir = this.activeDir(name);
    if ((await readJson<ActiveMeta>(join(dir, META_FILE)))?.key !== name) throw new SnapshotNotFoundError(name);
    return diskUsage(join(dir, 'fs'));
  }

  /**
   * Records owners for files of active snapshot `key` that could not be set on
   * disk (a single-id user namespace): what a layer applied into it asked for
   * (ApplyResult.owners), or what COPY --chown meant. Kept with the snapshot
   * when it is committed, and written into the tar headers by diff().
   */
  async recordOwners(key: string, records: OwnerRecords): Promise<void> {
    await this.activeMeta(key);
    const dir = this.activeDir(key);
    const current = await readOwnerRecords(dir);
    await writeOwnerRecords(dir, current ? mergeOwnerRecords(current, records) : records);
  }

  /**
   * The owner recorded for a root-relative path of committed snapshot `name`
   * (a single-id namespace, where disk shows only root), or undefined when
   * none was recorded: the file is root's. COPY --from reads it to keep owners.
   */
  async recordedOwners(name: string): Promise<(path: string) => Owner | undefined> {
    const view = new OwnerView(await this.committedOwnerRecords(await this.chain(name)));
    return (path) => view.lookup(path);
  }

  /** The recorded owners along `key`'s chain (its parent's `links`), nearest first; empty when nothing was recorded. */
  private async ownerView(key: string, links: Link[]): Promise<OwnerView> {
    const own = await readOwnerRecords(this.activeDir(key));
    return new OwnerView([...(own ? [own] : []), ...(await this.committedOwnerRecords(links))]);
  }

  /** The owner records of committed snapshots along `links`, nearest first (cached: committed records never change). */
  private async committedOwnerRecords(links: Link[]): Promise<OwnerRecords[]> {
    const chain: OwnerRecords[] = [];
    for (const link of links) {
      let records = this.ownerCache.get(link.name);
      if (records === undefined) {
        records = (await readOwnerRecords(join(this.root, 'committed', link.id))) ?? null;
        this.ownerCache.set(link.name, records);
      }
      if (records) chain.push(records);
    }
    return chain;
  }

  async diff(key: string, dest: string, opts: DiffOptions = {}): Promise<LayerDigests> {
    const active = await this.activeMeta(key);
    const links = active.parent !== undefined ? await this.chain(active.parent) : [];
    const view = await this.ownerView(key, links);
    const write = (entries: AsyncIterable<LayerEntry>) => writeLayer(view.empty ? entries : withRecordedOwners(entries, view), dest);
    const dir = this.activeDir(key);
    const fs = join(dir, 'fs');
    if (this.backend === 'overlay') {
      return write(await changesAsync('overlay', fs, links.map((l) => join(this.committedDir(l.name), 'fs')), opts));
    }
    if (active.tree === undefined) {
      // An active snapshot prepared by an older version (full copy, no manifest): compare trees.
      const parentFs = active.parent !== undefined ? join(this.committedDir(active.parent), 'fs') : undefined;
      return write(await changesAsync('native', fs, parentFs !== undefined ? [parentFs] : [], opts));
    }
    const base: Manifest = active.tree === 'empty' ? new Map() : await readManifest(join(dir, BASE_MANIFEST));
    const scan = await scanTree(fs, base, {
      ...(opts.sourceDateEpoch !== undefined ? { sourceDateEpoch: opts.sourceDateEpoch } : {}),
      ...(active.reference !== undefined ? { reference: join(this.root, active.reference) } : {}),
    });
    const digests = await write(fromArray(scan.entries));
    // Record what commit needs: the tree's manifest and the layer (to rebuild this snapshot later).
    const mTmp = join(dir, `.${tempName('manifest')}`);
    await writeManifest(mTmp, scan.manifest);
    await rename(mTmp, join(dir, MANIFEST));
    const lTmp = join(dir, `.${tempName('layer')}`);
    try {
      await link(dest, lTmp);
    } catch {
      await copyFile(dest, lTmp);
    }
    await rename(lTmp, join(dir, LAYER));
    const record: DiffRecord = { diffID: digests.diffID, digest: digests.digest, size: digests.size, empty: digests.empty };
    await writeJsonAtomic(join(dir, DIFF_RECORD), record);
    return digests;
  }

  /**
   * Releases every active snapshot this instance prepared, as the next
   * start would once this process is gone: for an interrupted build, which
   * exits right after. A writer may still be filling one (a layer being
   * applied): rm retries while it races with it.
   */
  async discardActive(): Promise<void> {
    for (const key of new Set(this.activePaths.values())) {
      await this.release(key).catch(async () => {
        await this.unmountActive(key).catch(() => undefined);
        await rm(this.activeDir(key), { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
        this.forgetActive(key);
      });
    }
  }

  async close(): Promise<void> {
    const errors: unknown[] = [];
    for (const [p, v] of [...this.views]) {
      if (v.borrowed === undefined && v.owned === undefined) continue;
      try {
        await this.releaseView(p, v);
      } catch (err) {
        errors.push(err);
      }
    }
    for (const mp of [...this.mounts].sort((a, b) => b.length - a.length)) {
      try {
        await unmount(mp);
        if (mp.startsWith(join(this.root, 'views'))) await rm(mp, { recursive: true, force: true });
      } catch (err) {
        errors.push(err);
      }
      this.mounts.delete(mp);
    }
    this.views.clear();
    this.activePaths.clear();
    if (errors.length > 0) throw new MountError(`close: ${errors.length} unmount(s) failed`, { cause: errors[0] });
  }
}

/** The backend is fixed per state dir: overlay and native committed snapshots are not interchangeable. */
async function chooseBackend(root: string, wanted: SnapshotterBackend | 'auto'): Promise<SnapshotterBackend> {
  const file = join(root, 'backend');
  let recorded: string | undefined;
  try {
    recorded = (await readFile(file, 'utf8')).trim();
  } catch {
    recorded = undefined;
  }
  if (recorded === 'overlay' || recorded === 'native') {
    if (wanted !== 'auto' && wanted !== recorded) {
      throw new SnapshotError(`snapshot root ${root} uses the ${recorded} backend; cannot open it as ${wanted}`);
    }
    return recorded;
  }
  let backend: SnapshotterBackend;
  if (wanted !== 'auto') backend = wanted;
  else backend = (await hasXattrTools()) && (await probeOverlay(join(root, 'tmp', tempName('probe')))) ? 'overlay' : 'native';
  const tmp = join(root, 'tmp', tempName('backend'));
  await writeFile(tmp, `${backend}\n`);
  try {
    // link() fails if it exists: the first opener's choice wins.
    await link(tmp, file);
  } catch (err) {
    if (errCode(err) !== 'EEXIST') throw err;
    await rm(tmp, { force: true });
    return chooseBackend(root, wanted);
  }
  await rm(tmp, { force: true });
  return backend;
}

/** `<prefix>-<pid>-<rand>` → pid */
function pidOfTempName(name: string): number | undefined {
  const m = /-(\d+)-[0-9a-f]+$/.exec(name);
  return m?.[1] !== undefined ? Number(m[1]) : undefined;
}

/** Remove what crashed runs left behind; never touches a live process's snapshots. */
async function cleanupStale(root: string): Promise<void> {
  const wipe = async (p: string): Promise<void> => {
    for (const mp of await mountsUnder(p)) await unmount(mp);
    // A crashed process's helpers (cp -a) may outlive it for a moment and keep creating entries:
    // retry until the tree is gone (once its top dir is, they cannot recreate anything below).
    for (let attempt = 0; ; attempt++) {
      try {
        await rm(p, { recursive: true, force: true });
        return;
      } catch (err) {
        if (errCode(err) !== 'ENOTEMPTY' || attempt >= 100) throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  };
  for (const id of await readdir(join(root, 'active'))) {
    const p = join(root, 'active', id);
    const meta = await readJson<ActiveMeta>(join(p, META_FILE)).catch(() => undefined);
    if (!meta || !(await isProcessAlive(meta.pid, meta.pidStart || undefined))) await wipe(p);
  }
  for (const sub of ['tmp', 'views']) {
    for (const name of await readdir(join(root, sub))) {
      const pid = pidOfTempName(name);
      if (pid === undefined || !(await isProcessAlive(pid, undefined))) await wipe(join(root, sub, name));
    }
  }
  // A committed dir without meta.json cannot be published (meta is written before the rename);
  // leftover temp files from a crashed writeJsonAtomic inside live dirs are harmless.
}
