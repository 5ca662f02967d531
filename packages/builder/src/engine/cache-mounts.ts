import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { lockFile, type FileLock } from './file-lock.js';
import type { CacheMountSpec } from './mount-spec.js';
import { isProcessAlive } from '@stowage/registry-client';

const execFileAsync = promisify(execFile);

/** A cache directory handed to one RUN; `release` must be called when the step ends. */
export interface CacheLease {
  path: string;
  /** Shown in progress: which directory the step got (`shared`, `locked`, a fresh `private` one). */
  note: string;
  release(): Promise<void>;
}


/**
 * `RUN --mount=type=cache` directories, kept across builds on one --root:
 *
 *     cache-mounts/<sha256 of id>/id     the id, for people looking around
 *                                 data/  the cache contents, bound at the target
 *                                 lock   flock(2) target for locked and private sharing
 *
 * `shared` binds `data/` whoever else uses it. `locked` takes an exclusive
 * flock first, so one RUN at a time uses the id across concurrent stages and
 * concurrent stowage processes. `private` takes the same lock without
 * waiting and, when it is busy, gets a fresh empty directory of its own
 * (BuildKit: "a new mount if there are multiple writers") that is dropped
 * when the step ends. A new `data/` is made in a staging directory (mode,
 * owner, seed from `from`) and renamed in, so concurrent first uses agree.
 */
export class CacheMounts {
  constructor(private readonly root: string, private readonly scratch: string) {}

  private dirFor(id: string): string {
    return join(this.root, createHash('sha256').update(id).digest('hex'));
  }

  async acquire(spec: CacheMountSpec, opts: { seed?: () => Promise<string | undefined>; onWait?: () => void }): Promise<CacheLease> {
    const dir = this.dirFor(spec.id);
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(join(dir, 'id'), spec.id).catch(() => undefined);
    let lock: FileLock | undefined;
    if (spec.sharing === 'locked') {
      lock = await lockFile(join(dir, 'lock'), { wait: true, ...(opts.onWait ? { onWait: opts.onWait } : {}) });
    } else if (spec.sharing === 'private') {
      lock = await lockFile(join(dir, 'lock'), { wait: false });
      if (!lock) {
        const fresh = await mkdtemp(join(this.scratch, 'cache-private-'));
        await this.initDir(fresh, spec, opts.seed);
        return { path: fresh, note: 'private (in use elsewhere: a fresh directory)', release: () => rm(fresh, { recursive: true, force: true }) };
      }
    }
    try {
      const data = await this.ensureData(dir, spec, opts.seed);
      const held = lock;
      return { path: data, note: spec.sharing, release: async () => held?.release() };
    } catch (err) {
      await lock?.release();
      throw err;
    }
  }

  private async ensureData(dir: string, spec: CacheMountSpec, seed?: () => Promise<string | undefined>): Promise<string> {
    const data = join(dir, 'data');
    if ((await stat(data).catch(() => undefined))?.isDirectory()) return data;
    // Staging dirs of builds that died while making one.
    for (const name of await readdir(dir)) {
      const pid = Number(/^\.new-(\d+)-/.exec(name)?.[1]);
      if (Number.isInteger(pid) && pid !== process.pid && !isProcessAlive(pid)) await rm(join(dir, name), { recursive: true, force: true });
    }
    const staging = join(dir, `.new-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      await mkdir(staging);
      await this.initDir(staging, spec, seed);
      try {
        await rename(staging, data);
      } catch (err) {
        // Another build made it first: theirs is as good as ours.
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw err;
      }
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
    return data;
  }

  /** Mode and owner apply to a new cache directory only, as in BuildKit; `from` seeds it. */
  private async initDir(path: string, spec: CacheMountSpec, seed?: () => Promise<string | undefined>): Promise<void> {
    const from = seed ? await seed() : undefined;
    if (from !== undefined) {
      const isDir = (await stat(from)).isDirectory();
      if (isDir) await execFileAsync('cp', ['-a', '--reflink=auto', '--', `${from}/.`, `${path}/`]);
      else await execFileAsync('cp', ['-a', '--reflink=auto', '--', from, `${path}/`]);
    }
    await chmod(path, spec.mode);
    try {
      await chown(path, spec.uid, spec.gid);
    } catch (err) {
      throw new Error(`cannot give the cache directory to uid ${spec.uid} gid ${spec.gid}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (ids outside the build's user namespace mapping cannot own files)`);
    }
  }
}
