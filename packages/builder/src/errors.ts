/**
 * Errors the build engine and CLI raise. Each kind has a stable `code` so that
 * scripts (and tests) can tell failures apart without parsing messages; where
 * a Dockerfile instruction is to blame, `file` and `line` say which.
 */
export class BuildError extends Error {
  readonly code: string;
  file?: string;
  line?: number;

  constructor(code: string, message: string, where?: { file?: string; line?: number }) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.file = where?.file;
    this.line = where?.line;
  }

  /** `Dockerfile:12` when the error has a location. */
  location(): string | undefined {
    if (this.line === undefined) return undefined;
    return `${this.file ?? 'Dockerfile'}:${this.line}`;
  }
}

export class StageNotFoundError extends BuildError {
  constructor(message: string, where?: { file?: string; line?: number }) {
    super('E_STAGE_NOT_FOUND', message, where);
  }
}

export class InvalidOptionError extends BuildError {
  constructor(message: string) {
    super('E_INVALID_OPTION', message);
  }
}

export class RunFailedError extends BuildError {
  constructor(message: string, readonly exitCode: number, where?: { file?: string; line?: number }) {
    super('E_RUN_FAILED', message, where);
  }
}

export class CopySourceError extends BuildError {
  constructor(message: string, where?: { file?: string; line?: number }) {
    super('E_COPY_SOURCE', message, where);
  }
}

export class NotSupportedError extends BuildError {
  constructor(message: string, where?: { file?: string; line?: number }) {
    super('E_NOT_SUPPORTED', message, where);
  }
}

export class InstructionError extends BuildError {
  constructor(message: string, where?: { file?: string; line?: number }) {
    super('E_INSTRUCTION', message, where);
  }
}

export class UserNamespaceError extends BuildError {
  constructor(message: string) {
    super('E_USERNS', message);
  }
}

export class RuntimeError extends BuildError {
  constructor(message: string) {
    super('E_RUNTIME', message);
  }
}

/** A step's rootfs or process would weaken the RUN sandbox (symlinked /dev, a cwd in /proc…). */
export class SandboxError extends BuildError {
  constructor(message: string) {
    super('E_SANDBOX', message);
  }
}

/** Attach a Dockerfile location to an error thrown by a lower layer, keeping its own code. */
export function withLocation<E extends Error>(err: E, where: { file?: string; line?: number }): E {
  const target = err as E & { file?: string; line?: number };
  if (target.line === undefined) {
    target.file = where.file;
    target.line = where.line;
  }
  return err;
}
