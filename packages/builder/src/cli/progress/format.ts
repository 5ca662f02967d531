/**
 * Text helpers shared by the human-readable progress formats (tty, quiet):
 * durations and sizes as buildx prints them, terminal-safe text, and the
 * block that shows a failed step's output.
 */

/** `1.2s`, as buildx prints step times. */
export function seconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
}

/** Decimal units as buildx/docker print transfer sizes: `512B`, `12.3kB`, `45.6MB`. */
export function size(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let n = bytes;
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return i === 0 ? `${n}B` : `${n.toFixed(n < 10 ? 2 : 1)}${units[i]}`;
}

// CSI sequences (colours, cursor moves) and other escapes a RUN step may print.
// eslint-disable-next-line no-control-regex
const ESCAPES = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])/g;
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f]/g;

/**
 * Text a step printed, made safe to place on one terminal line: escapes,
 * control characters and newlines would move the cursor and break the
 * redraw, so escapes and controls are removed, newlines become spaces, a
 * carriage-return progress line is reduced to its last state, tabs to
 * spaces.
 */
export function terminalSafe(text: string): string {
  const lastCr = text.lastIndexOf('\r', text.length - 2);
  const tail = lastCr >= 0 ? text.slice(lastCr + 1) : text;
  return tail.replace(ESCAPES, '').replace(/\t/g, '    ').replace(/\n/g, ' ').replace(CONTROLS, '');
}

/** Cuts `text` to `width` columns (one per code point; the live view never lets a line wrap). */
export function fit(text: string, width: number): string {
  const chars = [...text];
  if (chars.length <= width) return text;
  if (width <= 1) return chars.slice(0, Math.max(0, width)).join('');
  return `${chars.slice(0, width - 1).join('')}…`;
}

/** `left` and `right` on one line of `width` columns, `right` flush right; `left` is cut first. */
export function justify(left: string, right: string, width: number): string {
  const rightLen = [...right].length;
  if (rightLen + 2 > width) return fit(left, width);
  const room = width - rightLen - 1;
  const l = fit(left, room);
  return `${l}${' '.repeat(Math.max(1, width - [...l].length - rightLen))}${right}`;
}

/**
 * The last lines a step printed, bounded: a step can print without end and
 * only the tail is shown on failure (with a count of what was dropped).
 */
export class LogTail {
  private lines: string[] = [];
  private total = 0;

  constructor(private readonly limit: number) {}

  push(line: string): void {
    this.total++;
    this.lines.push(line);
    // Trimmed in batches, so a long log costs O(1) per line.
    if (this.lines.length >= 2 * this.limit) this.lines = this.lines.slice(-this.limit);
  }

  /** Lines no longer kept. */
  get dropped(): number {
    return this.total - Math.min(this.lines.length, this.limit);
  }

  last(n: number): string[] {
    return n <= 0 ? [] : this.lines.slice(-Math.min(n, this.limit));
  }

  all(): string[] {
    return this.lines.slice(-this.limit);
  }
}

/** Lines kept per step for the failure report. */
export const FAILURE_LOG_LINES = 2000;

/**
 * buildx's report of a failed step:
 * ```
 * ------
 *  > [stage 2/3] RUN make:
 * cc: error …
 * ------
 * ```
 */
export function failureBlock(name: string, logs: LogTail): string[] {
  const out = ['------', ` > ${name}:`];
  if (logs.dropped > 0) out.push(`(${logs.dropped} earlier lines not shown)`);
  out.push(...logs.all().flatMap((l) => l.split('\n')).map(terminalSafe), '------');
  return out;
}
