/**
 * overlayfs mounting via mount(8) (Node has no mount syscall).
 *
 * Mount options are passed with paths *relative* to the snapshot root (the mount
 * process runs with that cwd), roughly halving the lowerdir string: the kernel
 * limits the whole option string to one page.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MountError } from './errors.js';
import type { OverlayXattrNamespace } from './whiteout.js';

const execFileP = promisify(execFile);

/** Page size minus slack: the legacy mount(2) data argument is one page. */
export const MAX_MOUNT_OPTIONS = 4000;

/**
 * Lower dirs per overlay mount above a flattened snapshot. Flatten points sit at
 * chain depths that are multiples of this, so every chain through the same
 * snapshot shares them. 64 × ~46 bytes ("committed/<32 hex>/fs:") ≈ 3 KB.
 */
export const FLATTEN_STRIDE = 64;

let userNsCache: Promise<boolean> | undefined;

/** True in the initial user namespace (real root): uid_map is the identity over all ids. */
export function inInitialUserNs(): Promise<boolean> {
  userNsCache ??= readFile('/proc/self/uid_map', 'utf8').then(
    (m) => m.trim().split(/\s+/).join(' ') === '0 0 4294967295',
    () => true,
  );
  return userNsCache;
}

/** Which xattr namespace overlay uses for opaque/redirect markers here. */
export async function overlayXattrNamespace(): Promise<OverlayXattrNamespace> {
  return (await inInitialUserNs()) ? 'trusted' : 'user';
}

export interface OverlayMount {
  /** Lower dirs relative to `cwd`, nearest (topmost) first. */
  lowers: string[];
  upper?: string;
  work?: string;
  target: string;
  cwd: string;
}

export async function overlayOptions(m: OverlayMount): Promise<string> {
  const opts = [`lowerdir=${m.lowers.join(':')}`];
  if (m.upper !== undefined && m.work !== undefined) opts.push(`upperdir=${m.upper}`, `workdir=${m.work}`);
  if (await inInitialUserNs()) {
    // Keep the upper dir a plain "files + whiteouts + opaque" tree that diff can read:
    // no redirect xattrs for renamed dirs, no metadata-only copy-ups.
    opts.push('index=off', 'redirect_dir=off', 'metacopy=off');
  } else {
    // Inside a user namespace overlay only works with user.* xattrs (these
    // also imply redirect_dir/metacopy off; passing those explicitly is refused).
    opts.push('userxattr');
  }
  return opts.join(',');
}

/** Would this mount's option string fit the kernel's one-page limit? */
export async function fitsMountOptions(m: OverlayMount): Promise<boolean> {
  return (await overlayOptions(m)).length <= MAX_MOUNT_OPTIONS;
}

export async function mountOverlay(m: OverlayMount): Promise<void> {
  for (const p of [...m.lowers, m.upper ?? '', m.work ?? '']) {
    if (/[,:\\]/.test(p)) throw new MountError(`overlay path contains a reserved character: ${p}`);
  }
  const options = await overlayOptions(m);
  if (options.length > MAX_MOUNT_OPTIONS) {
    throw new MountError(
      `snapshot chain too deep for overlayfs: ${m.lowers.length} lower layers need ${options.length} bytes of mount options (limit ~${MAX_MOUNT_OPTIONS})`,
    );
  }
  try {
    await execFileP('mount', ['-t', 'overlay', 'overlay', '-o', options, m.target], { cwd: m.cwd });
  } catch (err) {
    const stderr = (err as { stderr?: unknown }).stderr;
    throw new MountError(`mounting overlay on ${m.target} failed: ${typeof stderr === 'string' ? stderr.trim() : String(err)}`, { cause: err });
  }
}

export async function unmount(target: string): Promise<void> {
  try {
    await execFileP('umount', [target]);
  } catch (err) {
    // Busy (a process still has a cwd inside): detach lazily so the state dir can be cleaned.
    try {
      await execFileP('umount', ['-l', target]);
    } catch {
      const stderr = (err as { stderr?: unknown }).stderr;
      throw new MountError(`unmounting ${target} failed: ${typeof stderr === 'string' ? stderr.trim() : String(err)}`, { cause: err });
    }
  }
}

/** Mount points at or below `prefix` in this mount namespace, deepest first. */
export async function mountsUnder(prefix: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of info.split('\n')) {
    const field = line.split(' ')[4];
    if (field === undefined) continue;
    const mp = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === prefix || mp.startsWith(`${prefix}/`)) out.push(mp);
  }
  return out.sort((a, b) => b.length - a.length);
}

/** Can we mount an overlay (with an upper dir) below `scratchDir`? */
export async function probeOverlay(scratchDir: string): Promise<boolean> {
  await mkdir(scratchDir, { recursive: true });
  const dirs = ['l1', 'l2', 'u', 'w', 'm'];
  for (const d of dirs) await mkdir(join(scratchDir, d));
  let mounted = false;
  try {
    await mountOverlay({ lowers: ['l1', 'l2'], upper: 'u', work: 'w', target: join(scratchDir, 'm'), cwd: scratchDir });
    mounted = true;
    return true;
  } catch {
    return false;
  } finally {
    if (mounted) await unmount(join(scratchDir, 'm')).catch(() => undefined);
    await rm(scratchDir, { recursive: true, force: true });
  }
}
