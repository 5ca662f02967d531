import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SandboxError } from '../../src/errors.js';
import { assertKernelDirs, assertSafeCwd, kernelHasMountSetattr, mountPointInRoot, plainPathInRoot } from '../../src/runtime/sandbox.js';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-sandbox-'));
  for (const d of ['dev', 'proc', 'sys', 'etc', 'work']) await mkdir(join(root, d));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('assertKernelDirs', () => {
  test('real or missing /dev, /proc, /sys pass', async () => {
    await expect(assertKernelDirs(root)).resolves.toBeUndefined();
    await rm(join(root, 'sys'), { recursive: true });
    await expect(assertKernelDirs(root)).resolves.toBeUndefined();
  });

  for (const name of ['dev', 'proc', 'sys']) {
    test(`a symlinked /${name} is refused with E_SANDBOX, whatever the target`, async () => {
      await rm(join(root, name), { recursive: true });
      await symlink(name === 'dev' ? '../../../../home/someone' : '/tmp/evil', join(root, name));
      const err = await assertKernelDirs(root).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SandboxError);
      expect(err).toMatchObject({ code: 'E_SANDBOX', message: expect.stringContaining(`/${name} is a symbolic link`) });
    });
  }

  test('a /dev that is a file is refused', async () => {
    await rm(join(root, 'dev'), { recursive: true });
    await writeFile(join(root, 'dev'), '');
    await expect(assertKernelDirs(root)).rejects.toThrow(/\/dev is not a directory/);
  });
});

describe('assertSafeCwd', () => {
  test('ordinary working directories pass, also missing ones', async () => {
    for (const cwd of ['/', '/work', '/does/not/exist', '/devices', '/process']) await expect(assertSafeCwd(root, cwd)).resolves.toBeUndefined();
  });

  test('a cwd in /proc, /dev or /sys is refused (CVE-2024-21626: WORKDIR /proc/self/fd/N)', async () => {
    for (const cwd of ['/proc/self/fd/7', '/proc', '/dev/fd/3', '/sys/fs/cgroup', '/work/../proc/1/cwd']) {
      await expect(assertSafeCwd(root, cwd)).rejects.toMatchObject({ code: 'E_SANDBOX' });
    }
  });

  test('symlinks in the image that lead there are followed inside the image and refused', async () => {
    await symlink('/proc/self/fd/7', join(root, 'fd7'));
    await symlink('../dev', join(root, 'work/d'));
    await expect(assertSafeCwd(root, '/fd7')).rejects.toThrow(/\/fd7 is inside the container's \/proc/);
    await expect(assertSafeCwd(root, '/work/d/fd/4')).rejects.toThrow(/inside the container's \/dev/);
  });
});

describe('mount point helpers', () => {
  test('a mount destination behind an image symlink resolves inside the rootfs, not on the host', async () => {
    await symlink('/home/user/evil-hosts', join(root, 'etc/hosts'));
    await symlink('/home/user', join(root, 'etc2'));
    expect(await mountPointInRoot(root, '/etc/hosts')).toBe('home/user/evil-hosts');
    expect(await mountPointInRoot(root, '/etc2/resolv.conf')).toBe('home/user/resolv.conf');
    expect(await mountPointInRoot(root, '/etc/resolv.conf')).toBe('etc/resolv.conf');
  });

  test('plainPathInRoot is false once any component is a symlink', async () => {
    await writeFile(join(root, 'etc/hosts'), '');
    expect(await plainPathInRoot(root, '/etc/hosts')).toBe(true);
    expect(await plainPathInRoot(root, '/etc/missing')).toBe(true);
    await rm(join(root, 'etc'), { recursive: true });
    await symlink('/tmp', join(root, 'etc'));
    expect(await plainPathInRoot(root, '/etc/hosts')).toBe(false);
  });
});

test('kernelHasMountSetattr: 5.12 and later', () => {
  expect(kernelHasMountSetattr('5.11.0-1-amd64')).toBe(false);
  expect(kernelHasMountSetattr('5.12.0')).toBe(true);
  expect(kernelHasMountSetattr('6.1.0-18-amd64')).toBe(true);
  expect(kernelHasMountSetattr('4.19.0')).toBe(false);
  expect(kernelHasMountSetattr('garbage')).toBe(false);
});
