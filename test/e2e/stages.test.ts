// The stage graph at run time: independent stages overlap, ONBUILD triggers
// of an inherited stage run in each child, FROM --platform picks from an index.
import path from 'node:path';
import { makeWorkDir, runImage, runStowage, testEnv, unpackOciTar, type WorkDir } from '../lib/index.js';

const T = 300_000;

// Each stage records when its RUN started and ended (the host's uptime, which
// every container shares); the final stage collects both records.
const PARALLEL = `FROM busybox AS left
RUN cut -d" " -f1 /proc/uptime > /start && sleep 2 && cut -d" " -f1 /proc/uptime > /end
FROM busybox AS right
RUN cut -d" " -f1 /proc/uptime > /start && sleep 2 && cut -d" " -f1 /proc/uptime > /end
FROM busybox
COPY --from=left /start /left.start
COPY --from=left /end /left.end
COPY --from=right /start /right.start
COPY --from=right /end /right.end
`;

const ONBUILD = `FROM busybox AS base
ONBUILD RUN echo "triggered in $(pwd)" >> /triggered
ONBUILD COPY ctx.txt /from-context.txt
RUN test ! -e /triggered
FROM base AS child
WORKDIR /work
RUN cat /triggered /from-context.txt > /seen
FROM child AS grandchild
RUN cat /triggered > /grand-seen
`;

const PLATFORM = `ARG ARCH=arm64
FROM --platform=linux/\${ARCH} busybox AS foreign
FROM busybox
COPY --from=foreign /etc/arch /foreign-arch
`;

function mirror(): string[] {
  return ['--registry-mirror', `docker.io=${testEnv().registry}`];
}

describe('stages at run time', () => {
  let work: WorkDir;
  beforeAll(async () => {
    work = await makeWorkDir({ 'parallel.Dockerfile': PARALLEL, 'onbuild.Dockerfile': ONBUILD, 'platform.Dockerfile': PLATFORM, 'ctx.txt': 'context file\n' });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  const build = (args: string[]) => runStowage(['build', '--root', work.root, ...mirror(), ...args], { cwd: work.dir, timeoutMs: T });

  test('independent stages run side by side', async () => {
    const r = await build(['-f', 'parallel.Dockerfile', '--build-arg', 'NOT_USED=1', '-o', 'parallel.tar', '.']);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    // Docker warns about build arguments that no ARG consumed.
    expect(r.stderr).toContain('warning: build arguments not consumed by any instruction: NOT_USED');
    const out = await runImage(work.path('parallel.tar'), { args: ['cat', '/left.start', '/left.end', '/right.start', '/right.end'] });
    const [leftStart, leftEnd, rightStart, rightEnd] = out.stdout.trim().split('\n').map(Number);
    // Overlapping intervals: each stage started before the other one ended.
    expect(leftStart!).toBeLessThan(rightEnd!);
    expect(rightStart!).toBeLessThan(leftEnd!);
  }, T);

  test('ONBUILD triggers run in each child of the stage, not in the stage itself, and are not inherited further', async () => {
    const r = await build(['-f', 'onbuild.Dockerfile', '-o', 'onbuild.tar', '.']);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    const img = await unpackOciTar(work.path('onbuild.tar'), path.join(work.base, 'onbuild'));
    expect(img.config.config?.OnBuild ?? []).toEqual([]);
    const out = await runImage(work.path('onbuild.tar'), { args: ['cat', '/seen', '/grand-seen'] });
    // The trigger ran before the child's WORKDIR, once; the grandchild did not run it again.
    expect(out.stdout).toBe('triggered in /\ncontext file\ntriggered in /\n');
  }, T);

  test('the base stage keeps its ONBUILD triggers in its own config', async () => {
    const r = await build(['-f', 'onbuild.Dockerfile', '--target', 'base', '-o', 'base.tar', '.']);
    expect(r.code).toBe(0);
    const img = await unpackOciTar(work.path('base.tar'), path.join(work.base, 'base'));
    expect(img.config.config?.OnBuild).toEqual(['RUN echo "triggered in $(pwd)" >> /triggered', 'COPY ctx.txt /from-context.txt']);
  }, T);

  test('FROM --platform with a global ARG selects that platform from the index', async () => {
    const r = await build(['-f', 'platform.Dockerfile', '-o', 'platform.tar', '.']);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    const out = await runImage(work.path('platform.tar'), { args: ['cat', '/foreign-arch'] });
    expect(out.stdout).toBe('arm64\n');
  }, T);
});
