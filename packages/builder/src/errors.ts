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

/** A RUN step's isolated network (its namespace, slirp4netns) could not be set up. */
export class NetworkSetupError extends BuildError {
  constructor(message: string) {
    super('E_NETWORK_SETUP', message);
  }
}

/**
 * The Dockerfile asks for more than the sandbox gives (`RUN --network=host`,
 * `RUN --security=insecure`) and the command line did not grant it with
 * `--allow` (buildx's entitlement names): a repository must not lift its own sandbox.
 */
export class EntitlementError extends BuildError {
  constructor(message: string, where?: { file?: string; line?: number }) {
    super('E_ENTITLEMENT', message, where);
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

/** No seccomp profile is defined for the host's CPU architecture, so a RUN step cannot be sandboxed. */
export class SeccompArchError extends BuildError {
  constructor(message: string) {
    super('E_SECCOMP_ARCH', message);
  }
}

/**
 * A step stopped because the build is failing elsewhere: another stage
 * failed while this stage's RUN was running, and its container was killed.
 * The build reports the other stage's error, not this one.
 */
export class StepCancelledError extends BuildError {
  constructor(message: string) {
    super('E_CANCELLED', message);
  }
}
