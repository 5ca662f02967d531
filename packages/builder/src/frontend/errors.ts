/**
 * The single error type the Dockerfile frontend throws.
 *
 * The message never contains the file name: callers (the CLI) prefix it as
 * `Dockerfile:12: message`, and `location()` gives them that prefix.
 */
export class DockerfileParseError extends Error {
  readonly code = 'E_DOCKERFILE_PARSE';

  constructor(
    message: string,
    readonly line: number | undefined,
    readonly file?: string,
  ) {
    super(printable(message, MAX_MESSAGE));
    this.name = 'DockerfileParseError';
  }

  /** `file:line` when both are known, otherwise whichever is known (or ''). */
  location(): string {
    if (this.file !== undefined && this.line !== undefined) return `${this.file}:${this.line}`;
    if (this.file !== undefined) return this.file;
    if (this.line !== undefined) return `line ${this.line}`;
    return '';
  }

  /** Same error, attributed to `file` (the parser itself does not know file names). */
  withFile(file: string | undefined): DockerfileParseError {
    if (file === undefined || file === this.file) return this;
    const copy = new DockerfileParseError(this.message, this.line, file);
    copy.stack = this.stack;
    return copy;
  }
}

/**
 * A word could not be expanded (`${X:?}` on an empty X, an unterminated quote,
 * a bad substitution…). Thrown by `ShellLex`; the caller knows the line.
 */
export class ShellExpansionError extends Error {
  readonly code = 'E_SHELL_EXPANSION';

  constructor(message: string) {
    super(message);
    this.name = 'ShellExpansionError';
  }
}

/** The longest parse error message shown: what it quotes comes from the file, which may be anything. */
const MAX_MESSAGE = 400;
/** The longest piece of a Dockerfile line an error quotes. */
const MAX_EXCERPT = 40;

/**
 * `text` with control characters escaped (`\x1b`, `\n`…: a file must not
 * move the cursor of the terminal reading the log, nor forge a log line) and
 * cut to `max` characters with `…`.
 */
export function printable(text: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  const escaped = text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]|\n|\t/g, (c) =>
    c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return escaped.length > max ? `${escaped.slice(0, max - 1)}…` : escaped;
}

/**
 * A bounded, printable excerpt of Dockerfile text for an error message. The
 * file may not be a Dockerfile at all (`-f ~/.docker/config.json`): an error
 * must not copy a whole line of it (a credential) into a CI log.
 */
export function excerpt(text: string): string {
  return printable(text, MAX_EXCERPT);
}
