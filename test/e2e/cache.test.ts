// The build cache on --root: an unchanged rebuild runs nothing and gives the
// same image digest; a context change reruns what reads the context, and a
// step whose parent filesystem came out the same stays cached.
import { readFile, writeFile } from 'node:fs/promises';
import { makeWorkDir, runStowage, testEnv, type WorkDir } from '../lib/index.js';

const T = 300_000;
const DOCKERFILE = `FROM busybox
COPY a.txt /a
RUN cat /a > /b && date +%s%N > /ran-at
COPY b.txt /c
`;

describe('build cache', () => {
  let work: WorkDir;
  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: DOCKERFILE, 'a.txt': 'a\n', 'b.txt': 'b\n' });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  const build = async (extra: string[] = []) => {
    // Outputs go next to the context, not into it: the context digest covers every file in it.
    const r = await runStowage(['build', '--root', work.root, '--registry-mirror', `docker.io=${testEnv().registry}`, '--iidfile', `${work.base}/iid`, ...extra, '-o', `${work.base}/out.tar`, '.'], { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    // Which steps were cached, by their progress label.
    const labels = new Map<string, string>();
    for (const m of r.stderr.matchAll(/^#(\d+) (\[.*)$/gm)) labels.set(m[1]!, m[2]!);
    const cached = [...r.stderr.matchAll(/^#(\d+) CACHED$/gm)].map((m) => labels.get(m[1]!)!.replace(/^\[\S+ \d+\/\d+\] /, ''));
    return { cached, iid: await readFile(`${work.base}/iid`, 'utf8') };
  };

  test('cold, then unchanged: every step cached and the same image', async () => {
    const cold = await build();
    expect(cold.cached).toEqual([]);
    const warm = await build();
    expect(warm.cached).toEqual(['COPY a.txt /a', 'RUN cat /a > /b && date +%s%N > /ran-at', 'COPY b.txt /c']);
    expect(warm.iid).toBe(cold.iid);
  }, T);

  test('a changed context file reruns the context copies; the RUN on an identical filesystem stays cached', async () => {
    const before = await build();
    await writeFile(work.path('b.txt'), 'changed\n');
    const after = await build();
    expect(after.cached).toEqual(['RUN cat /a > /b && date +%s%N > /ran-at']);
    expect(after.iid).not.toBe(before.iid);
  }, T);

  test('--no-cache runs every step', async () => {
    const r = await build(['--no-cache']);
    expect(r.cached).toEqual([]);
  }, T);
});
