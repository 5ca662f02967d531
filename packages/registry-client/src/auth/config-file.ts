/**
 * Read-modify-write of Docker's client config file for `login`/`logout`.
 *
 * The file belongs to the user and to other tools (docker, buildx, skopeo,
 * podman read it), so every key we do not manage is written back as it was,
 * and the new file replaces the old one by rename: a crash leaves either the
 * old file or the new one, never half of one. Like docker, a config that is a
 * symlink stays one (the target is replaced). Unlike docker, which keeps the
 * old file's mode, the result is always 0600: it may hold passwords.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, realpath, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CredentialStoreError } from '../errors.js';

export type ConfigObject = Record<string, unknown>;

/** The parsed file, {} when it does not exist. A file that is not a JSON object is an error: we must not overwrite it. */
export async function readConfigObject(path: string): Promise<ConfigObject> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CredentialStoreError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  if (text.trim() === '') return {};
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CredentialStoreError(`${path} is not valid JSON; fix or remove it first`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new CredentialStoreError(`${path} does not hold a JSON object; fix or remove it first`);
  return json as ConfigObject;
}

/** Writes `config` to `path` atomically (temp file in the same directory, fsync, rename), mode 0600. */
export async function writeConfigObject(path: string, config: ConfigObject): Promise<void> {
  const target = await realpath(path).catch(() => path);
  const dir = dirname(target);
  await mkdir(dir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
    throw new CredentialStoreError(`cannot create ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  });
  const tmp = join(dir, `.${basename(target)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(config, null, '\t')}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(tmp, 0o600); // whatever the umask did
    await rename(tmp, target);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    if (err instanceof CredentialStoreError) throw err;
    throw new CredentialStoreError(`cannot write ${target}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  // The rename is durable only once the directory is synced; best effort (not every filesystem allows it).
  const dh = await open(dir, 'r').catch(() => undefined);
  await dh?.sync().catch(() => undefined);
  await dh?.close();
}
