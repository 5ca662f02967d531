/**
 * Shared harness for the rootless snapshotter tests: an unprivileged user (`stowage-ci`, created
 * by scripts/setup), a work dir it owns, a script bundled into that dir (the checkout may sit where
 * the user cannot read, e.g. CI clones under /root), run as that user inside a new user + mount
 * namespace where it is root.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { buildSync } from 'esbuild';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The unprivileged test user (as in scripts/setup). */
export const ROOTLESS_USER = 'stowage-ci';

const here = dirname(fileURLToPath(import.meta.url)); // packages/snapshotter/dist/test

export interface UserInfo {
  uid: number;
  gid: number;
  home: string;
}

/** The user's passwd entry (`getent passwd`), or undefined when there is no such user. */
export function lookupUser(name: string): UserInfo | undefined {
  const r = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  const f = r.status === 0 ? r.stdout.trim().split(':') : [];
  if (f.length < 7) return undefined;
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] as string };
}

/** A fresh temp dir (mode 755) owned by `user`; removed again if handing it over fails. */
export function makeUserWorkDir(prefix: string, user: Pick<UserInfo, 'uid' | 'gid'>): string {
  const work = mkdtempSync(join(tmpdir(), prefix));
  try {
    chownSync(work, user.uid, user.gid);
    chmodSync(work, 0o755);
  } catch (err) {
    rmSync(work, { recursive: true, force: true });
    throw err;
  }
  return work;
}

/**
 * Bundle a compiled test script (`entryJs`, relative to this directory unless absolute) with its
 * dependencies into one ESM file at `outfile`, with `require` available for CJS dependencies.
 */
export function bundleScript(entryJs: string, outfile: string): string {
  buildSync({
    entryPoints: [resolve(here, entryJs)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    logLevel: 'error',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  return outfile;
}

export interface RunOptions {
  timeoutMs: number;
  /** Defaults to ROOTLESS_USER. */
  user?: string;
  cwd?: string;
  maxBuffer?: number;
}

/**
 * `runuser -u <user> -- unshare --user --mount --map-root-user --map-auto -- node <script> <args…>`:
 * the script runs unprivileged, as root of its own user namespace.
 */
export function runInUserNamespace(script: string, args: readonly string[], opts: RunOptions): SpawnSyncReturns<string> {
  return spawnSync(
    'runuser',
    ['-u', opts.user ?? ROOTLESS_USER, '--', 'unshare', '--user', '--mount', '--map-root-user', '--map-auto', '--', process.execPath, script, ...args],
    {
      encoding: 'utf8',
      timeout: opts.timeoutMs,
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      ...(opts.maxBuffer !== undefined ? { maxBuffer: opts.maxBuffer } : {}),
    },
  );
}
