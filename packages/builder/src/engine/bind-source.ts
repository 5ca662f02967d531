import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, link, lstat, mkdir, readdir, readFile, readlink, rm, symlink, utimes } from 'node:fs/promises';
import { posix } from 'node:path';
import type { IgnoreMatcher, MatchInfo } from './dockerignore.js';

export class BindSourceError extends Error {}

const MAX_SYMLINKS = 255;

/**
 * Resolves `source` inside the build context, following symlinks, and fails
 * (rather than clamping, as COPY does) when `..` or a link would lead out
 * of it: a bind mount must never expose anything beside the context.
 * Returns the path relative to the context (`''` for the root).
 */
export async function resolveContextSource(contextDir: string, source: string): Promise<string> {
  const escape = () => new BindSourceError(`source ${source} is outside the build context`);
  const pending = source.split('/').filter((p) => p !== '' && p !== '.');
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      if (resolved.length === 0) throw escape();
      resolved.pop();
      continue;
    }
    const abs = posix.join(contextDir, ...resolved, part);
    const st = await lstat(abs).catch(() => undefined);
    if (!st) throw new BindSourceError(`source ${source} not found in the build context`);
    if (!st.isSymbolicLink()) {
      resolved.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) throw new BindSourceError(`source ${source}: too many levels of symbolic links`);
    const target = await readlink(abs);
    if (target.startsWith('/')) throw new BindSourceError(`source ${source}: the symbolic link ${posix.join(...resolved, part)} -> ${target} leads outside the build context`);
    // Relative: resolved against the link's directory, and it may not climb out either.
    const next = posix.normalize(posix.join(...resolved, target));
    if (next === '..' || next.startsWith('../')) throw new BindSourceError(`source ${source}: the symbolic link ${posix.join(...resolved, part)} -> ${target} leads outside the build context`);
    resolved.length = 0;
    pending.unshift(...next.split('/').filter((p) => p !== '' && p !== '.'));
  }
  return resolved.join('/');
}

interface Walk {
  contextDir: string;
  ignore: IgnoreMatcher | undefined;
  hash: Hash;
  copy: boolean;
}

/** A hard link where possible (cheap, and the mount is read-only); a copy across devices or for writable mounts. */
async function placeFile(src: string, dest: string, copy: boolean, mode: number, mtime: Date): Promise<void> {
  if (!copy) {
    try {
      await link(src, dest);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw err;
    }
  }
  await copyFile(src, dest);
  await chmod(dest, mode & 0o7777);
  await utimes(dest, mtime, mtime);
}

/** Below this, one read is much cheaper than a stream (most context files are small). */
const SMALL_FILE = 1 << 20;

async function hashFile(hash: Hash, path: string, size: number): Promise<void> {
  if (size < SMALL_FILE) {
    hash.update(await readFile(path));
    return;
  }
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

/**
 * Places one entry of the context at `dest` and hashes it. Returns false when
 * `.dockerignore` leaves it (and everything below) out of the context.
 */
async function placeEntry(w: Walk, rel: string, dest: string | undefined, matched: boolean, info: MatchInfo | undefined): Promise<boolean> {
  const abs = posix.join(w.contextDir, rel);
  const st = await lstat(abs);
  if (st.isDirectory()) {
    if (matched && w.ignore?.skipsDir(rel)) return false;
    if (dest !== undefined) await mkdir(dest, { mode: 0o700 });
    w.hash.update(`${rel}\0d${(st.mode & 0o7777).toString(8)}\0`);
    let kept = false;
    for (const name of (await readdir(abs)).sort()) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const r = w.ignore ? w.ignore.match(childRel, info) : { matched: false, info: undefined };
      if (await placeEntry(w, childRel, dest === undefined ? undefined : posix.join(dest, name), r.matched, r.info)) kept = true;
    }
    // An excluded directory exists only for what an exception re-includes inside it.
    if (matched && !kept) {
      if (dest !== undefined) await rm(dest, { recursive: true, force: true });
      return false;
    }
    if (dest !== undefined) {
      await chmod(dest, st.mode & 0o7777);
      await utimes(dest, st.atime, st.mtime);
    }
    return true;
  }
  if (matched) return false;
  if (st.isSymbolicLink()) {
    const target = await readlink(abs);
    if (dest !== undefined) await symlink(target, dest);
    w.hash.update(`${rel}\0l\0${target}\0`);
    return true;
  }
  if (st.isFile()) {
    if (dest !== undefined) await placeFile(abs, dest, w.copy, st.mode, st.mtime);
    w.hash.update(`${rel}\0f${(st.mode & 0o7777).toString(8)}\0${st.size}\0`);
    await hashFile(w.hash, abs, st.size);
    return true;
  }
  // Sockets, FIFOs and devices are not part of a build context.
  return false;
}

/**
 * Stages the context's `rel` (a file or directory, as resolved by
 * {@link resolveContextSource}) at `dest`, minus what `.dockerignore`
 * excludes, and returns a digest of exactly what was staged (paths, types,
 * modes, link targets, contents): the bind mount's cache key. Files are hard
 * links unless `copy` (a writable mount, whose writes must not reach the
 * context). Without `dest`, only the digest: a read-only mount of a context
 * that `.dockerignore` does not filter can bind the context itself.
 */
export async function stageContextSource(contextDir: string, rel: string, ignore: IgnoreMatcher | undefined, dest: string | undefined, copy: boolean): Promise<string> {
  const hash = createHash('sha256');
  const active = ignore && !ignore.empty ? ignore : undefined;
  let matched = false;
  let info: MatchInfo | undefined;
  if (active && rel !== '') {
    const st = active.state(rel);
    if (st.hidden) throw new BindSourceError(`source ${rel} is excluded by .dockerignore`);
    matched = st.matched;
    info = st.info;
  }
  const placed = await placeEntry({ contextDir, ignore: active, hash, copy }, rel, dest, matched, info);
  if (!placed) throw new BindSourceError(`source ${rel} is excluded by .dockerignore`);
  return `sha256:${hash.digest('hex')}`;
}
