import { readFile } from 'node:fs/promises';

/**
 * Where a build secret comes from (`--secret id=…,src=FILE` or `env=VAR`).
 * Only the place is kept: the value is read when a step mounts it and is
 * never held longer than it takes to write it into the secrets tmpfs.
 */
export type SecretSource = { id: string; file: string } | { id: string; env: string };

export class SecretStore {
  private readonly byId: Map<string, SecretSource>;

  constructor(sources: readonly SecretSource[] = [], private readonly env: NodeJS.ProcessEnv = process.env) {
    // A later --secret with the same id replaces an earlier one, as buildx does.
    this.byId = new Map(sources.map((s) => [s.id, s]));
  }

  has(id: string): boolean {
    const src = this.byId.get(id);
    if (!src) return false;
    return 'env' in src ? this.env[src.env] !== undefined : true;
  }

  /** The secret's bytes, or undefined when it was not given (or its variable is unset). */
  async read(id: string): Promise<Buffer | undefined> {
    const src = this.byId.get(id);
    if (!src) return undefined;
    if ('env' in src) {
      const value = this.env[src.env];
      return value === undefined ? undefined : Buffer.from(value, 'utf8');
    }
    // The path was checked when the option was parsed; a file gone since is an error, not a missing secret.
    return readFile(src.file);
  }
}
