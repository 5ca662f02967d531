import { lstat, readlink, realpath } from 'node:fs/promises';
import { posix } from 'node:path';

const MAX_SYMLINKS = 255;

/**
 * Resolves `path` as a process chrooted at `root` would, following symlinks
 * but never leaving `root`: an absolute link target restarts at `root`, and
 * `..` stops at it. Missing components are kept as written, so the result
 * can be used to create them. This is what makes COPY into an image whose
 * /bin is a symlink land inside the image, not on the host.
 */
export async function resolveInRoot(root: string, path: string): Promise<string> {
  const pending = posix.normalize(`/${path}`).split('/').filter(Boolean);
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = posix.join(root, ...resolved, part);
    let isLink = false;
    try {
      isLink = (await lstat(candidate)).isSymbolicLink();
    } catch {
      isLink = false;
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) throw new Error(`too many levels of symbolic links resolving ${path}`);
    const target = await readlink(candidate);
    if (target.startsWith('/')) resolved.length = 0;
    pending.unshift(...target.split('/').filter(Boolean));
  }
  return posix.join(root, ...resolved);
}

/** Like resolveInRoot but the last component itself is not followed (for lstat-like use). */
export async function resolveParentInRoot(root: string, path: string): Promise<string> {
  const normal = posix.normalize(`/${path}`);
  if (normal === '/') return root;
  const parent = await resolveInRoot(root, posix.dirname(normal));
  return posix.join(parent, posix.basename(normal));
}

/** A file named by the build (Dockerfile, .dockerignore) whose symlinks lead out of the directory it must stay in. */
export class LinkEscapeError extends Error {
  constructor(readonly path: string, readonly dir: string) {
    super(`${path} is a symbolic link that leads out of ${dir}; it is not read`);
  }
}

/**
 * The real path of `path`, which must lie inside `dir` once every symlink is
 * followed: a repository whose Dockerfile or .dockerignore links to
 * `~/.docker/config.json` must not get the runner's credentials echoed in a
 * parse error. Errors of realpath (ENOENT …) pass through.
 */
export async function realpathWithin(path: string, dir: string): Promise<string> {
  const [real, realDir] = await Promise.all([realpath(path), realpath(dir)]);
  if (!real.startsWith(`${realDir === '/' ? '' : realDir}/`)) throw new LinkEscapeError(path, dir);
  return real;
}
