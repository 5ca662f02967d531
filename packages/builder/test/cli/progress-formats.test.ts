import { Progress, type ProgressEvent } from '../../src/engine/progress.js';
import { RunFailedError, InvalidOptionError } from '../../src/errors.js';
import { quietRenderer } from '../../src/cli/progress/quiet.js';
import { rawjsonRenderer } from '../../src/cli/progress/rawjson.js';
import { createProgressOutput, resolveProgressMode, utf8Locale } from '../../src/cli/progress/select.js';

const digest = `sha256:${'e3'.repeat(32)}`;

/** One build's events, through the real Progress (so times and step numbers are what the engine gives). */
function sampleBuild(listener: (e: ProgressEvent) => void, fail = false): void {
  const progress = new Progress(listener);
  progress.note('stowage: snapshotter overlay, state /tmp/x');
  const pull = progress.start('[internal] load busybox');
  pull.bytes(`sha256:${'0c'.repeat(32)}`, 1056442, 1056442);
  pull.done();
  const copy = progress.start('[0 2/3] COPY src/ /src');
  copy.cacheMiss('src/app.c changed');
  copy.layer({ digest: `sha256:${'56'.repeat(32)}`, size: 93, files: 2 });
  copy.done();
  const run = progress.start('[0 3/3] RUN make');
  run.log('cc "app.c" -o app\twith a tab');
  run.log('multi\nline ✓');
  if (fail) {
    run.fail('RUN make: process did not complete successfully: exit code 2');
    return;
  }
  run.done();
  progress.emit({ type: 'summary', digest, size: 1058509, durationMs: 1244 });
}

describe('rawjson', () => {
  test('exactly one JSON object per line per event, with the event fields unchanged', () => {
    const events: ProgressEvent[] = [];
    let text = '';
    const json = rawjsonRenderer((t) => (text += t));
    sampleBuild((e) => {
      events.push(e);
      json(e);
    });
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.slice(0, -1).split('\n');
    expect(lines).toHaveLength(events.length);
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual(events);
    expect(events.map((e) => e.type)).toEqual([
      'note', 'step.start', 'step.bytes', 'step.end', 'step.start', 'step.cache', 'step.layer', 'step.end', 'step.start', 'step.log', 'step.log', 'step.end', 'summary',
    ]);
    expect(JSON.parse(lines[5]!)).toEqual({ type: 'step.cache', step: 2, hit: false, reason: 'src/app.c changed', time: expect.any(Number) });
  });

  test('the CLI reports a failure as a final error event with code and Dockerfile location', () => {
    let text = '';
    const out = createProgressOutput('rawjson', { stderr: { write: (t: string) => (text += t) }, stdout: { write: () => { throw new Error('stdout used'); } } });
    sampleBuild(out.listener, true);
    out.message('interrupted (SIGTERM): cleaning up');
    out.fail(new RunFailedError('RUN make: exit code 2', 2, { file: 'Dockerfile', line: 7 }), true);
    const events = text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.at(-2)).toEqual({ type: 'note', line: 'interrupted (SIGTERM): cleaning up', time: expect.any(Number) });
    expect(events.at(-1)).toEqual({ type: 'error', message: 'RUN make: exit code 2', code: 'E_RUN_FAILED', file: 'Dockerfile', line: 7, time: expect.any(Number) });
    const noLocation = createProgressOutput('rawjson', { stderr: { write: (t: string) => (text = t) } });
    noLocation.fail(new InvalidOptionError('-o x: nope'), false);
    expect(JSON.parse(text)).toEqual({ type: 'error', message: '-o x: nope', code: 'E_INVALID_OPTION', time: expect.any(Number) });
  });
});

describe('quiet', () => {
  test('a successful build prints only the image digest, on stdout', () => {
    let out = '';
    let err = '';
    sampleBuild(quietRenderer((t) => (out += t), (t) => (err += t)));
    expect(out).toBe(`${digest}\n`);
    expect(err).toBe('');
  });

  test('a failure prints the failed step with its output, and the error; no digest', () => {
    let out = '';
    let err = '';
    const o = createProgressOutput('quiet', { stderr: { write: (t: string) => (err += t) }, stdout: { write: (t: string) => (out += t) } });
    sampleBuild(o.listener, true);
    o.message('warning: not shown');
    o.fail(new RunFailedError('RUN make: exit code 2', 2, { file: 'Dockerfile', line: 4 }), false);
    expect(out).toBe('');
    expect(err).toBe(['------', ' > [0 3/3] RUN make:', 'cc "app.c" -o app    with a tab', 'multi', 'line ✓', '------', 'error: Dockerfile:4: RUN make: exit code 2', ''].join('\n'));
  });
});

describe('plain', () => {
  test('BuildKit-style lines, the cache-miss reason, and the summary line', () => {
    let err = '';
    const o = createProgressOutput('plain', { stderr: { write: (t: string) => (err += t) } });
    sampleBuild(o.listener);
    const lines = err.trimEnd().split('\n');
    expect(lines).toContain('#2 cache miss: src/app.c changed');
    expect(lines).toContain('#3 [0 3/3] RUN make');
    expect(lines.at(-1)).toBe(`built ${digest} (1058509 bytes) in 1.2s`);
  });
});

describe('--progress auto', () => {
  test('tty on a terminal unless TERM=dumb, plain otherwise; explicit modes as given', () => {
    expect(resolveProgressMode('auto', { isTTY: true }, { TERM: 'xterm-256color' })).toBe('tty');
    expect(resolveProgressMode('auto', { isTTY: true }, {})).toBe('tty');
    expect(resolveProgressMode('auto', { isTTY: true }, { TERM: 'dumb' })).toBe('plain');
    expect(resolveProgressMode('auto', { isTTY: false }, { TERM: 'xterm' })).toBe('plain');
    expect(resolveProgressMode('auto', {}, {})).toBe('plain');
    expect(resolveProgressMode('tty', {}, { TERM: 'dumb' })).toBe('tty');
    expect(resolveProgressMode('rawjson', { isTTY: true }, {})).toBe('rawjson');
    expect(createProgressOutput('auto', { stderr: { write: () => undefined }, env: {} }).mode).toBe('plain');
    expect(createProgressOutput('auto', { stderr: { write: () => undefined, isTTY: true }, env: { TERM: 'xterm' } }).mode).toBe('tty');
  });

  test('the spinner is Unicode only in a UTF-8 locale', () => {
    expect(utf8Locale({ LANG: 'C.UTF-8' })).toBe(true);
    expect(utf8Locale({ LC_ALL: 'en_US.utf8', LANG: 'C' })).toBe(true);
    expect(utf8Locale({ LANG: 'C' })).toBe(false);
    expect(utf8Locale({})).toBe(false);
  });
});
