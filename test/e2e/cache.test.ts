// The build cache on --root: an unchanged rebuild runs nothing and gives the
// same image digest; a context change reruns only the steps that read the
// changed file and those after them; a step whose parent filesystem came out
// the same stays cached.
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

  test('a changed context file reruns only the copy that reads it', async () => {
    const before = await build();
    await writeFile(work.path('b.txt'), 'changed\n');
    const after = await build();
    expect(after.cached).toEqual(['COPY a.txt /a', 'RUN cat /a > /b && date +%s%N > /ran-at']);
    expect(after.iid).not.toBe(before.iid);
  }, T);

  test('--no-cache runs every step', async () => {
    const r = await build(['--no-cache']);
    expect(r.cached).toEqual([]);
  }, T);
});

// Per-source keys and miss explanations over two stages: each step says why it ran.
const MULTI = `FROM busybox AS deps
ARG VERSION=1
COPY lib/ /lib-src/
RUN cat /lib-src/* > /deps.txt && echo "$VERSION" >> /deps.txt
FROM busybox AS app
COPY src/ /src/
RUN cat /src/* > /app.txt
COPY --from=deps /deps.txt /deps.txt
`;

describe('cache keys per source, and why a step missed', () => {
  let work: WorkDir;
  beforeAll(async () => {
    work = await makeWorkDir({
      Dockerfile: MULTI, '.dockerignore': '**/*.log\n', 'lib/a.txt': 'lib\n', 'src/app.c': 'app\n', 'src/util.c': 'util\n',
      'notes.md': 'not read by any step\n', 'debug.log': 'ignored\n',
    });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  /** Each step's label (without the `[stage n/m]` prefix) → 'CACHED' or its miss reason. */
  const build = async (extra: string[] = []) => {
    const r = await runStowage(['build', '--root', work.root, '--registry-mirror', `docker.io=${testEnv().registry}`, '--progress', 'plain',
      '--iidfile', `${work.base}/iid`, ...extra, '-o', `${work.base}/out.tar`, '.'], { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    const labels = new Map<string, string>();
    for (const m of r.stderr.matchAll(/^#(\d+) \[(\S+) \d+\/\d+\] (.*)$/gm)) labels.set(m[1]!, `${m[2]}: ${m[3]}`);
    const steps: Record<string, string> = {};
    for (const m of r.stderr.matchAll(/^#(\d+) (CACHED|cache miss: (.*))$/gm)) steps[labels.get(m[1]!)!] = m[3] ?? 'CACHED';
    return { steps, iid: await readFile(`${work.base}/iid`, 'utf8') };
  };

  test('cold: every step says it never ran here', async () => {
    const { steps } = await build();
    expect(Object.keys(steps)).toHaveLength(5);
    for (const reason of Object.values(steps)) expect(reason).toBe('no earlier build of this step on this --root');
  }, T);

  test('files no step reads, and ignored files, change nothing', async () => {
    const before = await build();
    await writeFile(work.path('notes.md'), 'edited\n');
    await writeFile(work.path('debug.log'), 'edited\n');
    await writeFile(work.path('lib/b.log'), 'ignored too\n');
    const after = await build();
    expect(Object.values(after.steps).every((s) => s === 'CACHED')).toBe(true);
    expect(after.iid).toBe(before.iid);
  }, T);

  test('one source file changed: only its readers rerun, and they name it', async () => {
    await writeFile(work.path('src/app.c'), 'app v2\n');
    const { steps } = await build();
    expect(steps).toEqual({
      'deps: COPY lib/ /lib-src/': 'CACHED',
      'deps: RUN cat /lib-src/* > /deps.txt && echo "$VERSION" >> /deps.txt': 'CACHED',
      'app: COPY src/ /src/': 'src/app.c changed',
      'app: RUN cat /src/* > /app.txt': 'src/app.c changed',
      'app: COPY --from=deps /deps.txt /deps.txt': 'src/app.c changed',
    });
  }, T);

  test('a build arg changed: named in the stage, and through COPY --from', async () => {
    const { steps } = await build(['--build-arg', 'VERSION=2']);
    expect(steps['deps: COPY lib/ /lib-src/']).toBe('CACHED');
    expect(steps['deps: RUN cat /lib-src/* > /deps.txt && echo "$VERSION" >> /deps.txt']).toBe('build arg VERSION changed');
    expect(steps['app: COPY src/ /src/']).toBe('CACHED');
    expect(steps['app: COPY --from=deps /deps.txt /deps.txt']).toBe('--from=deps changed: build arg VERSION changed');
  }, T);

  test('--no-cache-filter reruns one stage; a rerun with the same result keeps what follows cached', async () => {
    await build();
    const { steps } = await build(['--no-cache-filter', 'deps']);
    expect(steps['deps: COPY lib/ /lib-src/']).toBe('--no-cache-filter deps');
    expect(steps['deps: RUN cat /lib-src/* > /deps.txt && echo "$VERSION" >> /deps.txt']).toBe('--no-cache-filter deps');
    // Same bytes and (clamped) times: the same chain ID, so the copy from it is still a hit.
    expect(steps['app: COPY --from=deps /deps.txt /deps.txt']).toBe('CACHED');
    expect(steps['app: RUN cat /src/* > /app.txt']).toBe('CACHED');
  }, T);

  test('an edited instruction says what it was', async () => {
    await writeFile(work.path('Dockerfile'), MULTI.replace('RUN cat /src/* > /app.txt', 'RUN cat /src/* > /app.txt && echo edited >> /app.txt'));
    const { steps } = await build();
    expect(steps['app: RUN cat /src/* > /app.txt && echo edited >> /app.txt']).toBe('instruction changed (was: RUN /bin/sh -c cat /src/* > /app.txt)');
    expect(steps['app: COPY --from=deps /deps.txt /deps.txt']).toBe('instruction changed (was: RUN /bin/sh -c cat /src/* > /app.txt)');
  }, T);

  test('an unknown --no-cache-filter stage is refused before anything runs', async () => {
    const r = await runStowage(['build', '--root', work.root, '--no-cache-filter', 'nope', '-o', `${work.base}/x.tar`, '.'], { cwd: work.dir, timeoutMs: T });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--no-cache-filter nope: no stage of that name/);
  }, T);
});

// Misses named by what changed besides context files and args: a COPY heredoc's
// body, a RUN bind mount's files, and the base image behind an unchanged tag.
describe('why a step missed: heredocs, bind mounts, the base image', () => {
  let work: WorkDir;
  const reg = () => testEnv().registry;
  const base = `e2e/cache-base-${process.pid}-${Date.now()}`;
  const dockerfile = (greeting: string) => `FROM ${reg()}/${base}:1
COPY <<EOF /greeting
${greeting}
EOF
RUN --mount=type=bind,source=m,target=/m cat /m/x > /y
`;
  /** Pushes a base image whose content is `marker`, under the same tag each time. */
  const pushBase = async (marker: string) => {
    const b = await makeWorkDir({ Dockerfile: `FROM ${reg()}/library/busybox\nRUN echo ${marker} > /marker\n` });
    try {
      const r = await runStowage(['build', '--root', work.root, '-t', `${reg()}/${base}:1`, '--push', '.'], { cwd: b.dir, timeoutMs: T });
      expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
      return /pushed \S+@(sha256:[0-9a-f]{64})/.exec(r.stderr)![1]!;
    } finally {
      await b.rm();
    }
  };
  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: dockerfile('hello'), 'm/x': 'x1\n' });
    await pushBase('one');
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  const reasons = async () => {
    const r = await runStowage(['build', '--root', work.root, '--progress', 'plain', '-o', `${work.base}/out.tar`, '.'], { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    return [...r.stderr.matchAll(/^#\d+ (CACHED|cache miss: (.*))$/gm)].map((m) => m[2] ?? 'CACHED');
  };

  test('cold, then warm', async () => {
    expect(await reasons()).toEqual(['no earlier build of this step on this --root', 'no earlier build of this step on this --root']);
    expect(await reasons()).toEqual(['CACHED', 'CACHED']);
  }, T);

  test('a COPY heredoc body changed: named, and the step after it follows', async () => {
    await writeFile(work.path('Dockerfile'), dockerfile('hello again'));
    expect(await reasons()).toEqual(['heredoc <<EOF changed', 'heredoc <<EOF changed']);
  }, T);

  test('a file under a RUN bind mount changed: the mount and the file are named', async () => {
    await writeFile(work.path('m/x'), 'x2\n');
    expect(await reasons()).toEqual(['CACHED', 'mount /m changed: m/x changed']);
  }, T);

  test('the base image changed behind the same tag: named with its new digest', async () => {
    const digest = await pushBase('two');
    const reason = `base image ${reg()}/${base}:1 changed (now ${digest})`;
    expect(await reasons()).toEqual([reason, reason]);
  }, T);
});
