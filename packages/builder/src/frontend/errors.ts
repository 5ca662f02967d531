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
    super(message);
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
