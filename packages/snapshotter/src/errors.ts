/**
 * Typed errors with stable `code`s: the build engine (and users' scripts) match
 * on `code`, never on message text, so messages may change freely.
 */
export type SnapshotErrorCode =
  | 'E_SNAPSHOT'
  | 'E_LAYER_UNSAFE_PATH'
  | 'E_LAYER_UNSUPPORTED'
  | 'E_LAYER_INVALID'
  | 'E_SNAPSHOT_NOT_FOUND'
  | 'E_SNAPSHOT_EXISTS'
  | 'E_SNAPSHOT_IN_USE'
  | 'E_MOUNT';

export class SnapshotError extends Error {
  readonly code: SnapshotErrorCode;
  constructor(message: string, code: SnapshotErrorCode = 'E_SNAPSHOT', options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A layer entry tried to reach outside the extraction root (or is otherwise unsafe to apply). */
export class UnsafeLayerPathError extends SnapshotError {
  readonly entryPath: string;
  constructor(entryPath: string, reason: string) {
    super(`unsafe layer entry ${JSON.stringify(entryPath)}: ${reason}`, 'E_LAYER_UNSAFE_PATH');
    this.entryPath = entryPath;
  }
}

/** The layer uses a compression or tar feature we do not handle (zstd, bzip2, xz, …). */
export class UnsupportedLayerError extends SnapshotError {
  constructor(message: string) {
    super(message, 'E_LAYER_UNSUPPORTED');
  }
}

/** The layer stream is not a well-formed tar archive. */
export class InvalidLayerError extends SnapshotError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'E_LAYER_INVALID', options);
  }
}

export class SnapshotNotFoundError extends SnapshotError {
  constructor(what: string) {
    super(`snapshot not found: ${what}`, 'E_SNAPSHOT_NOT_FOUND');
  }
}

export class SnapshotExistsError extends SnapshotError {
  constructor(what: string) {
    super(`snapshot already exists: ${what}`, 'E_SNAPSHOT_EXISTS');
  }
}

/** Removing a committed snapshot that overlay children still stack on. */
export class SnapshotInUseError extends SnapshotError {
  constructor(what: string, reason: string) {
    super(`snapshot ${what} is in use: ${reason}`, 'E_SNAPSHOT_IN_USE');
  }
}

export class MountError extends SnapshotError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'E_MOUNT', options);
  }
}
