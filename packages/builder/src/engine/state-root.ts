import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { lockScope } from '@stowage/registry-client';
import { reapContainers } from '../runtime/reap.js';
import { isProcessAlive } from '@stowage/registry-client';

/** Default `--root`: `$XDG_DATA_HOME/stowage`, else `~/.local/share/stowage`. */
export function defaultStateRoot(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME;
  return xdg ? join(xdg, 'stowage') : join(homedir(), '.local', 'share', 'stowage');
}

export interface StateRoot {
  root: string;
  content: string;
  snapshots: string;
  /** `RUN --mount=type=cache` directories, kept across builds (engine/cache-mounts.ts). */
  cacheMounts: string;
  /** This build's scratch space (runc state, bundles, export staging); removed at the end. */
  buildTmp: string;
  /** Names the root's locks (its real path): every build on this root contends for the same ones. */
  lockScope: string;
}


/**
 * Creates the state layout and this build's temporary directory, and removes
 * temporary directories of builds that died (their pid is in the name), so a
 * killed build never leaves litter for the next one. A container such a
 * build left running is killed first (its runc state is in that directory).
 */
export async function openStateRoot(root: string): Promise<StateRoot> {
  const tmp = join(root, 'tmp');
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  for (const dir of await staleBuildDirs(root)) {
    // A build killed mid-RUN leaves its container running: kill and delete it before its scratch space goes.
    await reapContainers(join(dir, 'runc'));
    await rm(dir, { recursive: true, force: true });
  }
  const buildTmp = await mkdtemp(join(tmp, `build-${process.pid}-`));
  return { root, content: join(root, 'content'), snapshots: join(root, 'snapshots'), cacheMounts: join(root, 'cache-mounts'), buildTmp, lockScope: await lockScope(root) };
}

/** `tmp/build-<pid>-*` directories of builds that are gone. */
export async function staleBuildDirs(root: string): Promise<string[]> {
  const tmp = join(root, 'tmp');
  const out: string[] = [];
  for (const name of await readdir(tmp).catch(() => [] as string[])) {
    const pid = Number(/^build-(\d+)-/.exec(name)?.[1]);
    if (Number.isInteger(pid) && pid !== process.pid && !isProcessAlive(pid)) out.push(join(tmp, name));
  }
  return out;
}
