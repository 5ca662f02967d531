import { copyFile, constants, chmod, lchown, link, lstat, lutimes, mkdir, readdir, readlink, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { posix } from 'node:path';
import { detectArchive, extractArchive } from './archive.js';
import { makeFifo } from './fifo.js';
import { applyChmod, type ChmodSpec } from './chmod.js';
import { IgnoreMatcher, IgnorePatternError, type MatchInfo } from './dockerignore.js';
import { expandGlob, hasGlob } from './glob.js';
import { resolveInRoot } from './secure-path.js';
import { crashPoint } from '@stowage/registry-client';
import { hasXattrTools, readXattrsOf, setXattr } from '@stowage/snapshotter';

export interface CopyOwner { uid: number; gid: number }

export interface CopySpec {
  /** Root the sources are relative to: the build context or a stage's filesystem. */
  sourceRoot: string;
  /** Whether sources may follow symlinks inside sourceRoot (a stage) or must stay literal (the context). */
  sourceKind: 'context' | 'rootfs';
  sources: string[];
  /** Inline files (heredocs): name → content. */
  inline: { name: string; content: string }[];
  /** Absolute destination inside the target rootfs, as written (trailing slash significant). */
  dest: string;
  /** Owner of created destination directories, inline files and (without sourceOwner) every copied entry. */
  owner: CopyOwner;
  /**
   * COPY --from without --chown: each copied entry keeps the owner it has in
   * the source stage or image (Docker since moby#38599, BuildKit, Buildah);
   * directories created for the destination still get `owner`.
   */
  sourceOwner?: (sourcePath: string, st: Stats) => CopyOwner;
  /** --chmod: an octal mode, or parseChmod()'s result (octal or symbolic), applied to every copied file and directory. */
  chmod?: number | ChmodSpec;
  /**
   * Context sources only: what `.dockerignore` leaves out of the context
   * (loadDockerignore). Excluded paths do not exist for COPY/ADD: naming one
   * is "not found", wildcards and directory copies skip them. Ignored for `--from`.
   */
  ignore?: IgnoreMatcher;
  /**
   * --exclude patterns (.dockerignore syntax): matched against paths relative
   * to each directory source (its entries), to the wildcard's directory for
   * wildcard matches, or to the pivot with --parents.
   */
  exclude?: string[];
  /**
   * --parents: keep each source's path under the destination; a `/./` in a
   * source is the pivot (only what follows it is kept). The part after the
   * pivot may use `**`.
   */
  parents?: boolean;
  /** Modification time for inline files (seconds). */
  inlineMtime: number;
  /**
   * ADD: a regular-file source that is a tar archive (by content) is unpacked
   * into the destination directory instead of copied. Entries keep the
   * archive's owners unless `--chown` was given (BuildKit's rule).
   */
  unpackArchives?: { chown?: CopyOwner; ignoreOwnership: boolean };
  /**
   * Sets the owner of a created path (absolute, inside the target root).
   * Default lchown; a single-id user namespace records owners instead,
   * since only root exists on disk there.
   */
  setOwner?: SetOwner;
}

export type SetOwner = (path: string, owner: CopyOwner) => Promise<void>;

const lchownOwner: SetOwner = (path, owner) => lchown(path, owner.uid, owner.gid);

export class CopyError extends Error {}

/**
 * Docker's COPY semantics on a target root: a directory source copies its
 * contents, several sources need a directory destination ending in `/`, a
 * file lands inside an existing directory, new files are owned by `owner`.
 * Every destination path is resolved inside the target root, so a symlink in
 * the image cannot redirect the copy to the host.
 */
export async function copyInto(targetRoot: string, spec: CopySpec, warn: (msg: string) => void): Promise<void> {
  const ignore = spec.sourceKind === 'context' && spec.ignore && !spec.ignore.empty ? spec.ignore : undefined;
  const exclude = spec.exclude && spec.exclude.length > 0 ? matcherOf(spec.exclude, '--exclude') : undefined;
  if (spec.parents) return copyParents(targetRoot, spec, ignore, exclude, warn);
  const matched: { rel: string; pattern: string }[] = [];
  for (const src of spec.sources) {
    const cleaned = posix.normalize(`/${src}`);
    if (hasGlob(cleaned)) {
      const found = await expandGlob(spec.sourceRoot, cleaned);
      const visible = ignore ? await filterAsync(found, (rel) => contextHas(ignore, spec.sourceRoot, rel)) : found;
      // BuildKit's Dockerfile frontend allows empty wildcards: nothing is copied for this source.
      if (visible.length === 0) continue;
      // --exclude also drops wildcard matches, relative to the wildcard's directory (Dockerfile reference).
      const base = globBase(cleaned);
      matched.push(...visible.filter((rel) => !exclude?.excludes(posix.relative(base, rel))).map((rel) => ({ rel, pattern: src })));
    } else {
      matched.push({ rel: cleaned.slice(1), pattern: src });
    }
  }
  // Only empty wildcards: BuildKit copies nothing, not even the destination directory.
  if (matched.length + spec.inline.length === 0 && spec.sources.length > 0) return;
  // The destination is a directory when it ends in / (or /.) or already is one;
  // otherwise each source is copied onto it in turn, the last one winning, as
  // BuildKit does (it copies sources one by one and never refuses several).
  const destIsDir = spec.dest.endsWith('/') || spec.dest.endsWith('/.');
  const destPath = await resolveInRoot(targetRoot, spec.dest);
  const isDirNow = () => lstat(destPath).then((s) => s.isDirectory(), () => false);
  if (destIsDir || (await isDirNow())) await mkdirOwned(targetRoot, spec.dest, spec.owner, spec.setOwner);
  else await mkdirOwned(targetRoot, posix.dirname(posix.normalize(spec.dest)), spec.owner, spec.setOwner);

  for (const file of spec.inline) {
    const intoDir = destIsDir || (await isDirNow());
    const target = intoDir ? posix.join(spec.dest, file.name) : spec.dest;
    const path = await resolveInRoot(targetRoot, target);
    await rm(path, { recursive: true, force: true });
    await writeFile(path, file.content, { mode: 0o644 });
    await applyMeta(path, spec, spec.owner, 0o644, spec.inlineMtime, spec.inlineMtime, false);
  }

  for (const { rel, pattern } of matched) {
    const source = spec.sourceKind === 'rootfs'
      ? await resolveInRoot(spec.sourceRoot, rel)
      : await resolveInContext(spec.sourceRoot, rel);
    const notFound = () => new CopyError(`"${pattern}": not found${spec.sourceKind === 'context' ? ' in the build context' : ''}`);
    const st = await lstat(source).catch(() => undefined);
    if (!st) throw notFound();
    // What .dockerignore leaves out is not in the context: neither the path as written nor where its links lead.
    const realRel = posix.relative(spec.sourceRoot, source);
    if (ignore && (!(await contextHas(ignore, spec.sourceRoot, rel)) || !(await contextHas(ignore, spec.sourceRoot, realRel)))) throw notFound();
    const walk = newWalk();
    if (st.isDirectory()) {
      // A directory source copies its contents, never the directory itself.
      const filters: Filter[] = [];
      if (ignore) filters.push(filterAt(ignore, 'exclude', realRel));
      if (exclude) filters.push({ matcher: exclude, mode: 'exclude', rel: '' });
      await copyTree(source, targetRoot, spec.dest, spec, warn, { top: true, filters, walk });
    } else if (st.isFile() && spec.unpackArchives && (await unpackIfArchive(targetRoot, source, spec, warn))) {
      // An archive source of ADD: its entries were unpacked into the destination directory.
    } else {
      const intoDir = destIsDir || (await isDirNow());
      const target = intoDir ? posix.join(spec.dest, posix.basename(rel)) : spec.dest;
      await copyEntry(source, targetRoot, target, spec, warn, [], walk);
    }
    await finishWalk(walk, warn);
  }
}

/**
 * What one source's copy carries along its walk: where the first copy of a
 * multiply-linked inode went (files of one source that share an inode are
 * linked again, as BuildKit's copier does), and every source → destination
 * pair, whose xattrs are copied once the walk is done (finishWalk).
 */
interface SourceWalk {
  inodes: Map<string, string>;
  copied: { source: string; dest: string }[];
}

const newWalk = (): SourceWalk => ({ inodes: new Map(), copied: [] });

/**
 * Copies the xattrs of what the walk copied, as BuildKit's copier does: read
 * in batches for exactly the copied paths (not a whole tree, which may hold
 * what .dockerignore leaves out), set after every chown (which clears
 * security.capability). overlayfs's own are skipped; one the kernel refuses
 * here (trusted.*, needing privilege outside the build's namespace) is warned
 * about and skipped, as BuildKit logs and skips it.
 */
async function finishWalk(walk: SourceWalk, warn: (msg: string) => void): Promise<void> {
  if (walk.copied.length === 0 || !(await hasXattrTools())) return;
  const attrs = await readXattrsOf(walk.copied.map((c) => c.source)).catch(() => new Map<string, Map<string, Buffer>>());
  if (attrs.size === 0) return;
  for (const { source, dest } of walk.copied) {
    for (const [name, value] of attrs.get(source) ?? []) {
      if (/^(trusted|user)\.overlay\./.test(name)) continue;
      await setXattr(dest, name, value).catch((err: Error) => warn(`xattr ${name} of ${dest} not copied: ${err.message.split('\n')[0]}`));
    }
  }
}

/**
 * COPY --parents, as BuildKit's Dockerfile frontend lowers it: each source
 * splits at its first `/./` into a pivot directory (the context root without
 * one) and a pattern; the pivot's contents are copied into the destination
 * directory keeping their paths, limited to what the pattern (patternmatcher
 * syntax, `**` included) matches. Parent directories are created with their
 * source metadata. A source without wildcards must exist; a wildcard may match nothing.
 */
async function copyParents(targetRoot: string, spec: CopySpec, ignore: IgnoreMatcher | undefined, exclude: IgnoreMatcher | undefined, warn: (msg: string) => void): Promise<void> {
  await mkdirOwned(targetRoot, spec.dest, spec.owner, spec.setOwner);
  for (const file of spec.inline) {
    const path = await resolveInRoot(targetRoot, posix.join(spec.dest, file.name));
    await rm(path, { recursive: true, force: true });
    await writeFile(path, file.content, { mode: 0o644 });
    await applyMeta(path, spec, spec.owner, 0o644, spec.inlineMtime, spec.inlineMtime, false);
  }
  for (const src of spec.sources) {
    const pivotAt = src.indexOf('/./');
    const parent = posix.normalize(`/${pivotAt >= 0 ? src.slice(0, pivotAt) : '/'}`);
    const pattern = posix.normalize(`/${pivotAt >= 0 ? src.slice(pivotAt + 3) : src}`).slice(1).replace(/\/$/, '');
    const notFound = () => new CopyError(`"${src}": not found${spec.sourceKind === 'context' ? ' in the build context' : ''}`);
    const pivots = hasGlob(parent) ? await expandGlob(spec.sourceRoot, parent) : [parent.slice(1)];
    const include = pattern === '' ? undefined : matcherOf([pattern], '--parents');
    if (!hasGlob(parent) && !hasGlob(pattern)) {
      // The named path must exist (BuildKit's RequiredPaths).
      const rel = posix.join(parent, pattern).slice(1);
      const resolved = await (spec.sourceKind === 'rootfs' ? resolveInRoot(spec.sourceRoot, rel) : resolveInContext(spec.sourceRoot, rel));
      const exists = await lstat(resolved).then(() => true, () => false);
      if (!exists || (ignore && !(await contextHas(ignore, spec.sourceRoot, rel)))) throw notFound();
    }
    for (const pivotRel of pivots) {
      if (ignore && !(await contextHas(ignore, spec.sourceRoot, pivotRel))) continue;
      const pivot = await resolveInRoot(spec.sourceRoot, pivotRel);
      const st = await lstat(pivot).catch(() => undefined);
      if (!st) continue;
      if (!st.isDirectory()) {
        const walk = newWalk();
        await copyEntry(pivot, targetRoot, posix.join(spec.dest, posix.basename(pivotRel)), spec, warn, [], walk);
        await finishWalk(walk, warn);
        continue;
      }
      const filters: Filter[] = [];
      if (ignore) filters.push(filterAt(ignore, 'exclude', posix.relative(spec.sourceRoot, pivot)));
      if (include) filters.push({ matcher: include, mode: 'include', rel: '' });
      if (exclude) filters.push({ matcher: exclude, mode: 'exclude', rel: '' });
      const walk = newWalk();
      await copyTree(pivot, targetRoot, spec.dest, spec, warn, { top: true, filters, walk });
      await finishWalk(walk, warn);
    }
  }
}

function matcherOf(patterns: string[], flag: string): IgnoreMatcher {
  try {
    return new IgnoreMatcher(patterns);
  } catch (err) {
    if (err instanceof IgnorePatternError) throw new CopyError(`${flag}: ${err.message}`);
    throw err;
  }
}

/** The directory part of a wildcard source before its first wildcard segment ('' for the root). */
function globBase(cleaned: string): string {
  const segments = cleaned.split('/').filter(Boolean);
  const first = segments.findIndex((s) => hasGlob(s));
  return segments.slice(0, first < 0 ? segments.length : first).join('/');
}

async function filterAsync<T>(items: T[], keep: (item: T) => Promise<boolean>): Promise<T[]> {
  const out: T[] = [];
  for (const item of items) if (await keep(item)) out.push(item);
  return out;
}

/**
 * Whether `rel` is in the context once `.dockerignore` is applied, as
 * BuildKit's context transfer (tonistiigi/fsutil's filtered walk) sends it:
 * a path that is not excluded, under no skipped directory; or an excluded
 * directory that an exception re-includes something in.
 */
async function contextHas(ignore: IgnoreMatcher, root: string, rel: string): Promise<boolean> {
  if (rel === '' || rel === '.') return true;
  if (rel === '..' || rel.startsWith('../')) return false;
  const st = ignore.state(rel);
  if (st.hidden) return false;
  if (!st.matched) return true;
  // Links resolve inside the context, so looking never leaves it.
  const abs = await resolveInRoot(root, rel);
  const isDir = await lstat(abs).then((s) => s.isDirectory(), () => false);
  if (!isDir || ignore.skipsDir(rel)) return false;
  return hasKeptEntry(ignore, abs, rel, st.info);
}

async function hasKeptEntry(ignore: IgnoreMatcher, abs: string, dir: string, info: MatchInfo | undefined): Promise<boolean> {
  let names: string[];
  try {
    names = await readdir(abs);
  } catch {
    return false;
  }
  for (const name of names) {
    const rel = `${dir}/${name}`;
    const r = ignore.match(rel, info);
    if (!r.matched) return true;
    const child = posix.join(abs, name);
    const isDir = await lstat(child).then((s) => s.isDirectory(), () => false);
    if (isDir && !ignore.skipsDir(rel) && (await hasKeptEntry(ignore, child, rel, r.info))) return true;
  }
  return false;
}

/**
 * A pattern list applied while walking a source directory: `exclude` drops
 * what matches (.dockerignore, --exclude), `include` keeps only what matches
 * (the --parents pattern). `rel` is the current directory relative to the
 * list's base, `info` the per-pattern results of that directory.
 */
interface Filter {
  matcher: IgnoreMatcher;
  mode: 'exclude' | 'include';
  rel: string;
  info?: MatchInfo;
}

/** A filter positioned at `rel` (a directory below its base), with the results a walk would have there. */
function filterAt(matcher: IgnoreMatcher, mode: 'exclude' | 'include', rel: string): Filter {
  if (rel === '' || rel === '.') return { matcher, mode, rel: '' };
  const st = matcher.state(rel);
  return { matcher, mode, rel, ...(st.info ? { info: st.info } : {}) };
}

/** An archive always unpacks into a directory at the destination, trailing slash or not. */
async function unpackIfArchive(targetRoot: string, source: string, spec: CopySpec, warn: (msg: string) => void): Promise<boolean> {
  const format = await detectArchive(source);
  if (format === undefined) return false;
  const opts = spec.unpackArchives!;
  const destDir = posix.normalize(spec.dest);
  await mkdirOwned(targetRoot, destDir, spec.owner, spec.setOwner);
  await extractArchive(source, format, targetRoot, await resolveInRoot(targetRoot, destDir), {
    ...(opts.chown ? { owner: opts.chown } : {}),
    ignoreOwnership: opts.ignoreOwnership,
  }, warn);
  return true;
}

/** Context sources never leave the context: `..` is clamped and the named path's links are resolved inside it. */
async function resolveInContext(contextRoot: string, rel: string): Promise<string> {
  return resolveInRoot(contextRoot, rel);
}

/** Creates `dir` and its missing parents inside `root`, 0755 and owned by `owner`; existing directories are left as they are. */
export async function mkdirOwned(root: string, dir: string, owner: CopyOwner, setOwner: SetOwner = lchownOwner): Promise<void> {
  const parts = posix.normalize(`/${dir}`).split('/').filter(Boolean);
  let current = '/';
  for (const part of parts) {
    current = posix.join(current, part);
    const path = await resolveInRoot(root, current);
    const st = await lstat(path).catch(() => undefined);
    if (st?.isDirectory()) continue;
    if (st) await rm(path, { force: true });
    await mkdirResolved(root, path, owner, setOwner);
  }
}

/**
 * Creates `path` (already resolved inside `root`) and any missing parents. A
 * symlink in the image can point at a directory that does not exist yet
 * (`/bin -> /opt/missing/bin`); its target is created inside the root, with
 * the owner, as BuildKit's MkdirAll does.
 */
async function mkdirResolved(root: string, path: string, owner: CopyOwner, setOwner: SetOwner): Promise<void> {
  const parts = posix.relative(root, path).split('/').filter(Boolean);
  let current = root;
  for (const part of parts) {
    current = posix.join(current, part);
    const st = await lstat(current).catch(() => undefined);
    if (st?.isDirectory()) continue;
    if (st) await rm(current, { force: true });
    await mkdir(current, { mode: 0o755 });
    await setOwner(current, owner);
    // Not left to the umask of whoever runs the build.
    await chmod(current, 0o755);
  }
}

/**
 * Copies a directory's contents to `destDir`. The metadata of the source
 * directory goes to `destDir` only when it is a nested directory; the
 * top-level destination keeps what it had if it existed (so `COPY . /` never
 * changes the mode or owner of `/`), as BuildKit does.
 *
 * With filters, an entry that one of them drops is skipped; a dropped
 * directory is still walked (unless its exclude list rules out any exception
 * inside it) and created, with its source metadata, only when something in it
 * is copied (BuildKit creates such parents lazily).
 */
async function copyTree(
  sourceDir: string,
  targetRoot: string,
  destDir: string,
  spec: CopySpec,
  warn: (msg: string) => void,
  opts: { top?: boolean; filters: Filter[]; walk: SourceWalk; ensureParent?: () => Promise<void>; lazy?: boolean },
): Promise<boolean> {
  const top = opts.top ?? false;
  const st = await lstat(sourceDir);
  let created = false;
  const existed = top && (await lstat(await resolveInRoot(targetRoot, destDir)).then((s) => s.isDirectory(), () => false));
  const ensure = async () => {
    if (created) return;
    await opts.ensureParent?.();
    await mkdirOwned(targetRoot, destDir, spec.owner, spec.setOwner);
    created = true;
  };
  if (!opts.lazy) await ensure();
  for (const name of (await readdir(sourceDir)).sort()) {
    const source = posix.join(sourceDir, name);
    const child = await lstat(source);
    let keep = true;
    let walk = true;
    const childFilters = opts.filters.map((f) => {
      const rel = f.rel === '' ? name : `${f.rel}/${name}`;
      const r = f.matcher.match(rel, f.info);
      if (f.mode === 'exclude' && r.matched) {
        keep = false;
        if (child.isDirectory() && f.matcher.skipsDir(rel)) walk = false;
      }
      if (f.mode === 'include' && !r.matched) keep = false;
      return { matcher: f.matcher, mode: f.mode, rel, info: r.info };
    });
    if (!keep && !(walk && child.isDirectory())) continue;
    if (child.isDirectory()) {
      await copyTree(source, targetRoot, posix.join(destDir, name), spec, warn, { filters: childFilters, walk: opts.walk, ensureParent: ensure, lazy: !keep });
    } else {
      await ensure();
      await copyEntry(source, targetRoot, posix.join(destDir, name), spec, warn, childFilters, opts.walk);
    }
  }
  if (!created) return false;
  const dirPath = await resolveInRoot(targetRoot, destDir);
  if (existed) return true;
  if (top) {
    // Created for this copy: 0755 and the owner (from mkdirOwned), the source's times.
    await utimes(dirPath, st.atimeMs / 1000, st.mtimeMs / 1000);
    return true;
  }
  await applyMeta(dirPath, spec, entryOwner(spec, sourceDir, st), st.mode & 0o7777, st.atimeMs / 1000, st.mtimeMs / 1000, false, true);
  opts.walk.copied.push({ source: sourceDir, dest: dirPath });
  return true;
}

/** The owner a copied entry gets: its source's (COPY --from without --chown) or the copy's. */
function entryOwner(spec: CopySpec, source: string, st: Stats): CopyOwner {
  return spec.sourceOwner ? spec.sourceOwner(source, st) : spec.owner;
}

async function copyEntry(source: string, targetRoot: string, dest: string, spec: CopySpec, warn: (msg: string) => void, filters: Filter[], walk: SourceWalk): Promise<void> {
  const st = await lstat(source);
  if (st.isDirectory()) {
    await copyTree(source, targetRoot, dest, spec, warn, { filters, walk });
    return;
  }
  const path = await resolveInRoot(targetRoot, dest);
  const existing = await lstat(path).catch(() => undefined);
  if (existing) await rm(path, { recursive: true, force: true });
  const owner = entryOwner(spec, source, st);
  const inode = st.nlink > 1 && !st.isDirectory() ? `${st.dev}:${st.ino}` : undefined;
  const firstCopy = inode !== undefined ? walk.inodes.get(inode) : undefined;
  if (firstCopy !== undefined && (await lstat(firstCopy).then(() => true, () => false))) {
    // Same inode as a file already copied: a hard link, whose metadata is already set.
    await link(firstCopy, path);
    return;
  }
  if (inode !== undefined) walk.inodes.set(inode, path);
  if (st.isSymbolicLink()) {
    await symlink(await readlink(source), path);
    await applyMeta(path, spec, owner, 0, st.atimeMs / 1000, st.mtimeMs / 1000, true);
  } else if (st.isFile()) {
    await copyFile(source, path, constants.COPYFILE_FICLONE);
    crashPoint('copy:file');
    await applyMeta(path, spec, owner, st.mode & 0o7777, st.atimeMs / 1000, st.mtimeMs / 1000, false);
    walk.copied.push({ source, dest: path });
  } else if (st.isFIFO()) {
    // Recreated, never opened (an open waits for a writer forever), as Docker does.
    await makeFifo(path);
    await applyMeta(path, spec, owner, st.mode & 0o7777, st.atimeMs / 1000, st.mtimeMs / 1000, false);
  } else {
    // Docker skips sockets too; device nodes cannot be made in a user namespace (the runtime provides /dev).
    warn(`skipping ${dest}: ${st.isSocket() ? 'sockets are' : 'device nodes are'} not copied`);
  }
}

async function applyMeta(path: string, spec: CopySpec, owner: CopyOwner, mode: number, atime: number, mtime: number, isLink: boolean, isDir = false): Promise<void> {
  await (spec.setOwner ?? lchownOwner)(path, owner);
  if (isLink) {
    await lutimes(path, atime, mtime);
    return;
  }
  // chmod after chown: chown clears setuid/setgid bits.
  await chmod(path, spec.chmod !== undefined ? applyChmod(spec.chmod, mode, isDir) : mode);
  await utimes(path, atime, mtime);
}
