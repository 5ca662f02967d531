// Started by real root (as CI runners often are), stowage still builds inside
// a user namespace: RUN sees an identity map of 65536 ids, not the host's
// full range, so the step holds no privilege over the host.
import path from 'node:path';
import { makeWorkDir, run, runImage, testEnv, unpackOciTar, type WorkDir } from '../lib/index.js';

const T = 300_000;

describe('started as root', () => {
  let work: WorkDir;
  beforeAll(async () => {
    work = await makeWorkDir({
      Dockerfile: 'FROM busybox AS base\nRUN cat /proc/self/uid_map > /uidmap && chown 1000:1000 /uidmap\nFROM scratch\nCOPY --from=base /uidmap /uidmap\nCOPY --from=base /bin/busybox /bin/busybox\n',
    });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('builds, sandboxing RUN in a user namespace', async () => {
    const e = testEnv();
    const r = await run([e.nodePath, e.cliPath, 'build', '--root', path.join(work.base, 'root-as-root'), '--registry-mirror', `docker.io=${e.registry}`, '-o', 'root.tar', '.'], { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    const img = await unpackOciTar(work.path('root.tar'), path.join(work.base, 'layout'));
    const uidmap = img.layers[0]!.entries.find((entry) => entry.path === 'uidmap')!;
    // COPY --from keeps the owner the file has in the stage, as BuildKit does (moby#38599).
    expect([uidmap.uid, uidmap.gid]).toEqual([1000, 1000]);
    const out = await runImage(work.path('root.tar'), { args: ['/bin/busybox', 'cat', '/uidmap'] });
    expect(out.stdout.trim().split(/\s+/)).toEqual(['0', '0', '65536']);
  }, T);
});
