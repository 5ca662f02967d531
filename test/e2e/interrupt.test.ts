// SIGINT/SIGTERM during a RUN step stop the build cleanly: the container is
// killed, the exit code is 130/143, the build's scratch space is gone, and
// the next build on the same --root works.
import { spawn, spawnSync } from 'node:child_process';
import { access, readdir } from 'node:fs/promises';
import path from 'node:path';
import { makeWorkDir, runStowage, testEnv, userBaseEnv, type WorkDir } from '../lib/index.js';

const T = 300_000;
const DOCKERFILE = 'FROM busybox\nARG SLEEP=60\nRUN echo started && sleep $SLEEP && echo finished > /done\n';

/** Starts a build as the test user and resolves with its exit code once `signal` was sent after "started". */
function buildAndInterrupt(work: WorkDir, root: string, signal: NodeJS.Signals, out: string): Promise<{ code: number | null; output: string }> {
  const e = testEnv();
  const env = Object.entries(userBaseEnv()).map(([k, v]) => `${k}=${v}`);
  const child = spawn('setpriv', [`--reuid=${e.uid}`, `--regid=${e.gid}`, '--init-groups', '--', 'env', '-i', ...env,
    e.nodePath, e.cliPath, 'build', '--root', root, '--registry-mirror', `docker.io=${e.registry}`, '-o', out, '.'], { cwd: work.dir });
  let output = '';
  let sent = false;
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    if (!sent && /#\d+ started/.test(output)) {
      sent = true;
      child.kill(signal);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, output })));
}

/** The step's `sleep 60`, if still alive: container root is the test user's own uid on the host. */
function leftoverSleep(uid: number): string {
  return spawnSync('pgrep', ['-u', String(uid), '-f', 'sleep 60'], { encoding: 'utf8' }).stdout.trim();
}

describe('interrupting a build', () => {
  let work: WorkDir;
  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: DOCKERFILE });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  for (const [signal, expected] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    test(`${signal}: exit ${expected}, container gone, no scratch left, the root still works`, async () => {
      const root = path.join(work.base, `root-${signal}`);
      const out = `${signal}.tar`;
      const r = await buildAndInterrupt(work, root, signal, out);
      expect(r.output).toContain(`interrupted (${signal})`);
      expect(r.code).toBe(expected);
      expect(leftoverSleep(testEnv().uid)).toBe('');
      expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
      expect(await access(work.path(out)).then(() => true, () => false)).toBe(false);
      const again = await runStowage(['build', '--root', root, '--registry-mirror', `docker.io=${testEnv().registry}`, '--build-arg', 'SLEEP=0', '-o', out, '.'], { cwd: work.dir, timeoutMs: T });
      expect({ code: again.code, stderr: again.code === 0 ? '' : again.stderr }).toEqual({ code: 0, stderr: '' });
    }, T);
  }
});
