import { copyFile, constants, chmod, lchown, lstat, lutimes, mkdir, readdir, readlink, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { detectArchive, extractArchive } from './archive.js';
import { expandGlob, hasGlob } from './glob.js';
import { resolveInRoot } from './secure-path.js';

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
  owner: CopyOwner;
  chmod?: number;
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
  const matched: { rel: string; pattern: string }[] = [];
  for (const src of spec.sources) {
    const cleaned = posix.normalize(`/${src}`);
    if (hasGlob(cleaned)) {
      const found = await expandGlob(spec.sourceRoot, cleaned);
      if (found.length === 0) throw new CopyError(`no source files were specified matching ${src}`);
      matched.push(...found.map((rel) => ({ rel, pattern: src })));
    } else {
      matched.push({ rel: cleaned.slice(1), pattern: src });
    }
  }
  const count = matched.length + spec.inline.length;
  // A wildcard that matches one file behaves like that file named directly
  // (Docker: the destination is a file unless it ends in / or is a directory).
  const destIsDir = spec.dest.endsWith('/') || spec.dest.endsWith('/.') || count > 1;
  if (count > 1 && !(spec.dest.endsWith('/') || spec.dest.endsWith('/.'))) {
    throw new CopyError('when using COPY with more than one source file, the destination must be a directory and end with a /');
  }
  const destPath = await resolveInRoot(targetRoot, spec.dest);
  const destExistsAsDir = await lstat(destPath).then((s) => s.isDirectory(), () => false);
  const intoDir = destIsDir || destExistsAsDir;
  if (intoDir) await mkdirOwned(targetRoot, spec.dest, spec.owner, spec.setOwner);
  else await mkdirOwned(targetRoot, posix.dirname(posix.normalize(spec.dest)), spec.owner, spec.setOwner);

  for (const file of spec.inline) {
    const target = intoDir ? posix.join(spec.dest, file.name) : spec.dest;
    const path = await resolveInRoot(targetRoot, target);
    await rm(path, { recursive: true, force: true });
    await writeFile(path, file.content, { mode: 0o644 });
    await applyMeta(path, spec, 0o644, spec.inlineMtime, spec.inlineMtime, false);
  }

  for (const { rel, pattern } of matched) {
    const source = spec.sourceKind === 'rootfs'
      ? await resolveInRoot(spec.sourceRoot, rel)
      : await resolveInContext(spec.sourceRoot, rel);
    const st = await lstat(source).catch(() => undefined);
    if (!st) throw new CopyError(`"${pattern}": not found${spec.sourceKind === 'context' ? ' in the build context' : ''}`);
    if (st.isDirectory()) {
      // A directory source copies its contents, never the directory itself.
      await copyTree(source, targetRoot, spec.dest, spec, warn, true);
    } else if (st.isFile() && spec.unpackArchives && (await unpackIfArchive(targetRoot, source, spec, warn))) {
      // An archive source of ADD: its entries were unpacked into the destination directory.
    } else {
      const target = intoDir ? posix.join(spec.dest, posix.basename(rel)) : spec.dest;
      await copyEntry(source, targetRoot, target, spec, warn);
    }
  }
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

async function mkdirOwned(root: string, dir: string, owner: CopyOwner, setOwner: SetOwner = lchownOwner): Promise<void> {
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
 */
async function copyTree(sourceDir: string, targetRoot: string, destDir: string, spec: CopySpec, warn: (msg: string) => void, top = false): Promise<void> {
  const existed = top && (await lstat(await resolveInRoot(targetRoot, destDir)).then((s) => s.isDirectory(), () => false));
  await mkdirOwned(targetRoot, destDir, spec.owner, spec.setOwner);
  const dirPath = await resolveInRoot(targetRoot, destDir);
  const st = await lstat(sourceDir);
  for (const name of (await readdir(sourceDir)).sort()) {
    await copyEntry(posix.join(sourceDir, name), targetRoot, posix.join(destDir, name), spec, warn);
  }
  if (existed) return;
  if (top) {
    // Created for this copy: 0755 and the owner (from mkdirOwned), the source's times.
    await utimes(dirPath, st.atimeMs / 1000, st.mtimeMs / 1000);
    return;
  }
  await applyMeta(dirPath, spec, st.mode & 0o7777, st.atimeMs / 1000, st.mtimeMs / 1000, false);
}

async function copyEntry(source: string, targetRoot: string, dest: string, spec: CopySpec, warn: (msg: string) => void): Promise<void> {
  const st = await lstat(source);
  if (st.isDirectory()) return copyTree(source, targetRoot, dest, spec, warn);
  const path = await resolveInRoot(targetRoot, dest);
  const existing = await lstat(path).catch(() => undefined);
  if (existing) await rm(path, { recursive: true, force: true });
  if (st.isSymbolicLink()) {
    await symlink(await readlink(source), path);
    await applyMeta(path, spec, 0, st.atimeMs / 1000, st.mtimeMs / 1000, true);
  } else if (st.isFile()) {
    await copyFile(source, path, constants.COPYFILE_FICLONE);
    await applyMeta(path, spec, st.mode & 0o7777, st.atimeMs / 1000, st.mtimeMs / 1000, false);
  } else {
    warn(`skipping ${dest}: sockets, FIFOs and device nodes are not copied`);
  }
}

async function applyMeta(path: string, spec: CopySpec, mode: number, atime: number, mtime: number, isLink: boolean): Promise<void> {
  await (spec.setOwner ?? lchownOwner)(path, spec.owner);
  if (isLink) {
    await lutimes(path, atime, mtime);
    return;
  }
  // chmod after chown: chown clears setuid/setgid bits.
  await chmod(path, spec.chmod ?? mode);
  await utimes(path, atime, mtime);
}
