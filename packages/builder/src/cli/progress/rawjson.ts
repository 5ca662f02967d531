/**
 * `--progress rawjson`: every progress event as one JSON object on its own
 * line, with the field names of `ProgressEvent` (see docs/architecture.md).
 * JSON.stringify escapes newlines inside strings, so a line is always one
 * whole event; programs (the `build()` API among them) read it line by line.
 */
import type { ProgressEvent, ProgressListener } from '../../engine/progress.js';

export function rawjsonLine(event: ProgressEvent): string {
  return `${JSON.stringify(event)}\n`;
}

export function rawjsonRenderer(write: (text: string) => void): ProgressListener {
  return (event) => write(rawjsonLine(event));
}
