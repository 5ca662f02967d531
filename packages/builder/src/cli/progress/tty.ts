/**
 * `--progress tty`: a live view redrawn in place, after buildx.
 *
 * The screen has two parts. Above, permanent lines that scroll as usual:
 * each finished step collapsed to one line (`=> [build 2/5] RUN make  1.2s`,
 * `=> CACHED [build 3/5] …`, `=> ERROR …` followed by the step's output),
 * and warnings. Below, the live area, rewritten at most every
 * `intervalMs`: a header with the elapsed time, one line per running step
 * with a spinner and its elapsed time, under it byte bars for transfers and
 * the last few lines the step printed. A redraw moves the cursor up over the
 * previous live area, clears to the end of the screen and writes both parts
 * in one write(); live lines are cut to the terminal width so that none
 * wraps and the line count stays exact.
 */
import { errorLine, type ProgressEvent, type ProgressListener } from '../../engine/progress.js';
import { failureBlock, FAILURE_LOG_LINES, fit, justify, LogTail, seconds, size, terminalSafe } from './format.js';

/** Time and timers, replaceable in tests. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // The view must never keep a finished CLI alive.
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface TtyOptions {
  write: (text: string) => void;
  /** Terminal width, read at every frame (the window may be resized). */
  columns: () => number;
  /** Terminal height: the live area is kept below it, so the cursor can always get back up. */
  rows: () => number;
  /** Braille spinner (else `|/-\`). */
  unicode?: boolean;
  clock?: Clock;
  /** Least time between two frames; 100 ms is buildx's rate. */
  intervalMs?: number;
}

/** Lines of output shown under a running step (buildx shows 6). */
const LOG_LINES = 6;
/** Transfers shown under a running step. */
const BYTE_ROWS = 5;

const SPIN_UNICODE = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const SPIN_ASCII = ['|', '/', '-', '\\'];

interface StepView {
  step: number;
  name: string;
  started: number;
  logs: LogTail;
  bytes: Map<string, { current: number; total?: number }>;
  cacheMiss?: string;
}

export class TtyRenderer {
  private readonly write: (text: string) => void;
  private readonly columns: () => number;
  private readonly rows: () => number;
  private readonly clock: Clock;
  private readonly interval: number;
  private readonly spinner: string[];
  private readonly running = new Map<number, StepView>();
  /** Lines to print above the live area at the next frame. */
  private queued: string[] = [];
  private liveLines = 0;
  private lastDraw = -Infinity;
  private timer: unknown;
  private frames = 0;
  private startedAt: number | undefined;
  private seen = 0;
  private finished = 0;
  private failed = false;
  private status: string | undefined;
  private summary: Extract<ProgressEvent, { type: 'summary' }> | undefined;
  private closed = false;

  constructor(opts: TtyOptions) {
    this.write = opts.write;
    this.columns = opts.columns;
    this.rows = opts.rows;
    this.clock = opts.clock ?? realClock;
    this.interval = opts.intervalMs ?? 100;
    this.spinner = opts.unicode ? SPIN_UNICODE : SPIN_ASCII;
  }

  readonly listener: ProgressListener = (event) => {
    if (this.closed) return;
    this.startedAt ??= event.time;
    this.apply(event);
    this.schedule();
  };

  /** Frames written so far (for tests and curiosity). */
  get frameCount(): number {
    return this.frames;
  }

  /** A line that must show now (an interrupt notice, a warning before the build starts). */
  message(line: string): void {
    if (this.closed) {
      this.write(`${line}\n`);
      return;
    }
    this.queued.push(line);
    this.draw();
  }

  /**
   * Final frame: steps still running are collapsed as CANCELED, the live
   * area is replaced by the final header and the summary. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const now = this.clock.now();
    for (const view of this.running.values()) this.queued.push(this.collapsed('CANCELED ', view.name, now - view.started));
    this.running.clear();
    if (this.seen > 0 || this.summary) {
      const state = this.summary ? 'FINISHED' : this.failed ? 'FAILED' : 'CANCELED';
      this.queued.push(`[+] Building ${seconds(this.elapsed(now))} (${this.finished}/${this.seen}) ${state}`);
    }
    if (this.summary) this.queued.push(`=> built ${this.summary.digest} (${size(this.summary.size)}) in ${seconds(this.summary.durationMs)}`);
    this.status = undefined;
    this.closed = true;
    if (this.queued.length > 0 || this.liveLines > 0) this.frame([]);
  }

  private elapsed(now: number): number {
    return this.startedAt === undefined ? 0 : now - this.startedAt;
  }

  private apply(event: ProgressEvent): void {
    switch (event.type) {
      case 'step.start':
        this.seen++;
        this.running.set(event.step, { step: event.step, name: event.name, started: event.time, logs: new LogTail(FAILURE_LOG_LINES), bytes: new Map() });
        return;
      case 'step.log':
        this.running.get(event.step)?.logs.push(event.line);
        return;
      case 'step.cache': {
        const view = this.running.get(event.step);
        if (view && !event.hit) view.cacheMiss = event.reason ?? 'no earlier result';
        return;
      }
      case 'step.bytes': {
        const view = this.running.get(event.step);
        if (view) view.bytes.set(event.id, { current: event.current, ...(event.total !== undefined ? { total: event.total } : {}) });
        return;
      }
      case 'step.layer':
        return;
      case 'step.end': {
        const view = this.running.get(event.step);
        if (!view) return;
        this.running.delete(event.step);
        this.finished++;
        // A note belongs to what was going on when it came; a finished step makes it stale.
        this.status = undefined;
        if (event.status === 'error') {
          this.failed = true;
          this.queued.push(this.collapsed('ERROR ', view.name, event.durationMs), ...failureBlock(view.name, view.logs));
        } else {
          this.queued.push(this.collapsed(event.status === 'cached' ? 'CACHED ' : '', view.name, event.status === 'cached' ? 0 : event.durationMs));
        }
        return;
      }
      case 'note':
        // Warnings stay on screen; other notes (state root, registry chatter) are shown while current only.
        if (/^warning\b/i.test(event.line)) this.queued.push(terminalSafe(event.line));
        else this.status = event.line;
        return;
      case 'summary':
        this.summary = event;
        return;
      case 'error':
        this.failed = true;
        this.queued.push(errorLine(event));
        return;
    }
  }

  private collapsed(tag: string, name: string, ms: number): string {
    return justify(`=> ${tag}${terminalSafe(name)}`, seconds(ms), this.width());
  }

  private width(): number {
    const c = this.columns();
    return Math.max(20, (c > 0 ? c : 80) - 1);
  }

  /** Throttle: at most one frame per interval; while steps run, a frame every interval for the spinner and clocks. */
  private schedule(): void {
    if (this.closed || this.timer !== undefined) return;
    const delay = Math.max(0, this.lastDraw + this.interval - this.clock.now());
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.draw();
    }, delay);
  }

  private draw(): void {
    if (this.closed) return;
    if (this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.frame(this.liveArea(this.clock.now()));
    if (this.running.size > 0) this.schedule();
  }

  private frame(live: string[]): void {
    let out = '';
    if (this.liveLines > 0) out += `\x1b[${this.liveLines}A`;
    out += '\r\x1b[J';
    for (const line of this.queued) out += `${line}\n`;
    for (const line of live) out += `${line}\n`;
    this.queued = [];
    this.liveLines = live.length;
    this.lastDraw = this.clock.now();
    this.frames++;
    this.write(out);
  }

  private liveArea(now: number): string[] {
    // Before the first step (e.g. the outer process's warning before the re-exec) there is no live area to leave behind.
    if (this.seen === 0) return [];
    const width = this.width();
    const lines: string[] = [fit(`[+] Building ${seconds(this.elapsed(now))} (${this.finished}/${this.seen})`, width)];
    if (this.status !== undefined && this.running.size > 0) lines.push(fit(` => ${terminalSafe(this.status)}`, width));
    const spin = this.spinner[Math.floor(now / this.interval) % this.spinner.length]!;
    for (const view of this.running.values()) {
      lines.push(justify(`${spin} ${terminalSafe(view.name)}`, seconds(now - view.started), width));
      if (view.cacheMiss !== undefined) lines.push(fit(` => => cache miss: ${terminalSafe(view.cacheMiss)}`, width));
      const transfers = [...view.bytes.entries()].filter(([, b]) => b.total === undefined || b.current < b.total).slice(0, BYTE_ROWS);
      for (const [id, b] of transfers) lines.push(bytesLine(id, b.current, b.total, width));
      for (const log of view.logs.last(LOG_LINES)) lines.push(fit(` => => # ${terminalSafe(log)}`, width));
    }
    // Never taller than the terminal: the cursor could not get back up over lines scrolled away.
    const rows = this.rows();
    const max = Math.max(2, (rows > 0 ? rows : 24) - 1);
    if (lines.length > max) return [...lines.slice(0, max - 1), fit(`   … ${lines.length - max + 1} more lines`, width)];
    return lines;
  }
}

/** ` => => sha256:0123456789ab [=====>    ] 12.3MB / 45.6MB` (no bar without a total). */
export function bytesLine(id: string, current: number, total: number | undefined, width: number): string {
  const label = ` => => ${shortId(id)}`;
  if (total === undefined || total <= 0) return fit(`${label} ${size(current)}`, width);
  const amount = `${size(current)} / ${size(total)}`;
  const barWidth = Math.max(0, Math.min(30, width - [...label].length - amount.length - 5));
  if (barWidth < 5) return fit(`${label} ${amount}`, width);
  const filled = Math.min(barWidth, Math.floor((current / total) * barWidth));
  const bar = '='.repeat(filled) + (filled < barWidth ? '>' : '') + ' '.repeat(Math.max(0, barWidth - filled - 1));
  return fit(`${label} [${bar}] ${amount}`, width);
}

/** A digest as its first 12 hex characters; anything else (an output path) as given. */
function shortId(id: string): string {
  const m = /^(sha256|sha512):([0-9a-f]{12})[0-9a-f]+$/.exec(id);
  return m ? `${m[1]}:${m[2]}` : id;
}
