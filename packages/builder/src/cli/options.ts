import { parseReference } from '@stowage/registry-client';
import { InvalidOptionError } from '../errors.js';

export const OUTPUT_TYPES = ['oci', 'docker', 'local', 'tar'] as const;
export type OutputType = (typeof OUTPUT_TYPES)[number];

/**
 * One `-o`. `names` (from `name=`, repeatable) replace the `-t` tags for
 * that image output; absent when not given.
 */
export type OutputSpec =
  | { type: 'oci' | 'docker'; dest: string; names?: string[] }
  | { type: 'local' | 'tar'; dest: string };

const KEYS: Record<OutputType, readonly string[]> = {
  oci: ['type', 'dest', 'name'],
  docker: ['type', 'dest', 'name'],
  local: ['type', 'dest'],
  tar: ['type', 'dest'],
};

const DEST_WORD: Record<OutputType, string> = { oci: 'FILE', docker: 'FILE', local: 'DIR', tar: 'FILE' };

/**
 * Parses `-o` as buildx does: `type=oci|docker|tar,dest=FILE`,
 * `type=local,dest=DIR`, `dest=FILE` (type oci), or a bare path (type oci).
 * `name=` (oci, docker; repeatable) names the image in that output instead
 * of the `-t` tags. Other types and keys fail clearly rather than being
 * ignored.
 */
export function parseOutput(value: string): OutputSpec {
  if (!value.includes('=')) {
    if (value === '' || value === '-') throw new InvalidOptionError(`-o ${JSON.stringify(value)}: writing the image to standard output is not supported yet; give a file name`);
    return { type: 'oci', dest: value };
  }
  const fields = new Map<string, string>();
  const names: string[] = [];
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new InvalidOptionError(`-o ${value}: "${part}" is not key=value`);
    const key = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (key === 'name') names.push(v);
    else fields.set(key, v);
  }
  const type = fields.get('type') ?? 'oci';
  if (type === 'image' || type === 'registry') {
    throw new InvalidOptionError(`-o ${value}: output type "${type}" (push to a registry) is not supported yet (supported: ${OUTPUT_TYPES.join(', ')})`);
  }
  if (!(OUTPUT_TYPES as readonly string[]).includes(type)) {
    throw new InvalidOptionError(`-o ${value}: output type "${type}" is not supported yet (supported: ${OUTPUT_TYPES.join(', ')})`);
  }
  const t = type as OutputType;
  for (const key of [...fields.keys(), ...(names.length > 0 ? ['name'] : [])]) {
    if (!KEYS[t].includes(key)) throw new InvalidOptionError(`-o ${value}: unknown key "${key}" for type=${t} (known: ${KEYS[t].join(', ')})`);
  }
  const dest = fields.get('dest');
  if (!dest) {
    const why = t === 'docker' ? ' (there is no daemon to load into: write a tar and `docker load -i` it)' : '';
    throw new InvalidOptionError(`-o ${value}: dest=${DEST_WORD[t]} is required${why}`);
  }
  if (dest === '-') {
    throw new InvalidOptionError(`-o ${value}: writing ${t === 'local' ? 'a directory' : 'the image'} to standard output is not supported yet; give a ${t === 'local' ? 'directory' : 'file'} name`);
  }
  if (t === 'local' || t === 'tar') return { type: t, dest };
  for (const n of names) {
    if (n === '') throw new InvalidOptionError(`-o ${value}: name= is empty`);
    try {
      parseReference(n);
    } catch (err) {
      throw new InvalidOptionError(`-o ${value}: name ${n}: ${(err as Error).message}`);
    }
  }
  return names.length > 0 ? { type: t, dest, names } : { type: t, dest };
}

/** `--build-arg K=V`; a bare `K` takes the value from the environment, as docker does. */
export function parseBuildArgs(values: string[], env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq === 0) throw new InvalidOptionError(`--build-arg ${v}: missing name`);
    if (eq < 0) {
      const fromEnv = env[v];
      if (fromEnv !== undefined) out[v] = fromEnv;
    } else out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}

/** `--registry-mirror docker.io=HOST[:PORT]` (repeatable); a bare HOST mirrors docker.io as dockerd's option does. */
export function parseMirrors(values: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    const registry = eq < 0 ? 'docker.io' : v.slice(0, eq);
    let mirror = eq < 0 ? v : v.slice(eq + 1);
    mirror = mirror.replace(/^https?:\/\//, '').replace(/\/+$/, '');
    if (!registry || !mirror) throw new InvalidOptionError(`--registry-mirror ${v}: expected REGISTRY=HOST[:PORT]`);
    (out[registry === 'index.docker.io' ? 'docker.io' : registry] ??= []).push(mirror);
  }
  return out;
}
