import { posix } from 'node:path';

/**
 * `RUN --mount=…` specs, parsed as BuildKit's Dockerfile frontend does
 * (instructions/commands_runmount.go): comma-separated CSV fields, keys
 * case-insensitive, values expanded with the stage's ARGs and ENV except
 * `from` (a stage dependency, fixed when the build is planned).
 */
export type Sharing = 'shared' | 'private' | 'locked';

export interface BindMountSpec {
  type: 'bind';
  target: string;
  /** Path inside `from` (or the context); `/` when not given. */
  source: string;
  /** A stage name or index, or an image; the build context when absent. Raw, not expanded. */
  from?: string;
  readonly: boolean;
}

export interface CacheMountSpec {
  type: 'cache';
  target: string;
  id: string;
  sharing: Sharing;
  /** Seeds a new cache directory with `source` of this stage or image. Raw, not expanded. */
  from?: string;
  source: string;
  mode: number;
  uid: number;
  gid: number;
  readonly: boolean;
}

export interface TmpfsMountSpec {
  type: 'tmpfs';
  target: string;
  /** Bytes; the kernel's default (half of RAM) when absent. */
  size?: number;
  readonly: boolean;
}

export interface SecretMountSpec {
  type: 'secret';
  id: string;
  /** The file's path; absent when only `env` was asked for. */
  target?: string;
  /** Expose the secret as this environment variable too. */
  env?: string;
  required: boolean;
  mode: number;
  uid: number;
  gid: number;
}

export interface SshMountSpec {
  type: 'ssh';
}

export type MountSpec = BindMountSpec | CacheMountSpec | TmpfsMountSpec | SecretMountSpec | SshMountSpec;
export type MountType = MountSpec['type'];

export class MountSpecError extends Error {}

const TYPES: readonly MountType[] = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'];
const SHARING: readonly Sharing[] = ['shared', 'private', 'locked'];

/** Spellings BuildKit accepts, by the name used below. */
const ALIASES: Record<string, string> = {
  type: 'type', from: 'from', source: 'source', src: 'source', target: 'target', dst: 'target', destination: 'target',
  readonly: 'readonly', ro: 'readonly', readwrite: 'readwrite', rw: 'readwrite', required: 'required', size: 'size',
  id: 'id', sharing: 'sharing', mode: 'mode', uid: 'uid', gid: 'gid', env: 'env',
};

/** The options each type takes; anything else is refused rather than silently ignored. */
const ALLOWED: Record<MountType, readonly string[]> = {
  bind: ['type', 'target', 'source', 'from', 'readonly', 'readwrite'],
  cache: ['type', 'target', 'id', 'sharing', 'from', 'source', 'mode', 'uid', 'gid', 'readonly', 'readwrite'],
  tmpfs: ['type', 'target', 'size', 'readonly', 'readwrite'],
  secret: ['type', 'target', 'id', 'source', 'env', 'required', 'mode', 'uid', 'gid'],
  ssh: ['type', 'target', 'id', 'source', 'required', 'mode', 'uid', 'gid'],
};

/** Options that may stand without `=value` (a boolean `true`). */
const FLAGS = new Set(['readonly', 'readwrite', 'required']);

/**
 * Splits one line of CSV as Go's encoding/csv reads it: a field that starts
 * with `"` is quoted (`""` is a literal quote, commas inside are kept).
 */
export function splitCsv(line: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw new MountSpecError(`unterminated quote in ${JSON.stringify(line)}`);
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += line[i++];
      }
      if (i < line.length && line[i] !== ',') throw new MountSpecError(`unexpected text after a quoted field in ${JSON.stringify(line)}`);
    } else {
      const end = line.indexOf(',', i);
      field = end < 0 ? line.slice(i) : line.slice(i, end);
      if (field.includes('"')) throw new MountSpecError(`bare " in a field of ${JSON.stringify(line)}`);
      i = end < 0 ? line.length : end;
    }
    fields.push(field);
    if (i >= line.length) return fields;
    i++; // the comma
  }
}

function parseBool(key: string, value: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  throw new MountSpecError(`invalid value for ${key}: ${JSON.stringify(value)} (expected true or false)`);
}

function parseId(key: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 0xffffffff) throw new MountSpecError(`invalid value for ${key}: ${JSON.stringify(value)} (expected a number)`);
  return Number(value);
}

function parseMode(value: string): number {
  if (!/^[0-7]+$/.test(value) || parseInt(value, 8) > 0o7777) throw new MountSpecError(`invalid value for mode: ${JSON.stringify(value)} (expected octal permission bits, e.g. 0755)`);
  return parseInt(value, 8);
}

/** docker/go-units RAMInBytes: `64m`, `1g`, `1.5GiB`, `4096` (binary multiples). */
export function parseSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$/i.exec(value);
  if (!m) throw new MountSpecError(`invalid value for size: ${JSON.stringify(value)} (expected bytes, e.g. 64m or 1g)`);
  const power = m[2] ? 'kmgtp'.indexOf(m[2].toLowerCase()) + 1 : 0;
  return Math.floor(Number(m[1]) * 1024 ** power);
}

/** A mount target: absolute, relative ones taken from WORKDIR, never `/` itself. */
function resolveTarget(target: string, workdir: string): string {
  if (target === '') throw new MountSpecError('target is empty');
  const abs = posix.resolve('/', workdir || '/', target);
  if (abs === '/') throw new MountSpecError('cannot mount over the root directory (target=/)');
  return abs;
}

export interface ParseMountOptions {
  /** Expands `$VAR` in a value with the stage's ARGs and ENV. */
  expand: (value: string) => string;
  /** The stage's WORKDIR, for relative targets. */
  workdir: string;
}

/**
 * Parses one `--mount` value. Every field is checked: unknown keys, options
 * that do not apply to the type, bad numbers and a missing target fail with
 * a {@link MountSpecError} naming the field.
 */
export function parseMountSpec(raw: string, opts: ParseMountOptions): MountSpec {
  const fields = new Map<string, string>();
  for (const field of splitCsv(raw)) {
    if (field === '') continue;
    const eq = field.indexOf('=');
    const rawKey = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    const key = ALIASES[rawKey];
    if (key === undefined) throw new MountSpecError(`unknown mount option "${rawKey}" (known: ${Object.keys(ALIASES).join(', ')})`);
    if (eq < 0 && !FLAGS.has(key)) throw new MountSpecError(`"${field}" must be a key=value pair`);
    if (fields.has(key)) throw new MountSpecError(`option "${rawKey}" is given more than once`);
    let value = eq < 0 ? 'true' : field.slice(eq + 1);
    if (key === 'from') {
      // As in BuildKit: a stage dependency must be known before anything runs.
      if (/\$./.test(value)) throw new MountSpecError(`from=${value}: variables are not expanded in from; name a stage instead`);
    } else if (eq >= 0) {
      value = opts.expand(value);
    }
    fields.set(key, value);
  }

  const typeValue = (fields.get('type') ?? 'bind').toLowerCase();
  if (!(TYPES as readonly string[]).includes(typeValue)) throw new MountSpecError(`unsupported mount type "${typeValue}" (expected one of ${TYPES.join(', ')})`);
  const type = typeValue as MountType;
  for (const key of fields.keys()) {
    if (!ALLOWED[type].includes(key)) throw new MountSpecError(`option "${key}" does not apply to type=${type} (it takes ${ALLOWED[type].join(', ')})`);
  }
  if (type === 'ssh') return { type };
  if (fields.has('readonly') && fields.has('readwrite')) throw new MountSpecError('give readonly or readwrite, not both');
  const readonly = (def: boolean): boolean => {
    if (fields.has('readonly')) return parseBool('readonly', fields.get('readonly')!);
    if (fields.has('readwrite')) return !parseBool('readwrite', fields.get('readwrite')!);
    return def;
  };
  const num = (key: string, def: number): number => (fields.has(key) ? parseId(key, fields.get(key)!) : def);
  const mode = (def: number): number => (fields.has('mode') ? parseMode(fields.get('mode')!) : def);
  const target = fields.has('target') ? resolveTarget(fields.get('target')!, opts.workdir) : undefined;
  const from = fields.get('from');
  if (from === '') throw new MountSpecError('from is empty');
  const source = fields.get('source') ?? '/';

  switch (type) {
    case 'bind':
      if (target === undefined) throw new MountSpecError('target is required for type=bind');
      return { type, target, source, ...(from !== undefined ? { from } : {}), readonly: readonly(true) };
    case 'tmpfs': {
      if (target === undefined) throw new MountSpecError('target is required for type=tmpfs');
      const size = fields.has('size') ? parseSize(fields.get('size')!) : undefined;
      return { type, target, ...(size !== undefined ? { size } : {}), readonly: readonly(false) };
    }
    case 'cache': {
      if (target === undefined) throw new MountSpecError('target is required for type=cache');
      const sharing = (fields.get('sharing') ?? 'shared').toLowerCase();
      if (!(SHARING as readonly string[]).includes(sharing)) throw new MountSpecError(`unsupported sharing "${sharing}" (expected one of ${SHARING.join(', ')})`);
      const id = fields.get('id') || target;
      return {
        type, target, id, sharing: sharing as Sharing, ...(from !== undefined ? { from } : {}), source,
        mode: mode(0o755), uid: num('uid', 0), gid: num('gid', 0), readonly: readonly(false),
      };
    }
    case 'secret': {
      // BuildKit takes `source` as another spelling of the id for secrets.
      if (fields.has('id') && fields.has('source')) throw new MountSpecError('give the secret\'s id= or source=, not both');
      const env = fields.get('env');
      if (env !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(env)) throw new MountSpecError(`env=${env} is not a valid environment variable name`);
      const id = fields.get('id') ?? fields.get('source') ?? (target !== undefined ? posix.basename(target) : '');
      if (id === '') throw new MountSpecError('a secret mount needs id= (or a target= to take it from)');
      // Without env=, the secret is a file; with env= only, it is not written anywhere in the container.
      const file = target ?? (env === undefined ? `/run/secrets/${posix.basename(id)}` : undefined);
      return {
        type, id, ...(file !== undefined ? { target: file } : {}), ...(env !== undefined ? { env } : {}),
        required: fields.has('required') ? parseBool('required', fields.get('required')!) : false,
        mode: mode(0o400), uid: num('uid', 0), gid: num('gid', 0),
      };
    }
  }
}

/**
 * The raw `from=` of a mount spec, for the planner (which must build that
 * stage first); undefined when there is none or the spec does not parse
 * (the engine reports that when the step runs).
 */
export function mountFrom(raw: string): string | undefined {
  try {
    for (const field of splitCsv(raw)) {
      const eq = field.indexOf('=');
      if (eq > 0 && field.slice(0, eq).toLowerCase() === 'from') return field.slice(eq + 1) || undefined;
    }
  } catch {
    return undefined;
  }
  return undefined;
}
