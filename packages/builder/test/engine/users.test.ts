import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveOwner, resolveUser } from '../../src/engine/users.js';

let root: string;

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  '# a comment',
  'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
  'app:x:1000:1000:App:/home/app:/bin/sh',
  'nohome:x:1001:1002::/:/bin/sh',
  'toor:x:0:0:alt root:/:/bin/sh',
  '',
].join('\n');

const GROUP = [
  'root:x:0:',
  'daemon:x:1:',
  'wheel:x:10:app,other',
  'app:x:1000:',
  'docker:x:999:app',
  'staff:x:50:other',
  'nohome:x:1002:nohome',
  '',
].join('\n');

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-users-'));
  await mkdir(join(root, 'etc'));
  await writeFile(join(root, 'etc/passwd'), PASSWD);
  await writeFile(join(root, 'etc/group'), GROUP);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('resolveUser', () => {
  test('by name: uid, primary gid, home and supplementary groups', async () => {
    expect(await resolveUser(root, 'app')).toEqual({ uid: 1000, gid: 1000, home: '/home/app', additionalGids: [10, 999] });
  });

  test('by numeric uid found in passwd', async () => {
    expect(await resolveUser(root, '1000')).toEqual({ uid: 1000, gid: 1000, home: '/home/app', additionalGids: [10, 999] });
    expect(await resolveUser(root, '1')).toEqual({ uid: 1, gid: 1, home: '/usr/sbin', additionalGids: [] });
  });

  test('root has home /root', async () => {
    expect(await resolveUser(root, 'root')).toEqual({ uid: 0, gid: 0, home: '/root', additionalGids: [] });
    expect(await resolveUser(root, '0')).toMatchObject({ uid: 0, gid: 0, home: '/root' });
    expect(await resolveUser(root, 'toor')).toMatchObject({ uid: 0, home: '/root' });
  });

  test('name:group sets the primary group and no supplementary ones', async () => {
    expect(await resolveUser(root, 'app:docker')).toEqual({ uid: 1000, gid: 999, home: '/home/app', additionalGids: [] });
  });

  test('uid:gid numeric, both not in the files', async () => {
    expect(await resolveUser(root, '4242:4343')).toEqual({ uid: 4242, gid: 4343, home: '/', additionalGids: [] });
    expect(await resolveUser(root, '1000:50')).toMatchObject({ uid: 1000, gid: 50, additionalGids: [] });
  });

  test('numeric uid not in passwd is allowed with gid 0', async () => {
    expect(await resolveUser(root, '12345')).toEqual({ uid: 12345, gid: 0, home: '/', additionalGids: [] });
  });

  test('unknown user name is an error', async () => {
    await expect(resolveUser(root, 'ghost')).rejects.toThrow(/unable to find user ghost/);
  });

  test('unknown group name is an error', async () => {
    await expect(resolveUser(root, 'app:ghosts')).rejects.toThrow(/unable to find group ghosts/);
  });

  test('a supplementary group equal to the primary one is not repeated', async () => {
    expect(await resolveUser(root, 'nohome')).toEqual({ uid: 1001, gid: 1002, home: '/', additionalGids: [] });
  });

  test('without /etc/passwd only numeric users work', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'stowage-users-empty-'));
    try {
      expect(await resolveUser(empty, '0')).toEqual({ uid: 0, gid: 0, home: '/root', additionalGids: [] });
      expect(await resolveUser(empty, '5:6')).toEqual({ uid: 5, gid: 6, home: '/', additionalGids: [] });
      await expect(resolveUser(empty, 'app')).rejects.toThrow(/unable to find user app/);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  test('/etc/passwd is read inside the root even through an absolute symlink', async () => {
    const other = await mkdtemp(join(tmpdir(), 'stowage-users-link-'));
    try {
      await mkdir(join(other, 'data'));
      await writeFile(join(other, 'data/passwd'), 'svc:x:77:88::/srv:/bin/sh\n');
      await symlink('/data', join(other, 'etc'));
      expect(await resolveUser(other, 'svc')).toMatchObject({ uid: 77, gid: 88, home: '/srv' });
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});

describe('resolveOwner (COPY --chown, WORKDIR under USER: BuildKit\'s file-operation rules)', () => {
  test('a bare uid is uid:uid, not the passwd group (the reference: the UID is used as GID)', async () => {
    expect(await resolveOwner(root, '1234')).toEqual({ uid: 1234, gid: 1234 });
    expect(await resolveOwner(root, '1001')).toEqual({ uid: 1001, gid: 1001 });
  });
  test('a bare name takes its passwd group', async () => {
    expect(await resolveOwner(root, 'nohome')).toEqual({ uid: 1001, gid: 1002 });
  });
  test('user:group by names and ids', async () => {
    expect(await resolveOwner(root, 'app:wheel')).toEqual({ uid: 1000, gid: 10 });
    expect(await resolveOwner(root, '7:8')).toEqual({ uid: 7, gid: 8 });
    expect(await resolveOwner(root, '7:docker')).toEqual({ uid: 7, gid: 999 });
  });
  test('unknown names fail', async () => {
    await expect(resolveOwner(root, 'ghost')).rejects.toThrow(/unable to find user ghost/);
    await expect(resolveOwner(root, 'app:ghosts')).rejects.toThrow(/unable to find group ghosts/);
  });
});
