/**
 * Typed errors with stable `code`s. Callers (the build engine, the CLI) switch
 * on `code`, never on message text, so messages can be improved freely.
 *
 * Messages name the reference and, where relevant, the registry host that
 * failed. They must never contain credentials or tokens: anything derived from
 * a server response goes through `redact()` in client.ts before it lands here.
 */
export class RegistryError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class InvalidReferenceError extends RegistryError {
  constructor(message: string) {
    super('E_INVALID_REFERENCE', message);
  }
}

export class RegistryAuthError extends RegistryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_REGISTRY_AUTH', message, options);
  }
}

export class ManifestNotFoundError extends RegistryError {
  constructor(message: string) {
    super('E_MANIFEST_UNKNOWN', message);
  }
}

export class ManifestInvalidError extends RegistryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_MANIFEST_INVALID', message, options);
  }
}

/** Also used for size mismatches: both mean "these bytes are not what was promised". */
export class DigestMismatchError extends RegistryError {
  constructor(message: string) {
    super('E_DIGEST_MISMATCH', message);
  }
}

export class PlatformNotFoundError extends RegistryError {
  constructor(message: string) {
    super('E_PLATFORM_NOT_FOUND', message);
  }
}

/** Connection failures, timeouts, and 5xx/429 that persisted through every retry. */
export class RegistryUnavailableError extends RegistryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_REGISTRY_UNAVAILABLE', message, options);
  }
}

/**
 * A request (every attempt, redirect and the whole body, for one endpoint)
 * took longer than its total deadline: the server kept the connection busy
 * (say, one byte every 59 s, which no idle timeout catches) without
 * finishing. Not retried against the same host: a server that slow, or that
 * slow on purpose, would only spend the deadline again; a mirror that hits it
 * falls through to the next endpoint. `host` is the host that was too slow.
 */
export class RegistryDeadlineError extends RegistryError {
  readonly host: string;
  readonly deadlineMs: number;
  constructor(message: string, details: { host: string; deadlineMs: number }) {
    super('E_REGISTRY_DEADLINE', message);
    this.host = details.host;
    this.deadlineMs = details.deadlineMs;
  }
}

/**
 * A reader following a download (IngestWriter.follow) lost it: the download
 * started over from byte 0 or was abandoned. The blob, once downloaded, is
 * still good; the reader must start again from the store.
 */
export class IngestInterruptedError extends RegistryError {
  constructor(message: string) {
    super('E_INGEST_INTERRUPTED', message);
  }
}

/** A malformed or unsupported digest string (from a caller or a manifest). */
export class InvalidDigestError extends RegistryError {
  constructor(message: string) {
    super('E_INVALID_DIGEST', message);
  }
}

/** A blob the registry (or the local content store) does not have. */
export class BlobNotFoundError extends RegistryError {
  constructor(message: string) {
    super('E_BLOB_UNKNOWN', message);
  }
}

/** Any other non-retryable HTTP failure (400, 405, …). */
export class RegistryRequestError extends RegistryError {
  readonly status: number;
  constructor(status: number, message: string) {
    super('E_REGISTRY_REQUEST', message);
    this.status = status;
  }
}

/**
 * A push the registry refused or answered outside the protocol (unexpected
 * status, missing Location, wrong digest echoed back). `status` is the HTTP
 * status when there was one.
 */
export class RegistryPushError extends RegistryError {
  readonly status: number | undefined;
  constructor(message: string, options?: { cause?: unknown; status?: number }) {
    super('E_REGISTRY_PUSH', message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.status = options?.status;
  }
}

/**
 * Docker's client config could not be read or written, or a credential
 * helper (`docker-credential-<name>`) failed to store or erase credentials.
 * Messages name the file or helper, never a secret.
 */
export class CredentialStoreError extends RegistryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_CREDENTIAL_STORE', message, options);
  }
}

/**
 * The caller's destination check refused a URL (the first one or a
 * redirect's target): not retried, the message is the caller's reason.
 */
export class DestinationRefusedError extends RegistryError {
  constructor(message: string) {
    super('E_DESTINATION_REFUSED', message);
  }
}
