/**
 * `--progress auto|plain|tty|rawjson|quiet`: picks the renderer for the
 * build's progress events and owns everything the CLI writes around them
 * (out-of-band messages, the final error), so that a format is kept whole:
 * with rawjson, stderr carries nothing but JSON lines.
 */
import { errorEvent, plainRenderer, type ProgressListener } from '../../engine/progress.js';
import { formatError } from '../format-error.js';
import { quietRenderer } from './quiet.js';
import { rawjsonLine, rawjsonRenderer } from './rawjson.js';
import { TtyRenderer, type Clock } from './tty.js';

export const PROGRESS_MODES = ['auto', 'plain', 'tty', 'rawjson', 'quiet'] as const;
export type ProgressMode = (typeof PROGRESS_MODES)[number];
export type ResolvedProgressMode = Exclude<ProgressMode, 'auto'>;

export interface TextStream {
  write(text: string): unknown;
}

export interface TerminalStream extends TextStream {
  isTTY?: boolean;
  columns?: number;
  rows?: number;
}

/** buildx's rule: `auto` is the live view on a terminal (unless TERM=dumb), plain lines otherwise. */
export function resolveProgressMode(mode: ProgressMode, stderr: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): ResolvedProgressMode {
  if (mode !== 'auto') return mode;
  return stderr.isTTY === true && env['TERM'] !== 'dumb' ? 'tty' : 'plain';
}

/** A terminal that can show UTF-8 (for the spinner), judged from the locale as ncurses does. */
export function utf8Locale(env: NodeJS.ProcessEnv = process.env): boolean {
  const locale = env['LC_ALL'] || env['LC_CTYPE'] || env['LANG'] || '';
  return /utf-?8/i.test(locale);
}

export interface ProgressOutput {
  readonly mode: ResolvedProgressMode;
  /** Gets every event of the build. */
  readonly listener: ProgressListener;
  /** A line outside any step that must show now (a warning before the build, an interrupt). Quiet drops it. */
  message(line: string): void;
  /** Reports the build's failure in this format; the last thing written. */
  fail(err: unknown, debug: boolean): void;
  /** Final frame of the live view; idempotent. */
  close(): void;
}

export interface ProgressOutputOptions {
  stderr?: TerminalStream;
  stdout?: TextStream;
  env?: NodeJS.ProcessEnv;
  /** For tests of the live view. */
  clock?: Clock;
}

export function createProgressOutput(requested: ProgressMode, opts: ProgressOutputOptions = {}): ProgressOutput {
  const stderr = opts.stderr ?? process.stderr;
  const stdout = opts.stdout ?? process.stdout;
  const env = opts.env ?? process.env;
  const mode = resolveProgressMode(requested, stderr, env);
  const err = (text: string) => void stderr.write(text);
  const textFailure = (e: unknown, debug: boolean) => err(`${formatError(e, debug)}\n`);
  switch (mode) {
    case 'plain': {
      const listener = plainRenderer((line) => err(`${line}\n`));
      return { mode, listener, message: (line) => err(`${line}\n`), fail: textFailure, close: () => undefined };
    }
    case 'rawjson': {
      const listener = rawjsonRenderer(err);
      return {
        mode,
        listener,
        message: (line) => listener({ type: 'note', line, time: Date.now() }),
        fail: (e) => err(rawjsonLine({ ...errorEvent(e), time: Date.now() })),
        close: () => undefined,
      };
    }
    case 'quiet': {
      const listener = quietRenderer((text) => void stdout.write(text), err);
      return { mode, listener, message: () => undefined, fail: textFailure, close: () => undefined };
    }
    case 'tty': {
      const tty = new TtyRenderer({
        write: err,
        columns: () => stderr.columns ?? 0,
        rows: () => stderr.rows ?? 24,
        unicode: utf8Locale(env),
        ...(opts.clock ? { clock: opts.clock } : {}),
      });
      return {
        mode,
        listener: tty.listener,
        message: (line) => tty.message(line),
        fail: (e, debug) => {
          tty.close();
          textFailure(e, debug);
        },
        close: () => tty.close(),
      };
    }
  }
}

export const PROGRESS_HELP =
  'Progress output on stderr: tty (live view redrawn in place) | plain (one line per event, as BuildKit\'s #N lines) | ' +
  'rawjson (one JSON object per line per event, then an "error" event on failure) | quiet (nothing but errors; ' +
  'the image digest on stdout) | auto (tty when stderr is a terminal and TERM is not dumb, else plain)';
