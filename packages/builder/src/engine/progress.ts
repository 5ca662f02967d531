/**
 * Plain progress output in the spirit of `docker build --progress plain`:
 * numbered steps, their output prefixed with the step number, and a final
 * DONE/ERROR line with the step's wall time. Everything goes to one sink
 * (stderr in the CLI), so it never mixes with machine-readable stdout.
 */
export interface ProgressStep {
  log(line: string): void;
  done(note?: string): void;
  fail(message: string): void;
}

export class Progress {
  private counter = 0;

  constructor(private readonly sink: (line: string) => void) {}

  start(label: string): ProgressStep {
    const n = ++this.counter;
    const started = process.hrtime.bigint();
    const seconds = () => (Number(process.hrtime.bigint() - started) / 1e9).toFixed(1);
    this.sink(`#${n} ${label}`);
    return {
      log: (line) => this.sink(`#${n} ${line}`),
      done: (note) => this.sink(`#${n} ${note ? `${note} ` : ''}DONE ${seconds()}s`),
      fail: (message) => this.sink(`#${n} ERROR: ${message}`),
    };
  }

  /** A message not tied to a step (warnings, the final summary). */
  note(line: string): void {
    this.sink(line);
  }
}
