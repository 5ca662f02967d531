/**
 * Safe, streaming layer extraction onto a directory (a plain dir, a native
 * snapshot copy, or an overlay merged mount — whiteouts become plain deletions,
 * which overlayfs then records as its own whiteouts).
 */
import { execFile } from 'node:child_process';
// Synchronous fs calls on purpose: an entry is a handful of tiny syscalls, and a
// thread-pool round trip for each left layer apply mostly waiting (profiled:
// 6 of 10.7 s idle on a 120 MB, 9k-file layer).
import { chmodSync, closeSync, constants, fchmodSync, fchownSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, openSync, readdirSync, rmSync, symlinkSync, writeSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { crashPoint } from './crash-point.js';
import { InvalidLayerError, UnsafeLayerPathError, UnsupportedLayerError } from './errors.js';
import { openLayer, openLayerFile, type UncompressedLayer } from './layer-stream.js';
import { cleanLayerPath, resolveDirInRoot, resolveEntry, type ResolvedDirs } from './safe-path.js';
import { readTar, type TarEntry, type TarItem } from './tar-reader.js';
import { classifyWhiteout, isOverlayPrivateXattr } from './whiteout.js';
import { hasXattrTools, setXattr } from './xattr.js';
import { emptyOwnerRecords, type OwnerRecords } from './owners.js';

const execFileP = promisify(execFile);

export interface ApplyOptions {
  /** Skip chown (e.g. a user namespace that maps a single id). */
  ignoreOwnership?: boolean;
}

export interface ApplyResult {
  /** sha256 of the uncompressed tar, `sha256:<hex>`. */
  diffID: string;
  /** Entries skipped or degraded (device nodes, xattrs the fs refused, …). */
  warnings: string[];
  /**
   * With ignoreOwnership: the owners the layer asked for and the paths it
   * deleted, root-relative, for the snapshot's metadata (Snapshotter.recordOwners).
   */
  owners?: OwnerRecords;
}

const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

async function lstatOrNull(p: string) {
  try {
    return lstatSync(p);
  } catch (err) {
    if (errCode(err) === 'ENOENT') return null;
    throw err;
  }
}

class LayerApplier {
  readonly warnings: string[] = [];
  /** Owners not applied on disk (ignoreOwnership), kept for the snapshot's metadata. */
  readonly owners: OwnerRecords = emptyOwnerRecords();
  /** Absolute paths this layer created; opaque markers must spare them. */
  private readonly written = new Set<string>();
  /** Directories holding something this layer created (even when the layer has no entry for them). */
  private readonly holding = new Set<string>();
  /** Directory mtimes are set last: writing children would bump them again. */
  private readonly dirTimes: { path: string; mtime: Date }[] = [];
  private xattrTools: boolean | undefined;
  /** Parent directories resolved so far; cleared whenever anything is removed (see ResolvedDirs). */
  private readonly dirs: ResolvedDirs = new Map();
  /**
   * Directories this apply made (and the root, when it started empty): nothing is in
   * them but what this layer wrote, so a new name there needs no lstat. A wrong guess
   * could only fail (every create is O_EXCL or EEXIST-checked), never write through a link.
   */
  private readonly fresh = new Set<string>();

  constructor(
    private readonly root: string,
    private readonly opts: ApplyOptions,
  ) {}

  /** Called once before the first entry. */
  start(): void {
    if (readdirSync(this.root).length === 0) this.fresh.add(this.root);
  }

  async apply(item: TarItem): Promise<void> {
    const { entry } = item;
    const comps = cleanLayerPath(entry.path);
    if (comps.length === 0) {
      // The root itself ("./"): only its metadata can be applied. It is never replaced: a
      // "/." symlink to "/" must not send later entries to the host (umoci CVE-2021-29136).
      if (entry.type === 'Directory') await this.setMeta(this.root, entry, true);
      else this.warnings.push(`${entry.path}: ${entry.type} entry for the root itself ignored`);
      return;
    }
    const base = comps[comps.length - 1] as string;
    const wh = classifyWhiteout(base);
    if (wh) return this.whiteout(entry, comps, wh);

    const loc = await resolveEntry(this.root, comps, entry.path, true, this.dirs);
    if (!loc) return;
    const target = loc.path;
    this.markHolding(loc.parent);
    const known = this.written.has(target) || this.holding.has(target); // written, or made as the parent of something written
    const existing = this.fresh.has(loc.parent) && !known ? null : await lstatOrNull(target);

    if (entry.type === 'Directory') {
      if (!existing?.isDirectory()) {
        if (existing) this.remove(target);
        mkdirSync(target, { mode: 0o700 });
        this.fresh.add(target);
      }
      await this.setMeta(target, entry, true);
      this.markWritten(target);
      return;
    }
    if (FILE_TYPES.has(entry.type)) {
      if (existing) this.remove(target);
      await this.writeFile(target, entry, item.body());
      this.markWritten(target);
      return;
    }
    if (entry.type === 'SymbolicLink') {
      if (entry.linkpath === '') throw new InvalidLayerError(`${entry.path}: symlink with an empty target`);
      if (entry.linkpath.includes('\0')) throw new UnsafeLayerPathError(entry.path, 'NUL byte in symlink target');
      if (existing) this.remove(target);
      symlinkSync(entry.linkpath, target);
      await this.setMeta(target, entry, false);
      this.markWritten(target);
      return;
    }
    if (entry.type === 'Link') return this.hardlink(entry, target, existing !== null);
    if (entry.type === 'FIFO') {
      if (existing) this.remove(target);
      try {
        await execFileP('mkfifo', ['-m', '600', '--', target]);
      } catch (err) {
        this.warnings.push(`${entry.path}: FIFO skipped (${(err as Error).message.trim()})`);
        return;
      }
      await this.setMeta(target, entry, false);
      this.markWritten(target);
      return;
    }
    if (entry.type === 'CharacterDevice' || entry.type === 'BlockDevice') {
      // Rootless builds cannot mknod; images rarely need device nodes (the runtime provides /dev).
      // What the entry replaces is still gone (as in containers/storage in a user namespace).
      if (existing) this.remove(target);
      this.warnings.push(`${entry.path}: ${entry.type} skipped (device nodes are not created)`);
      return;
    }
    this.warnings.push(`${entry.path}: unsupported entry type ${entry.type} skipped`);
  }

  /** Remembers the owner the entry asked for when it cannot be set on disk. */
  private recordOwner(target: string, entry: TarEntry): void {
    if (this.opts.ignoreOwnership) this.owners.set.set(relative(this.root, target), { uid: entry.uid, gid: entry.gid });
  }

  private async whiteout(entry: TarEntry, comps: string[], wh: NonNullable<ReturnType<typeof classifyWhiteout>>): Promise<void> {
    if (wh.kind === 'meta') return;
    if (wh.kind === 'delete' && (wh.name === '' || wh.name === '.' || wh.name === '..')) {
      throw new UnsafeLayerPathError(entry.path, 'whiteout names no valid entry');
    }
    const parent = await resolveDirInRoot(this.root, comps.slice(0, -1), entry.path, false, this.dirs);
    if (parent === undefined) return; // whiting out below a missing dir: nothing to delete
    if (wh.kind === 'opaque') {
      await this.clearOpaque(parent);
      if (this.opts.ignoreOwnership) this.owners.removed.push(parent === this.root ? '/' : `${relative(this.root, parent)}/`);
      return;
    }
    // rm never follows a symlink it removes, and `parent` is already resolved inside root.
    this.remove(join(parent, wh.name));
    if (this.opts.ignoreOwnership) this.owners.removed.push(relative(this.root, join(parent, wh.name)));
  }

  /** rm -rf that never follows a symlink it removes; forgets every resolved dir, since one may have gone. */
  private remove(path: string): void {
    rmSync(path, { recursive: true, force: true });
    this.dirs.clear();
    this.fresh.clear();
  }

  private markWritten(target: string): void {
    this.written.add(target);
    this.markHolding(dirname(target));
  }

  /** `dir` and its parents exist now (resolving an entry may have made them). */
  private markHolding(dir: string): void {
    for (let d = dir; d !== this.root && d.startsWith(`${this.root}/`) && !this.holding.has(d); d = dirname(d)) this.holding.add(d);
  }

  /**
   * Remove every child of `dir` not written by this layer, recursing into dirs it wrote
   * or that hold something it wrote (parents created implicitly for `a/b/new`).
   */
  private async clearOpaque(dir: string): Promise<void> {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const keep = this.written.has(p) || this.holding.has(p);
      if (!keep) this.remove(p);
      else if (lstatSync(p).isDirectory()) await this.clearOpaque(p);
    }
  }

  private async hardlink(entry: TarEntry, target: string, exists: boolean): Promise<void> {
    const linkComps = cleanLayerPath(entry.linkpath);
    const src = await resolveEntry(this.root, linkComps, entry.path, false, this.dirs);
    const srcStat = src ? await lstatOrNull(src.path) : null;
    if (!src || !srcStat) throw new UnsafeLayerPathError(entry.path, `hardlink target ${JSON.stringify(entry.linkpath)} does not exist in the layer root`);
    if (srcStat.isDirectory()) throw new UnsafeLayerPathError(entry.path, 'hardlink to a directory');
    if (src.path === target) return;
    if (src.path.startsWith(`${target}/`)) {
      throw new InvalidLayerError(`${entry.path}: hardlink target ${JSON.stringify(entry.linkpath)} is below the entry it replaces`);
    }
    if (exists) this.remove(target);
    linkSync(src.path, target); // link(2) does not follow a symlink source
    this.recordOwner(target, entry);
    this.markWritten(target);
  }

  private async writeFile(target: string, entry: TarEntry, body: AsyncGenerator<Buffer>): Promise<void> {
    // O_EXCL|O_NOFOLLOW: we just removed whatever was there; never write through a link.
    const fd = openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      for await (const chunk of body) {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
      }
      if (!this.opts.ignoreOwnership) await this.chown(entry, () => fchownSync(fd, entry.uid, entry.gid));
      else this.recordOwner(target, entry);
      fchmodSync(fd, entry.mode); // after chown: chown clears setuid/setgid
    } finally {
      closeSync(fd);
    }
    await this.setXattrs(target, entry);
    if (entry.mtime) lutimesSync(target, entry.mtime, entry.mtime);
  }

  /** Ownership, mode (not for symlinks), xattrs, mtime (deferred for directories). */
  private async setMeta(target: string, entry: TarEntry, isDir: boolean): Promise<void> {
    if (!this.opts.ignoreOwnership) await this.chown(entry, () => lchownSync(target, entry.uid, entry.gid));
    else this.recordOwner(target, entry);
    if (entry.type !== 'SymbolicLink') chmodSync(target, entry.mode);
    await this.setXattrs(target, entry);
    if (!entry.mtime) return;
    if (isDir) this.dirTimes.push({ path: target, mtime: entry.mtime });
    else lutimesSync(target, entry.mtime, entry.mtime);
  }

  /** chown, with ids the user namespace cannot represent reported as such (not a bare EINVAL). */
  private async chown(entry: TarEntry, op: () => void): Promise<void> {
    try {
      await op();
    } catch (err) {
      if (errCode(err) !== 'EINVAL') throw err;
      throw new UnsupportedLayerError(
        `${entry.path}: owner ${entry.uid}:${entry.gid} is not mapped in this user namespace ` +
          '(give the user a larger /etc/subuid and /etc/subgid range, or ignore ownership)',
      );
    }
  }

  private async setXattrs(target: string, entry: TarEntry): Promise<void> {
    if (entry.xattrs.size === 0) return;
    this.xattrTools ??= await hasXattrTools();
    if (!this.xattrTools) {
      this.warnings.push(`${entry.path}: xattrs skipped (setfattr not installed)`);
      return;
    }
    for (const [name, value] of entry.xattrs) {
      if (isOverlayPrivateXattr(name)) {
        // overlayfs reads these from lower/upper dirs: a layer must not plant opaque/redirect markers.
        this.warnings.push(`${entry.path}: xattr ${name} skipped (reserved for overlayfs)`);
        continue;
      }
      try {
        await setXattr(target, name, value);
      } catch (err) {
        this.warnings.push(`${entry.path}: xattr ${name} not set (${(err as Error).message.trim()})`);
      }
    }
  }

  async finish(): Promise<void> {
    // Deepest first, and lutimes: a later entry may have replaced the dir with a symlink.
    this.dirTimes.sort((a, b) => b.path.length - a.path.length);
    for (const { path, mtime } of this.dirTimes) {
      const st = await lstatOrNull(path);
      if (st?.isDirectory()) lutimesSync(path, mtime, mtime);
    }
  }
}

/**
 * Extract `layer` (tar, optionally gzip) into `root`. Returns the diffID computed
 * from the same stream. Any unsafe entry aborts the whole apply with
 * UnsafeLayerPathError; entries before it stay applied (callers discard the snapshot).
 */
export async function applyLayer(root: string, layer: NodeJS.ReadableStream, opts: ApplyOptions = {}): Promise<ApplyResult> {
  return applyUncompressed(root, await openLayer(layer), opts);
}

/** The same for a layer blob in a file (a verified blob of the content store). */
export async function applyLayerFile(root: string, path: string, opts: ApplyOptions = {}): Promise<ApplyResult> {
  return applyUncompressed(root, await openLayerFile(path), opts);
}

async function applyUncompressed(root: string, src: UncompressedLayer, opts: ApplyOptions): Promise<ApplyResult> {
  const applier = new LayerApplier(root, opts);
  applier.start();
  try {
    for await (const item of readTar(src.chunks)) {
      await applier.apply(item);
      crashPoint('apply:entry');
    }
  } catch (err) {
    if (err instanceof Error && /incorrect header check|unexpected end of file/.test(err.message)) {
      throw new InvalidLayerError(`corrupt gzip stream: ${err.message}`, { cause: err });
    }
    throw err;
  }
  await applier.finish();
  return { diffID: src.diffID(), warnings: applier.warnings, ...(opts.ignoreOwnership ? { owners: applier.owners } : {}) };
}
