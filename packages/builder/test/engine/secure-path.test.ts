import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveInRoot, resolveParentInRoot } from '../../src/engine/secure-path.js';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-secure-'));
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await writeFile(join(root, 'usr/bin/tool'), '');
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('resolveInRoot', () => {
  test('plain paths are joined to root', async () => {
    expect(await resolveInRoot(root, '/usr/bin/tool')).toBe(join(root, 'usr/bin/tool'));
    expect(await resolveInRoot(root, 'usr/bin')).toBe(join(root, 'usr/bin'));
    expect(await resolveInRoot(root, '/')).toBe(root);
    expect(await resolveInRoot(root, '')).toBe(root);
  });

  test('an absolute symlink restarts at root', async () => {
    await symlink('/usr/bin', join(root, 'bin'));
    expect(await resolveInRoot(root, '/bin/tool')).toBe(join(root, 'usr/bin/tool'));
    await symlink('/', join(root, 'slash'));
    expect(await resolveInRoot(root, '/slash/usr')).toBe(join(root, 'usr'));
  });

  test('an absolute symlink to a host directory is clamped into root', async () => {
    await symlink('/etc', join(root, 'hostetc'));
    expect(await resolveInRoot(root, '/hostetc/passwd')).toBe(join(root, 'etc/passwd'));
    // inside the root, a link to its own absolute path is a loop, not the host's /etc
    await symlink('/etc', join(root, 'etc'));
    await expect(resolveInRoot(root, '/etc/passwd')).rejects.toThrow(/symbolic links/);
  });

  test('.. cannot go above root, neither in the path nor in a link target', async () => {
    expect(await resolveInRoot(root, '/../../../etc/passwd')).toBe(join(root, 'etc/passwd'));
    expect(await resolveInRoot(root, 'usr/../../..')).toBe(root);
    await symlink('../../../../..', join(root, 'usr/bin/up'));
    expect(await resolveInRoot(root, '/usr/bin/up')).toBe(root);
    expect(await resolveInRoot(root, '/usr/bin/up/etc/shadow')).toBe(join(root, 'etc/shadow'));
  });

  test('relative link targets resolve from the link directory', async () => {
    await symlink('bin/tool', join(root, 'usr/t'));
    expect(await resolveInRoot(root, '/usr/t')).toBe(join(root, 'usr/bin/tool'));
    await symlink('../usr/bin', join(root, 'usr/bin2'));
    expect(await resolveInRoot(root, '/usr/bin2/tool')).toBe(join(root, 'usr/bin/tool'));
  });

  test('chains of links are followed', async () => {
    await symlink('/b', join(root, 'a'));
    await symlink('c', join(root, 'b'));
    await symlink('usr/bin', join(root, 'c'));
    expect(await resolveInRoot(root, '/a/tool')).toBe(join(root, 'usr/bin/tool'));
  });

  test('a symlink loop is an error', async () => {
    await symlink('loop2', join(root, 'loop1'));
    await symlink('/loop1', join(root, 'loop2'));
    await expect(resolveInRoot(root, '/loop1/x')).rejects.toThrow(/too many levels of symbolic links/);
    await symlink('self', join(root, 'self'));
    await expect(resolveInRoot(root, '/self')).rejects.toThrow(/symbolic links/);
  });

  test('missing components are kept as written, after resolved ones', async () => {
    await symlink('/usr/bin', join(root, 'bin'));
    expect(await resolveInRoot(root, '/bin/new/deeper/file')).toBe(join(root, 'usr/bin/new/deeper/file'));
    expect(await resolveInRoot(root, '/nothing/here')).toBe(join(root, 'nothing/here'));
  });

  test('a dangling link resolves to where its target would be', async () => {
    await symlink('/opt/missing', join(root, 'dangling'));
    expect(await resolveInRoot(root, '/dangling')).toBe(join(root, 'opt/missing'));
  });
});

describe('resolveParentInRoot', () => {
  test('does not follow the last component', async () => {
    await symlink('/usr/bin', join(root, 'bin'));
    expect(await resolveParentInRoot(root, '/bin')).toBe(join(root, 'bin'));
    expect(await resolveParentInRoot(root, '/bin/tool')).toBe(join(root, 'usr/bin/tool'));
    expect(await resolveParentInRoot(root, '/')).toBe(root);
  });
});
