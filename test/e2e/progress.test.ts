// --progress formats, run as the unprivileged user: rawjson gives one JSON
// event per line for every step and a summary whose digest is the image's;
// quiet prints the digest alone on stdout; auto under a pseudo-terminal
// (script(1)) draws the live view and ends with collapsed steps and the summary.
import path from 'node:path';
import { makeWorkDir, runAsUser, runStowage, skopeoInspect, testEnv, type WorkDir } from '../lib/index.js';

const T = 300_000;
const DOCKERFILE = `FROM busybox
COPY a.txt /a
RUN echo one && cat /a && sleep 1
RUN echo two > /two
`;

type Event = { type: string; step?: number; time: number; [k: string]: unknown };

describe('--progress', () => {
  let work: WorkDir;
  const args = (...extra: string[]) => ['build', '--root', work.root, '--registry-mirror', `docker.io=${testEnv().registry}`, ...extra, '.'];
  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: DOCKERFILE, 'a.txt': 'a\n' });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('rawjson: valid JSON lines only, start and end for every step, pull bytes, a summary with the image digest', async () => {
    const out = path.join(work.base, 'rawjson.tar');
    const r = await runStowage(args('--progress', 'rawjson', '-o', out), { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: '' });
    expect(r.stderr.endsWith('\n')).toBe(true);
    const events = r.stderr.slice(0, -1).split('\n').map((line) => JSON.parse(line) as Event);
    for (const e of events) {
      expect(typeof e.type).toBe('string');
      expect(typeof e.time).toBe('number');
    }
    const starts = events.filter((e) => e.type === 'step.start');
    const ends = events.filter((e) => e.type === 'step.end');
    expect(starts.map((e) => e.name)).toEqual([
      '[internal] load busybox',
      '[0 2/4] COPY a.txt /a',
      '[0 3/4] RUN echo one && cat /a && sleep 1',
      '[0 4/4] RUN echo two > /two',
      'exporting stage 0',
    ]);
    expect(ends.map((e) => e.step).sort()).toEqual(starts.map((e) => e.step).sort());
    for (const e of ends) expect(e.status).toBe('done');
    // Each step's events lie between its start and its end.
    for (const s of starts) {
      const own = events.map((e, i) => [e, i] as const).filter(([e]) => e.step === s.step && e.type !== 'step.start');
      const endAt = events.findIndex((e) => e.type === 'step.end' && e.step === s.step);
      for (const [, i] of own) expect(i).toBeLessThanOrEqual(endAt);
    }
    const runStep = starts[2]!.step;
    expect(events.filter((e) => e.type === 'step.log' && e.step === runStep).map((e) => e.line)).toEqual(['one', 'a']);
    // A cold root pulls: the layer's bytes end at its size.
    const pulled = events.filter((e) => e.type === 'step.bytes' && e.step === starts[0]!.step);
    expect(pulled.length).toBeGreaterThan(0);
    expect(pulled.at(-1)!.current).toBe(pulled.at(-1)!.total);
    const exported = events.filter((e) => e.type === 'step.bytes' && e.step === starts[4]!.step);
    expect(exported.at(-1)).toMatchObject({ id: out, current: expect.any(Number), total: exported.at(-1)!.current });
    // Cold root: every filesystem step misses, saying why; a layer reports its entries.
    expect(events.filter((e) => e.type === 'step.cache').map((e) => [e.step, e.hit, e.reason])).toEqual(
      [1, 2, 3].map((i) => [starts[i]!.step, false, 'no earlier build of this step on this --root']),
    );
    // COPY adds one file; `echo one` changes nothing (no layer: its mount stubs leave no trace); `echo two` adds /two.
    expect(events.filter((e) => e.type === 'step.layer').map((e) => [e.step, e.files])).toEqual([
      [starts[1]!.step, 1],
      [starts[3]!.step, 1],
    ]);
    for (const e of events.filter((e) => e.type === 'step.layer')) expect(e).toMatchObject({ digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), size: expect.any(Number) });
    const summary = events.at(-1)!;
    expect(summary.type).toBe('summary');
    expect(events.filter((e) => e.type === 'summary')).toHaveLength(1);
    const inspected = await skopeoInspect(out);
    expect(summary.digest).toBe(inspected.Digest);
    expect(summary.size).toBeGreaterThan(1000);
  }, T);

  test('rawjson: cache hits, and a miss with the file that changed', async () => {
    const cacheEvents = async (): Promise<Event[]> => {
      const r = await runStowage(args('--progress', 'rawjson', '-o', path.join(work.base, 'again.tar')), { cwd: work.dir, timeoutMs: T });
      expect(r.code).toBe(0);
      return r.stderr.trimEnd().split('\n').map((line) => JSON.parse(line) as Event).filter((e) => e.type === 'step.cache' || e.type === 'step.layer');
    };
    // Built once by the test above (or now, when run alone).
    await cacheEvents();
    expect((await cacheEvents()).map((e) => [e.type, e.hit])).toEqual([['step.cache', true], ['step.cache', true], ['step.cache', true]]);
    await runAsUser(['sh', '-c', 'echo changed > a.txt'], { cwd: work.dir });
    const changed = await cacheEvents();
    expect(changed.filter((e) => e.type === 'step.cache').map((e) => [e.hit, e.reason])).toEqual([
      [false, 'a.txt changed'],
      [false, 'a.txt changed'],
      [false, 'a.txt changed'],
    ]);
    expect(changed.find((e) => e.type === 'step.layer')).toMatchObject({ files: 1 });
  }, T);

  test('a step\'s stdout and stderr are split into lines each: a stdout line between two pieces of a stderr line stays whole', async () => {
    const w = await makeWorkDir({ Dockerfile: 'FROM busybox\nRUN printf "err-start " >&2; sleep 0.3; echo out-line; sleep 0.3; echo err-end >&2\n' });
    try {
      const r = await runStowage(['build', '--root', work.root, '--registry-mirror', `docker.io=${testEnv().registry}`, '--progress', 'rawjson', '.'], { cwd: w.dir, timeoutMs: T });
      expect(r.code).toBe(0);
      const events = r.stderr.trimEnd().split('\n').map((line) => JSON.parse(line) as Event);
      const run = events.find((e) => e.type === 'step.start' && String(e.name).includes('RUN'))!;
      expect(events.filter((e) => e.type === 'step.log' && e.step === run.step).map((e) => e.line)).toEqual(['out-line', 'err-start err-end']);
    } finally {
      await w.rm();
    }
  }, T);

  test('rawjson: a failing build ends with an error event carrying code and line', async () => {
    const bad = await makeWorkDir({ Dockerfile: 'FROM busybox\nRUN echo before\nRUN echo oops >&2 && exit 7\n' });
    try {
      const r = await runStowage(['build', '--root', work.root, '--registry-mirror', `docker.io=${testEnv().registry}`, '--progress', 'rawjson', '.'], { cwd: bad.dir, timeoutMs: T });
      expect(r.code).toBe(1);
      const events = r.stderr.trimEnd().split('\n').map((line) => JSON.parse(line) as Event);
      expect(events.at(-1)).toEqual({ type: 'error', message: expect.stringMatching(/exit code 7/), code: 'E_RUN_FAILED', file: 'Dockerfile', line: 3, time: expect.any(Number) });
      expect(events.find((e) => e.type === 'step.end' && e.status === 'error')).toMatchObject({ error: expect.stringMatching(/exit code 7/) });
    } finally {
      await bad.rm();
    }
  }, T);

  test('quiet: stdout is exactly the image digest, stderr is empty', async () => {
    const out = path.join(work.base, 'quiet.tar');
    const r = await runStowage(args('--progress', 'quiet', '-o', out), { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const inspected = await skopeoInspect(out);
    expect(r.stdout).toBe(`${inspected.Digest}\n`);
  }, T);

  test('auto on a terminal is the live view: spinner frames redrawn in place, collapsed steps, the summary', async () => {
    const out = path.join(work.base, 'tty.tar');
    const e = testEnv();
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const cmd = [e.nodePath, e.cliPath, ...args('--no-cache', '-o', out)].map(quote).join(' ');
    // script(1) gives the CLI a pseudo-terminal; the re-exec into the namespace must keep it.
    const r = await runAsUser(['script', '-qfec', cmd, '/dev/null'], { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const raw = r.stdout;
    expect(raw).toMatch(/\x1b\[\d+A/); // the cursor went back up over a live area
    expect(raw).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] \[0 3\/4\] RUN echo one && cat \/a && sleep 1 +\d+\.\ds/);
    const lines = raw.replace(/\x1b\[\d*[A-Za-z]/g, '').split(/\r?\n/).map((l) => l.replace(/^.*\r/, ''));
    expect(lines.some((l) => /^#\d+ /.test(l))).toBe(false); // not the plain format
    const inspected = await skopeoInspect(out);
    // Collapsed steps and the final header; live frames' headers and spinner lines are left out.
    const finalLines = lines.filter((l) => l.startsWith('=> ') || /^\[\+\] .*FINISHED$/.test(l));
    expect(finalLines.slice(-7).map((l) => l.replace(/ +\d+\.\ds$/, ' T'))).toEqual([
      expect.stringMatching(/^=> \[internal\] load busybox T$/),
      '=> [0 2/4] COPY a.txt /a T',
      '=> [0 3/4] RUN echo one && cat /a && sleep 1 T',
      '=> [0 4/4] RUN echo two > /two T',
      '=> exporting stage 0 T',
      expect.stringMatching(/^\[\+\] Building \d+\.\ds \(5\/5\) FINISHED$/),
      expect.stringMatching(new RegExp(`^=> built ${inspected.Digest} \\([\\d.]+[kM]?B\\) in T$`)),
    ]);
    // The RUN step took its second, and says so.
    const runLine = finalLines.find((l) => l.startsWith('=> [0 3/4]'))!;
    expect(Number(/(\d+\.\d)s$/.exec(runLine)![1])).toBeGreaterThanOrEqual(1);
  }, T);
});
