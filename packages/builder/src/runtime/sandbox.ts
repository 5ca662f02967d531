import { lstat } from 'node:fs/promises';
import { release as osRelease } from 'node:os';
import { posix } from 'node:path';
import { SandboxError } from '../errors.js';
import { resolveInRoot } from '../engine/secure-path.js';

/**
 * Checks stowage makes on a step's rootfs before handing it to runc, for what
 * runc itself does not guard against. See docs/reliability.md, "Sandbox".
 */

/** Where runc mounts the container's kernel filesystems. */
const KERNEL_DIRS = ['dev', 'proc', 'sys'] as const;

/**
 * Refuses a rootfs whose /dev, /proc or /sys is a symlink or not a directory.
 *
 * runc 1.1 (Debian 12 ships 1.1.5) mounts /dev inside the rootfs safely, but
 * then creates /dev/ptmx and the /dev/fd, /dev/stdin… symlinks with a plain
 * path join before pivot_root: with /dev a symlink, the kernel follows it on
 * the host, so an image with `/dev -> /home/user/x` made runc delete and
 * replace files in the user's home (verified: test/e2e/sandbox.test.ts).
 * runc already refuses a symlinked /proc, and a symlinked /sys only misplaces
 * the mount inside the rootfs, but none of the three has a legitimate use, so
 * one clear error covers them all.
 */
export async function assertKernelDirs(rootfs: string): Promise<void> {
  for (const name of KERNEL_DIRS) {
    let st;
    try {
      st = await lstat(posix.join(rootfs, name));
    } catch {
      continue; // Missing: runc creates a real directory.
    }
    if (st.isSymbolicLink()) {
      throw new SandboxError(`the image's /${name} is a symbolic link: RUN refused, runc would follow it outside the image when it sets up /${name}`);
    }
    if (!st.isDirectory()) throw new SandboxError(`the image's /${name} is not a directory: RUN refused`);
  }
}

/**
 * Refuses a working directory that, resolved inside the image, lies in the
 * container's /proc, /dev or /sys.
 *
 * Defence in depth for CVE-2024-21626: an unpatched runc leaked a host
 * directory fd into the container's init, and `WORKDIR /proc/self/fd/7` made
 * the step start with its cwd on the host. Debian's 1.1.5+ds1-1+deb12u1 has
 * the fix, but stowage does not rely on which runc is installed: nothing a
 * build needs lives there. The path is resolved as runc would (symlinks in
 * the image followed, never leaving it), so a symlink to /proc/self/fd/N is
 * caught too; links that exist only inside the running container (/dev/fd,
 * /proc/self) are all under those three directories. Extra mounts are not
 * looked into: a symlink inside a bind-mounted directory is resolved against
 * the image here, not against the mount.
 */
export async function assertSafeCwd(rootfs: string, cwd: string): Promise<void> {
  const resolved = posix.relative(rootfs, await resolveInRoot(rootfs, cwd));
  const top = resolved.split('/')[0];
  if (top !== undefined && (KERNEL_DIRS as readonly string[]).includes(top)) {
    throw new SandboxError(`working directory ${cwd} is inside the container's /${top}: RUN refused (a step must not start in a kernel filesystem, see CVE-2024-21626)`);
  }
}

/**
 * Where runc will put the mount point for `dest`: runc resolves it inside the
 * rootfs (github.com/cyphar/filepath-securejoin), so this does too, instead
 * of letting the host kernel follow an image symlink to a host path.
 */
export async function mountPointInRoot(rootfs: string, dest: string): Promise<string> {
  return posix.relative(rootfs, await resolveInRoot(rootfs, dest));
}

/** True when no component of `rel` under `rootfs` is a symlink now, so a host path operation stays inside. */
export async function plainPathInRoot(rootfs: string, rel: string): Promise<boolean> {
  return (await resolveInRoot(rootfs, rel)) === posix.join(rootfs, rel);
}

/**
 * Whether runc can apply `rro` (recursive read-only, via mount_setattr(2),
 * Linux 5.12). runc 1.1 fails the whole container when the syscall is
 * missing, so older kernels keep the plain `ro` (top mount only).
 */
export function kernelHasMountSetattr(release: string = osRelease()): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return false;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return major > 5 || (major === 5 && minor >= 12);
}
