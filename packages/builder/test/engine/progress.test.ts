import { Progress, errorEvent, type ProgressEvent } from '../../src/engine/progress.js';
import { BuildError } from '../../src/errors.js';

describe('Progress', () => {
  test('byte counts of one transfer are thinned to one event per interval; the first and the last always go out', () => {
    const events: ProgressEvent[] = [];
    const step = new Progress((e) => events.push(e)).start('[internal] load busybox');
    for (let n = 1; n <= 10_000; n++) step.bytes('sha256:aa', n * 100, 1_000_000);
    step.bytes('sha256:bb', 5);
    const bytes = events.filter((e): e is Extract<ProgressEvent, { type: 'step.bytes' }> => e.type === 'step.bytes');
    // All in far less than 100 ms: the first, the final one (current === total), and the other id's first.
    expect(bytes.map((e) => [e.id, e.current])).toEqual([['sha256:aa', 100], ['sha256:aa', 1_000_000], ['sha256:bb', 5]]);
    expect(bytes[1]).toMatchObject({ step: 1, total: 1_000_000 });
    expect(bytes[2]).not.toHaveProperty('total');
  });

  test('a step ends as cached after cached(), with its duration', () => {
    const events: ProgressEvent[] = [];
    const p = new Progress((e) => events.push(e));
    const a = p.start('a');
    a.cached();
    a.done();
    const b = p.start('b');
    b.cacheMiss();
    b.done('note');
    expect(events.filter((e) => e.type === 'step.end')).toEqual([
      { type: 'step.end', step: 1, status: 'cached', durationMs: expect.any(Number), time: expect.any(Number) },
      { type: 'step.end', step: 2, status: 'done', durationMs: expect.any(Number), note: 'note', time: expect.any(Number) },
    ]);
    expect(events.find((e) => e.type === 'step.cache' && !e.hit)).not.toHaveProperty('reason');
  });
});

describe('errorEvent', () => {
  test('message, code and location when the error has them', () => {
    expect(errorEvent(new BuildError('E_X', 'bad', { file: 'app.Dockerfile', line: 3 }))).toEqual({ type: 'error', message: 'bad', code: 'E_X', file: 'app.Dockerfile', line: 3 });
    expect(errorEvent(new BuildError('E_X', 'bad', { line: 3 }))).toEqual({ type: 'error', message: 'bad', code: 'E_X', file: 'Dockerfile', line: 3 });
    expect(errorEvent(Object.assign(new Error('enoent'), { code: 'ENOENT' }))).toEqual({ type: 'error', message: 'enoent', code: 'ENOENT' });
    expect(errorEvent('text')).toEqual({ type: 'error', message: 'text' });
  });
});
