import type { ProgressEvent } from '../../src/engine/progress.js';
import { TtyRenderer, bytesLine, type Clock } from '../../src/cli/progress/tty.js';

type Unstamped = ProgressEvent extends infer E ? (E extends unknown ? Omit<E, 'time'> : never) : never;

/** Timers driven by hand: `advance` runs what falls due, in order. */
class FakeClock implements Clock {
  t = 1_000_000;
  private seq = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }
  get pending(): number {
    return this.timers.size;
  }
  advance(ms: number): void {
    const target = this.t + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, x]) => x.at <= target).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fn();
    }
    this.t = target;
  }
}

/**
 * A tiny terminal: applies what the renderer wrote (text, \r, \n, cursor up,
 * clear to end of screen) and returns the screen's lines, so tests assert
 * what a person would see rather than escape sequences.
 */
function screen(text: string): string[] {
  const rows: string[] = [''];
  let r = 0;
  let c = 0;
  for (let i = 0; i < text.length; ) {
    if (text[i] === '\x1b') {
      const m = /^\x1b\[(\d*)([A-Za-z])/.exec(text.slice(i));
      if (!m) throw new Error(`unexpected escape at ${i}: ${JSON.stringify(text.slice(i, i + 8))}`);
      const n = m[1] ? Number(m[1]) : 1;
      if (m[2] === 'A') r = Math.max(0, r - n);
      else if (m[2] === 'J') {
        rows.length = r + 1;
        rows[r] = rows[r]!.slice(0, c);
      } else throw new Error(`unexpected escape ${m[0]}`);
      i += m[0].length;
      continue;
    }
    const ch = text[i]!;
    if (ch === '\r') c = 0;
    else if (ch === '\n') {
      r++;
      c = 0;
      if (rows.length <= r) rows.push('');
    } else {
      const row = rows[r]!.padEnd(c);
      rows[r] = row.slice(0, c) + ch + row.slice(c + 1);
      c++;
    }
    i++;
  }
  while (rows.length > 0 && rows[rows.length - 1] === '') rows.pop();
  return rows;
}

function setup(opts: { columns?: number; rows?: number } = {}) {
  const clock = new FakeClock();
  const writes: string[] = [];
  const tty = new TtyRenderer({ write: (t) => writes.push(t), columns: () => opts.columns ?? 80, rows: () => opts.rows ?? 40, clock, unicode: false });
  const emit = (e: Unstamped) => tty.listener({ ...e, time: clock.t } as ProgressEvent);
  return { clock, writes, tty, emit, view: () => screen(writes.join('')) };
}

describe('tty progress', () => {
  test('live area: header, one line per running step with spinner and elapsed time, its last log lines and byte bars', () => {
    const { clock, emit, view } = setup();
    emit({ type: 'step.start', step: 1, name: '[internal] load busybox' });
    emit({ type: 'step.bytes', step: 1, id: `sha256:${'ab'.repeat(32)}`, current: 250_000, total: 1_000_000 });
    clock.advance(300);
    emit({ type: 'step.start', step: 2, name: '[build 2/5] RUN make' });
    for (let i = 1; i <= 8; i++) emit({ type: 'step.log', step: 2, line: `line ${i}` });
    clock.advance(1200);
    const lines = view();
    expect(lines[0]).toBe('[+] Building 1.5s (0/2)');
    expect(lines[1]).toMatch(/^[|/\\-] \[internal\] load busybox +1\.5s$/);
    expect(lines[2]).toMatch(/^ => => sha256:abababababab \[=+> +\] 250\.0kB \/ 1\.00MB$/);
    expect(lines[3]).toMatch(/^[|/\\-] \[build 2\/5\] RUN make +1\.2s$/);
    // The last six lines the step printed, not the earlier ones.
    expect(lines.slice(4)).toEqual(['line 3', 'line 4', 'line 5', 'line 6', 'line 7', 'line 8'].map((l) => ` => => # ${l}`));
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(79);
  });

  test('finished steps collapse to one permanent line; cached ones say CACHED; running ones stay live below', () => {
    const { clock, emit, view } = setup();
    emit({ type: 'step.start', step: 1, name: '[stage 2/5] RUN make' });
    emit({ type: 'step.log', step: 1, line: 'cc -o app app.c' });
    emit({ type: 'step.start', step: 2, name: '[stage 3/5] COPY . .' });
    clock.advance(1200);
    emit({ type: 'step.end', step: 1, status: 'done', durationMs: 1234 });
    emit({ type: 'step.cache', step: 2, hit: true });
    emit({ type: 'step.end', step: 2, status: 'cached', durationMs: 3 });
    emit({ type: 'step.start', step: 3, name: '[stage 4/5] RUN make test' });
    clock.advance(100);
    const lines = view();
    expect(lines[0]).toMatch(/^=> \[stage 2\/5\] RUN make {10,}1\.2s$/);
    expect(lines[1]).toMatch(/^=> CACHED \[stage 3\/5\] COPY \. \. {10,}0\.0s$/);
    expect(lines[2]).toBe('[+] Building 1.3s (2/3)');
    expect(lines[3]).toMatch(/^. \[stage 4\/5\] RUN make test +0\.1s$/);
    expect(lines).toHaveLength(4);
    // The collapsed step's output is gone from the screen.
    expect(lines.join('\n')).not.toContain('cc -o app');
  });

  test('redraws are throttled to one frame per interval, and keep ticking while steps run', () => {
    const { clock, emit, writes, tty } = setup();
    emit({ type: 'step.start', step: 1, name: '[0 2/2] RUN yes' });
    clock.advance(0);
    expect(tty.frameCount).toBe(1);
    for (let i = 0; i < 500; i++) {
      emit({ type: 'step.log', step: 1, line: `y ${i}` });
      if (i % 10 === 0) clock.advance(1);
    }
    // 500 lines over 50 ms: no frame before the interval is over.
    expect(tty.frameCount).toBe(1);
    clock.advance(50);
    expect(tty.frameCount).toBe(2);
    expect(screen(writes.join('')).at(-1)).toBe(' => => # y 499');
    // Nothing new, but the clock and spinner move: one frame per 100 ms.
    clock.advance(1000);
    expect(tty.frameCount).toBe(12);
    emit({ type: 'step.end', step: 1, status: 'done', durationMs: 1150 });
    clock.advance(1000);
    // One frame for the end, then quiet: nothing is running.
    expect(tty.frameCount).toBe(13);
    expect(clock.pending).toBe(0);
  });

  test('a failed step: ERROR line, then its full output, and FAILED in the final header', () => {
    const { clock, emit, view, tty } = setup();
    emit({ type: 'step.start', step: 1, name: '[0 2/2] RUN ./build.sh' });
    for (let i = 1; i <= 20; i++) emit({ type: 'step.log', step: 1, line: `output ${i}` });
    clock.advance(400);
    emit({ type: 'step.end', step: 1, status: 'error', durationMs: 400, error: 'exit code 2' });
    tty.close();
    const lines = view();
    expect(lines[0]).toMatch(/^=> ERROR \[0 2\/2\] RUN \.\/build\.sh +0\.4s$/);
    expect(lines.slice(1, 3)).toEqual(['------', ' > [0 2/2] RUN ./build.sh:']);
    expect(lines.slice(3, 23)).toEqual(Array.from({ length: 20 }, (_, i) => `output ${i + 1}`));
    expect(lines[23]).toBe('------');
    expect(lines[24]).toBe('[+] Building 0.4s (1/1) FAILED');
    expect(lines).toHaveLength(25);
  });

  test('close: the live area gives way to the final header and the summary; unfinished steps show CANCELED', () => {
    const { clock, emit, view, tty, writes } = setup();
    emit({ type: 'step.start', step: 1, name: '[0 2/3] RUN true' });
    emit({ type: 'step.start', step: 2, name: 'exporting stage 0' });
    clock.advance(2000);
    emit({ type: 'step.end', step: 1, status: 'done', durationMs: 2000 });
    emit({ type: 'step.end', step: 2, status: 'done', durationMs: 100 });
    emit({ type: 'summary', digest: `sha256:${'c'.repeat(64)}`, size: 1_058_509, durationMs: 2100 });
    clock.advance(100);
    tty.close();
    expect(view().slice(-2)).toEqual(['[+] Building 2.1s (2/2) FINISHED', `=> built sha256:${'c'.repeat(64)} (1.06MB) in 2.1s`]);
    expect(view().join('\n')).not.toContain('Building 2.1s (2/2)\n');
    const before = writes.length;
    tty.close();
    expect(writes.length).toBe(before);

    const other = setup();
    other.emit({ type: 'step.start', step: 1, name: '[0 2/2] RUN sleep 30' });
    other.clock.advance(700);
    other.tty.close();
    expect(other.view()).toEqual([expect.stringMatching(/^=> CANCELED \[0 2\/2\] RUN sleep 30 +0\.7s$/), '[+] Building 0.7s (0/1) CANCELED']);
    expect(other.clock.pending).toBe(0);
  });

  test('lines are cut to the terminal width and the live area to its height', () => {
    const { clock, emit, view } = setup({ columns: 40, rows: 8 });
    for (let i = 1; i <= 10; i++) emit({ type: 'step.start', step: i, name: `[0 ${i}/10] RUN ${'x'.repeat(60)}` });
    clock.advance(100);
    const lines = view();
    expect(lines).toHaveLength(7);
    for (const l of lines) expect([...l].length).toBeLessThanOrEqual(39);
    expect(lines[1]).toMatch(/^. \[0 1\/10\] RUN x+… 0\.1s$/);
    expect(lines[6]).toBe('   … 5 more lines');
  });

  test('step output cannot move the cursor: escapes and carriage returns are cleaned', () => {
    const { clock, emit, view } = setup();
    emit({ type: 'step.start', step: 1, name: '[0 2/2] RUN curl' });
    emit({ type: 'step.log', step: 1, line: '\x1b[31mred\x1b[0m text\x1b[2A' });
    emit({ type: 'step.log', step: 1, line: ' 10%\r 50%\r100%' });
    clock.advance(100);
    expect(view().slice(-2)).toEqual([' => => # red text', ' => => # 100%']);
  });

  test('warnings stay on screen; other notes show only while current; a cache miss shows its reason', () => {
    const { clock, emit, view } = setup();
    emit({ type: 'note', line: 'warning: build arguments not consumed by any instruction: X' });
    emit({ type: 'step.start', step: 1, name: '[0 2/3] COPY src/ /src' });
    emit({ type: 'note', line: 'sha256:0c07bcdc9aa7: downloading 1.0 MiB' });
    emit({ type: 'step.cache', step: 1, hit: false, reason: 'src/app.c changed' });
    clock.advance(100);
    expect(view()).toEqual([
      'warning: build arguments not consumed by any instruction: X',
      '[+] Building 0.1s (0/1)',
      ' => sha256:0c07bcdc9aa7: downloading 1.0 MiB',
      expect.stringMatching(/^. \[0 2\/3\] COPY src\/ \/src +0\.1s$/),
      ' => => cache miss: src/app.c changed',
    ]);
    emit({ type: 'step.end', step: 1, status: 'done', durationMs: 100 });
    clock.advance(100);
    expect(view().join('\n')).not.toContain('downloading');
  });

  test('a message before any step is just that line: no live area is left behind for the process that draws next', () => {
    const { tty, writes, view } = setup();
    tty.message('warning: no /etc/subuid and /etc/subgid range for this user');
    tty.close();
    expect(view()).toEqual(['warning: no /etc/subuid and /etc/subgid range for this user']);
    expect(writes.join('')).not.toMatch(/\x1b\[\d+A/);
  });

  test('message() shows a line at once, above the live area', () => {
    const { emit, view, tty } = setup();
    emit({ type: 'step.start', step: 1, name: '[0 2/2] RUN sleep 30' });
    tty.message('interrupted (SIGTERM): cleaning up');
    expect(view()[0]).toBe('interrupted (SIGTERM): cleaning up');
  });
});

describe('bytesLine', () => {
  test('a bar with the amounts when the total is known, the amount alone otherwise', () => {
    expect(bytesLine(`sha256:${'0'.repeat(64)}`, 500, 1000, 79)).toBe(` => => sha256:000000000000 [===============>              ] 500B / 1.00kB`);
    expect(bytesLine(`sha256:${'0'.repeat(64)}`, 1000, 1000, 79)).toBe(` => => sha256:000000000000 [==============================] 1.00kB / 1.00kB`);
    expect(bytesLine('/out/image.tar', 12_345_678, undefined, 79)).toBe(' => => /out/image.tar 12.3MB');
  });
});
