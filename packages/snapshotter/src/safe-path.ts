/**
 * Resolving layer paths inside an extraction root without ever leaving it.
 *
 * Entry names are cleaned lexically (leading `/` and `.` stripped, `..` rejected),
 * then walked component by component with lstat. Symlinks met on the way are
 * followed *scoped to the root* (an absolute target restarts at the root, `..`
 * clamps at the root) — the containerd/securejoin behaviour. That keeps
 * merged-/usr images working (`lib -> usr/lib` in a lower layer, `lib/x` in an
 * upper one) while a hostile `a -> /` + `a/etc/passwd` lands in `<root>/etc/passwd`.
 * The final component is never followed: callers replace it, not write through it.
 */
// Synchronous calls on purpose: resolving a path is a handful of tiny syscalls per
// entry, and a thread-pool round trip for each made layer apply mostly wait.
import { chmodSync, lstatSync, mkdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { UnsafeLayerPathError } from './errors.js';

const MAX_SYMLINKS = 255;

/** Split an entry name into clean components. Throws on `..` or NUL. Empty result = the root itself. */
export function cleanLayerPath(name: string): string[] {
  if (name.includes('\0')) throw new UnsafeLayerPathError(name, 'NUL byte in name');
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue; // leading '/' (absolute) and './' are neutralised
    if (part === '..') throw new UnsafeLayerPathError(name, "'..' component");
    out.push(part);
  }
  return out;
}

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

/**
 * Directories already resolved during one layer apply, by clean relative path.
 * Valid only while nothing is removed or replaced under the root: a caller that
 * deletes anything must clear it (a cached path may run through a symlink to
 * what was deleted). Creating a new entry cannot stale it: no resolution went
 * through a path that did not exist yet.
 */
export type ResolvedDirs = Map<string, string>;

/**
 * Resolve directory `components` (relative to `root`) to a real directory inside root,
 * following symlinks scoped to root. With `create`, missing directories are made (0755);
 * otherwise a missing component yields `undefined`.
 */
export async function resolveDirInRoot(
  root: string,
  components: readonly string[],
  entryName: string,
  create: boolean,
  known?: ResolvedDirs,
): Promise<string | undefined> {
  // Most entries share their parent with the entry before: one lookup instead of an lstat per component.
  const key = components.join('/');
  const hit = known?.get(key);
  if (hit !== undefined) return hit;
  const dir = walkDir(root, components, entryName, create);
  if (dir !== undefined) known?.set(key, dir);
  return dir;
}

function walkDir(root: string, components: readonly string[], entryName: string, create: boolean): string | undefined {
  const resolved: string[] = [];
  const pending = [...components];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      resolved.pop(); // clamped: popping at root is a no-op
      continue;
    }
    const here = join(root, ...resolved, part);
    let st;
    try {
      st = lstatSync(here);
    } catch (err) {
      if (errCode(err) !== 'ENOENT') throw err;
      if (!create) return undefined;
      mkdirSync(here, { mode: 0o755 });
      chmodSync(here, 0o755); // mkdir's mode is filtered by the umask
      resolved.push(part);
      continue;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) throw new UnsafeLayerPathError(entryName, 'too many levels of symbolic links');
      const target = readlinkSync(here);
      if (target.startsWith('/')) resolved.length = 0;
      pending.unshift(...target.split('/'));
      continue;
    }
    if (!st.isDirectory()) {
      throw new UnsafeLayerPathError(entryName, `parent ${JSON.stringify([...resolved, part].join('/'))} is not a directory`);
    }
    resolved.push(part);
  }
  return join(root, ...resolved);
}

/** Where entry `components` lives: its (resolved) parent dir and its own base name. */
export async function resolveEntry(
  root: string,
  components: readonly string[],
  entryName: string,
  create: boolean,
  known?: ResolvedDirs,
): Promise<{ parent: string; base: string; path: string } | undefined> {
  const base = components[components.length - 1];
  if (base === undefined) return undefined;
  const parent = await resolveDirInRoot(root, components.slice(0, -1), entryName, create, known);
  if (parent === undefined) return undefined;
  return { parent, base, path: join(parent, base) };
}
