/**
 * Build progress as a stream of typed events. The engine and exporters only
 * emit events; a renderer decides what a user sees (plain lines, a live tty
 * view, JSON lines) and the programmatic API hands the same events to its
 * caller. Renderers write to stderr in the CLI, so nothing mixes with stdout.
 */
export type ProgressEvent =
  | { type: 'step.start'; step: number; name: string; time: number }
  | { type: 'step.log'; step: number; line: string; time: number }
  /** A cache lookup: a hit reuses an earlier result; a miss says which input changed, when known. */
  | { type: 'step.cache'; step: number; hit: boolean; reason?: string; time: number }
  /** The layer a step produced: its digest, compressed size, and the files in its diff when known. */
  | { type: 'step.layer'; step: number; digest: string; size: number; files?: number; time: number }
  /** Bytes moved for something a step transfers (a pull, an export, a push). */
  | { type: 'step.bytes'; step: number; id: string; current: number; total?: number; time: number }
  | { type: 'step.end'; step: number; status: 'done' | 'cached' | 'error'; durationMs: number; note?: string; error?: string; time: number }
  /** A message not tied to a step (warnings, state root, the final summary). */
  | { type: 'note'; line: string; time: number }
  | { type: 'summary'; digest: string; size: number; durationMs: number; time: number }
  /** The build failed: the last event. `code` is the error's stable code; `file`/`line` the Dockerfile location when there is one. */
  | { type: 'error'; message: string; code?: string; file?: string; line?: number; time: number };

export type ProgressEventType = ProgressEvent['type'];

type Unstamped<E> = E extends unknown ? Omit<E, 'time'> : never;

export type ProgressListener = (event: ProgressEvent) => void;

export interface ProgressStep {
  log(line: string): void;
  /** The step's result came from the build cache. */
  cached(): void;
  /** The step had to run; `reason` names what changed since the nearest earlier run. */
  cacheMiss(reason?: string): void;
  layer(info: { digest: string; size: number; files?: number }): void;
  bytes(id: string, current: number, total?: number): void;
  done(note?: string): void;
  fail(message: string): void;
}

/**
 * Byte counts arrive per network or disk chunk (thousands per layer); one
 * event per id per this many milliseconds is plenty for a person or a
 * program watching, and the first and the last count always go out.
 */
export const BYTES_INTERVAL_MS = 100;

export class Progress {
  private counter = 0;
  private readonly listeners: ProgressListener[] = [];

  /** A listener for every event; a plain line writer can be given for the classic output. */
  constructor(listener?: ProgressListener) {
    if (listener) this.listeners.push(listener);
  }

  /** Adds a listener; returns a function that removes it. */
  on(listener: ProgressListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  emit(event: Unstamped<ProgressEvent>): void {
    const stamped = { ...event, time: Date.now() } as ProgressEvent;
    for (const listener of this.listeners) listener(stamped);
  }

  start(name: string): ProgressStep {
    const step = ++this.counter;
    const started = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - started) / 1e6;
    let cached = false;
    const lastBytes = new Map<string, number>();
    this.emit({ type: 'step.start', step, name });
    return {
      log: (line) => this.emit({ type: 'step.log', step, line }),
      cached: () => {
        cached = true;
        this.emit({ type: 'step.cache', step, hit: true });
      },
      cacheMiss: (reason) => this.emit({ type: 'step.cache', step, hit: false, ...(reason !== undefined ? { reason } : {}) }),
      layer: (info) => this.emit({ type: 'step.layer', step, ...info }),
      bytes: (id, current, total) => {
        const now = Date.now();
        const last = lastBytes.get(id);
        if (last !== undefined && now - last < BYTES_INTERVAL_MS && current !== total) return;
        lastBytes.set(id, now);
        this.emit({ type: 'step.bytes', step, id, current, ...(total !== undefined ? { total } : {}) });
      },
      done: (note) => this.emit({ type: 'step.end', step, status: cached ? 'cached' : 'done', durationMs: elapsed(), ...(note ? { note } : {}) }),
      fail: (message) => this.emit({ type: 'step.end', step, status: 'error', durationMs: elapsed(), error: message }),
    };
  }

  note(line: string): void {
    this.emit({ type: 'note', line });
  }
}

/**
 * BuildKit-style plain lines: `#N name`, output prefixed `#N `, `#N CACHED`,
 * `#N cache miss: …`, then `#N DONE 1.2s` or `#N ERROR: …`.
 */
export function plainRenderer(write: (line: string) => void): ProgressListener {
  return (event) => {
    switch (event.type) {
      case 'step.start': return write(`#${event.step} ${event.name}`);
      case 'step.log': return write(`#${event.step} ${event.line}`);
      case 'step.cache': return write(event.hit ? `#${event.step} CACHED` : `#${event.step} cache miss${event.reason ? `: ${event.reason}` : ''}`);
      case 'step.layer': return write(`#${event.step} layer ${event.digest} (${event.size} bytes${event.files !== undefined ? `, ${event.files} files` : ''})`);
      case 'step.bytes': return undefined;
      case 'step.end':
        if (event.status === 'error') return write(`#${event.step} ERROR: ${event.error ?? 'failed'}`);
        return write(`#${event.step} ${event.note ? `${event.note} ` : ''}DONE ${(event.durationMs / 1000).toFixed(1)}s`);
      case 'note': return write(event.line);
      case 'summary': return write(`built ${event.digest} (${event.size} bytes) in ${(event.durationMs / 1000).toFixed(1)}s`);
      case 'error': return write(errorLine(event));
    }
  };
}

/** The `error` event for a failure: message, stable code and Dockerfile location when the error has them. */
export function errorEvent(err: unknown): Omit<Extract<ProgressEvent, { type: 'error' }>, 'time'> {
  if (!(err instanceof Error)) return { type: 'error', message: String(err) };
  const e = err as Error & { code?: unknown; file?: unknown; line?: unknown };
  return {
    type: 'error',
    message: e.message,
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(typeof e.line === 'number' ? { file: typeof e.file === 'string' ? e.file : 'Dockerfile', line: e.line } : {}),
  };
}

/** `error: Dockerfile:12: message`, or `error: message` without a location. */
export function errorLine(e: { message: string; file?: string; line?: number }): string {
  return `error: ${e.line !== undefined ? `${e.file ?? 'Dockerfile'}:${e.line}: ` : ''}${e.message}`;
}
