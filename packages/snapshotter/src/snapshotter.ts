/**
 * Snapshot management over a shared state directory (layout documented in index.ts).
 * Every state change that other processes may observe is a single rename.
 */
import { link, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { changesAsync, type DiffOptions } from './diff.js';
import { MountError, SnapshotError, SnapshotExistsError, SnapshotInUseError, SnapshotNotFoundError } from './errors.js';
import { META_FILE, fsyncPath, readJson, snapshotId, tempName, writeJsonAtomic, type ActiveMeta, type CommittedMeta } from './metadata.js';
import { copyTree } from './native.js';
import { mountOverlay, mountsUnder, probeOverlay, unmount } from './overlay.js';
import { isProcessAlive, processStartTime } from './proc.js';
import { writeLayer, type LayerDigests } from './diff-writer.js';
import type { SnapshotterBackend } from './types.js';
import { hasXattrTools } from './xattr.js';

const errCode = (err: unknown): string | undefined =>
  typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;

export interface OpenOptions {
  backend?: SnapshotterBackend | 'auto';
}

export class Snapshotter {
  /** Mount points this instance created (active merged dirs and views). */
  private readonly mounts = new Set<string>();
  /** prepare() result path → key, so release() accepts either. */
  private readonly activePaths = new Map<string, string>();
  /** view path → name (views we mounted or handed out). */
  private readonly views = new Map<string, string>();

  private constructor(
    readonly root: string,
    readonly backend: SnapshotterBackend,
  ) {}

  static async open(root: string, opts: OpenOptions = {}): Promise<Snapshotter> {
    for (const d of ['committed', 'active', 'views', 'tmp']) await mkdir(join(root, d), { recursive: true });
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

  private async committedMeta(name: string): Promise<CommittedMeta | undefined> {
    const meta = await readJson<CommittedMeta>(join(this.committedDir(name), META_FILE));
    return meta?.name === name ? meta : undefined;
  }

  private async activeMeta(key: string): Promise<ActiveMeta> {
    const meta = await readJson<ActiveMeta>(join(this.activeDir(key), META_FILE));
    if (meta?.key !== key) throw new SnapshotNotFoundError(`active snapshot ${key}`);
    return meta;
  }

  /** Committed ids from `name` down to the base layer, nearest first. */
  private async chain(name: string): Promise<string[]> {
    const ids: string[] = [];
    let cur: string | undefined = name;
    while (cur !== undefined) {
      const meta = await this.committedMeta(cur);
      if (!meta) throw new SnapshotNotFoundError(cur);
      ids.push(snapshotId(cur));
      cur = meta.parent;
    }
    return ids;
  }

  async exists(name: string): Promise<boolean> {
    return (await this.committedMeta(name)) !== undefined;
  }

  async prepare(key: string, parent?: string): Promise<string> {
    const ids = parent !== undefined ? await this.chain(parent) : [];
    const dir = this.activeDir(key);
    // Build the skeleton (with meta) in tmp/, then rename: the active dir appears complete or not at all,
    // and a concurrent prepare of the same key loses the rename race cleanly.
    const staging = join(this.root, 'tmp', tempName('prepare'));
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
    await writeJsonAtomic(join(staging, META_FILE), meta);
    try {
      if (this.backend === 'native' && parent !== undefined) {
        await copyTree(join(this.root, 'committed', ids[0] as string, 'fs'), join(staging, 'fs'));
      } else {
        await mkdir(join(staging, 'fs'), { mode: 0o755 });
      }
      if (this.backend === 'overlay' && ids.length > 0) {
        await mkdir(join(staging, 'work'));
        await mkdir(join(staging, 'merged'), { mode: 0o755 });
      }
      await fsyncPath(staging);
      try {
        await rename(staging, dir);
      } catch (err) {
        if (errCode(err) === 'ENOTEMPTY' || errCode(err) === 'EEXIST') throw new SnapshotExistsError(`active snapshot ${key}`);
        throw err;
      }
    } catch (err) {
      await rm(staging, { recursive: true, force: true });
      throw err;
    }
    if (this.backend === 'overlay' && ids.length > 0) {
      const rel = `active/${snapshotId(key)}`;
      const target = join(dir, 'merged');
      try {
        await mountOverlay({
          lowers: ids.map((id) => `committed/${id}/fs`),
          upper: `${rel}/fs`,
          work: `${rel}/work`,
          target,
          cwd: this.root,
        });
      } catch (err) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
      this.mounts.add(target);
      this.activePaths.set(target, key);
      return target;
    }
    const fs = join(dir, 'fs');
    this.activePaths.set(fs, key);
    return fs;
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
    if (!(await this.exists(name))) {
      const staging = join(this.root, 'tmp', tempName('commit'));
      await mkdir(staging);
      const meta: CommittedMeta = {
        version: 1,
        kind: 'committed',
        name,
        ...(active.parent !== undefined ? { parent: active.parent } : {}),
        backend: this.backend,
        created: new Date().toISOString(),
      };
      await rename(join(dir, 'fs'), join(staging, 'fs'));
      await writeJsonAtomic(join(staging, META_FILE), meta);
      try {
        await rename(staging, dest); // atomic publish; fails if another build committed `name` first
      } catch (err) {
        if (errCode(err) !== 'ENOTEMPTY' && errCode(err) !== 'EEXIST') throw err;
      }
      await rm(staging, { recursive: true, force: true });
      await fsyncPath(join(this.root, 'committed'));
    }
    await rm(dir, { recursive: true, force: true });
    this.forgetActive(key);
  }

  async view(name: string): Promise<string> {
    const ids = await this.chain(name);
    const top = join(this.root, 'committed', ids[0] as string, 'fs');
    // Native snapshots are full trees, and a single overlay layer has nothing to merge:
    // hand out the committed dir itself (read-only by contract).
    if (this.backend === 'native' || ids.length === 1) {
      this.views.set(top, name);
      return top;
    }
    const target = join(this.root, 'views', tempName('view'));
    await mkdir(target);
    try {
      // No upperdir: a read-only overlay.
      await mountOverlay({ lowers: ids.map((id) => `committed/${id}/fs`), target, cwd: this.root });
    } catch (err) {
      await rm(target, { recursive: true, force: true });
      throw err;
    }
    this.mounts.add(target);
    this.views.set(target, name);
    return target;
  }

  async release(pathOrKey: string): Promise<void> {
    const viewName = this.views.get(pathOrKey);
    if (viewName !== undefined) {
      this.views.delete(pathOrKey);
      if (this.mounts.has(pathOrKey)) {
        await unmount(pathOrKey);
        this.mounts.delete(pathOrKey);
        await rm(pathOrKey, { recursive: true, force: true });
      }
      return;
    }
    const key = this.activePaths.get(pathOrKey) ?? pathOrKey;
    await this.activeMeta(key); // throws NotFound
    await this.unmountActive(key);
    await rm(this.activeDir(key), { recursive: true, force: true });
    this.forgetActive(key);
  }

  async remove(name: string): Promise<void> {
    if (!(await this.exists(name))) throw new SnapshotNotFoundError(name);
    if (this.backend === 'overlay') {
      // Overlay children stack on their parents' files; removing a parent would corrupt them.
      for (const sub of ['committed', 'active'] as const) {
        for (const id of await readdir(join(this.root, sub))) {
          const meta = await readJson<CommittedMeta | ActiveMeta>(join(this.root, sub, id, META_FILE));
          if (meta?.parent === name) throw new SnapshotInUseError(name, `${meta.kind} snapshot ${meta.kind === 'committed' ? meta.name : meta.key} is based on it`);
        }
      }
    }
    const trash = join(this.root, 'tmp', tempName('remove'));
    await rename(this.committedDir(name), trash); // disappears atomically for other processes
    await rm(trash, { recursive: true, force: true });
  }

  async diff(key: string, dest: string, opts: DiffOptions = {}): Promise<LayerDigests> {
    const active = await this.activeMeta(key);
    const fs = join(this.activeDir(key), 'fs');
    const parentFs =
      this.backend === 'native' && active.parent !== undefined ? join(this.committedDir(active.parent), 'fs') : undefined;
    return writeLayer(await changesAsync(this.backend, fs, parentFs, opts), dest);
  }

  async close(): Promise<void> {
    const errors: unknown[] = [];
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
    await rm(p, { recursive: true, force: true });
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
}
