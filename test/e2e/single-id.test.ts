// A user with no /etc/subuid range: stowage falls back to a single-id user
// namespace (only root exists inside), says so, and still writes each file's
// real owner into the layers: owners of base files are kept in snapshot
// metadata, and COPY --chown is recorded rather than applied on disk.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { chownTree, makeWorkDir, run, runImage, testEnv, unpackOciTar, type WorkDir } from '../lib/index.js';

const T = 300_000;
const NOSUB = process.env.STOWAGE_TEST_NOSUB_USER || 'stowage-nosub';

const DOCKERFILE = `FROM busybox
RUN echo hi > /home/app/greeting && ls -ln /home/app/greeting /home > /listing
COPY --chown=app:app note.txt /home/app/note.txt
COPY --chown=1000:1000 data/ /srv/data/
`;

function lookup(user: string): { uid: number; gid: number; home: string } {
  const r = spawnSync('getent', ['passwd', user], { encoding: 'utf8' });
  const f = r.stdout.trim().split(':');
  if (r.status !== 0 || f.length < 7) throw new Error(`user ${user} does not exist: run scripts/setup`);
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
}

describe('single-id mapping (no subuid range)', () => {
  let work: WorkDir;
  const user = lookup(NOSUB);

  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: DOCKERFILE, 'user.Dockerfile': 'FROM busybox\nUSER app\nRUN id\n', 'note.txt': 'note\n', 'data/a.txt': 'a\n', 'data/sub/b.txt': 'b\n' });
    await chownTree(work.base, user.uid, user.gid);
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  const stowage = (args: string[]) => {
    const e = testEnv();
    return run(['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', 'env', '-i', `HOME=${user.home}`, `PATH=${path.dirname(e.nodePath)}:/usr/sbin:/usr/bin:/sbin:/bin`,
      e.nodePath, e.cliPath, 'build', '--registry-mirror', `docker.io=${e.registry}`, ...args], { cwd: work.dir, timeoutMs: T });
  };

  test('the user really has no subordinate ids', () => {
    const subuid = spawnSync('grep', ['-E', `^(${NOSUB}|${user.uid}):`, '/etc/subuid'], { encoding: 'utf8' });
    expect(subuid.stdout).toBe('');
  });

  for (const backend of ['overlay', 'native'] as const) test(`${backend}: builds, says the mode is on, and the layers carry the real owners`, async () => {
    const r = await stowage(['--snapshotter', backend, '--root', path.join(work.base, `root-${backend}`), '-o', `single-${backend}.tar`, '.']);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stderr).toMatch(/single-id mapping/);
    expect(r.stderr).toContain(`snapshotter ${backend}`);
    const img = await unpackOciTar(work.path(`single-${backend}.tar`), path.join(work.base, `layout-${backend}`));
    const [runLayer, note, data] = img.layers.slice(-3).map((l) => new Map(l.entries.map((e) => [e.path, e])));
    // /home/app belongs to app (1000) in the base image; the RUN step only added a file in it.
    expect(runLayer!.get('home/app')).toMatchObject({ type: 'Directory', uid: 1000, gid: 1000 });
    expect(runLayer!.get('home/app/greeting')).toMatchObject({ uid: 0, gid: 0 });
    expect(note!.get('home/app/note.txt')).toMatchObject({ uid: 1000, gid: 1000 });
    expect(data!.get('srv/data/a.txt')).toMatchObject({ uid: 1000, gid: 1000 });
    expect(data!.get('srv/data/sub/b.txt')).toMatchObject({ uid: 1000, gid: 1000 });
    expect(data!.get('srv/data/sub')).toMatchObject({ uid: 1000, gid: 1000 });
    // Inside the build only root exists, so a RUN step sees every file as root's.
    const listing = await runImage(work.path(`single-${backend}.tar`), { args: ['cat', '/listing'] });
    expect(listing.stdout).toMatch(/ 0 +0 .*greeting/);
  }, T);

  test('RUN as another user cannot work without subordinate ids: a clear error with the line', async () => {
    const r = await stowage(['--root', work.root, '-f', 'user.Dockerfile', '-o', 'user.tar', '.']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/error: user\.Dockerfile:3: .*USER app.*single-id/i);
  }, T);
});
