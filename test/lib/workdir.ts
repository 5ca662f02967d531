// Temporary directories owned by the test user.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { testEnv } from './env.js';

export type FileSpec =
  | string
  | Buffer
  | { content: string | Buffer; mode?: number }
  | { symlink: string }
  | { dir: true; mode?: number };

export interface WorkDir {
  /** The directory holding the files (use it as the build context and cwd). */
  dir: string;
  /** An empty directory, owned by the user, next to `dir`: pass it as `--root`. */
  root: string;
  /** Parent of `dir` and `root` (owned by the user); other scratch space goes here. */
  base: string;
  /** path.join(dir, rel) */
  path(rel: string): string;
  /** Removes everything, including files created by containers under the user's subuids. */
  rm(): Promise<void>;
}

/** Where scratch directories go: STOWAGE_TEST_TMP, else /tmp (not $TMPDIR, which may be private). */
export function scratchParent(): string {
  return process.env.STOWAGE_TEST_TMP || (os.platform() === 'linux' ? '/tmp' : os.tmpdir());
}

/** mkdtemp owned by the test user (mode 0755 so root-run helpers and the user can both use it). */
export async function makeUserTempDir(prefix = 'stowage-e2e-'): Promise<string> {
  const e = testEnv();
  const d = await fs.mkdtemp(path.join(scratchParent(), prefix));
  await fs.chmod(d, 0o755);
  await fs.chown(d, e.uid, e.gid);
  return d;
}

/**
 * Creates `<base>/ctx` with FILES (relative paths → content; parents are created)
 * and an empty `<base>/root`, all owned by the test user.
 */
export async function makeWorkDir(files: Record<string, FileSpec> = {}): Promise<WorkDir> {
  const e = testEnv();
  const base = await makeUserTempDir();
  const dir = path.join(base, 'ctx');
  const root = path.join(base, 'root');
  await fs.mkdir(dir, { mode: 0o755 });
  await fs.mkdir(root, { mode: 0o700 });
  for (const [rel, spec] of Object.entries(files)) {
    if (path.isAbsolute(rel) || rel.split('/').includes('..')) throw new Error(`makeWorkDir: bad path ${rel}`);
    const p = path.join(dir, rel);
    await fs.mkdir(path.dirname(p), { recursive: true, mode: 0o755 });
    if (typeof spec === 'string' || Buffer.isBuffer(spec)) {
      await fs.writeFile(p, spec, { mode: 0o644 });
    } else if ('symlink' in spec) {
      await fs.symlink(spec.symlink, p);
    } else if ('dir' in spec) {
      await fs.mkdir(p, { recursive: true });
      await fs.chmod(p, spec.mode ?? 0o755);
    } else {
      await fs.writeFile(p, spec.content);
      await fs.chmod(p, spec.mode ?? 0o644);
    }
  }
  await chownTree(base, e.uid, e.gid);
  return {
    dir,
    root,
    base,
    path: (rel: string) => path.join(dir, rel),
    rm: () => removeTree(base),
  };
}

/** lchown -R */
export async function chownTree(p: string, uid: number, gid: number): Promise<void> {
  await fs.lchown(p, uid, gid);
  const st = await fs.lstat(p);
  if (!st.isDirectory()) return;
  for (const n of await fs.readdir(p)) await chownTree(path.join(p, n), uid, gid);
}

/**
 * rm -rf as root. Directories left without write/execute permission (e.g. by a
 * container running as a subuid) are no obstacle for root; immutable files are.
 */
export async function removeTree(p: string): Promise<void> {
  await fs.rm(p, { recursive: true, force: true, maxRetries: 3 });
}
