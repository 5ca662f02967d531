import { InvalidOptionError } from '../errors.js';

export type OutputSpec = { type: 'oci'; dest: string };

/**
 * Parses `-o` as buildx does: `type=oci,dest=FILE`, `dest=FILE` (type oci),
 * or a bare path. Other types come later and fail clearly rather than being
 * ignored.
 */
export function parseOutput(value: string): OutputSpec {
  if (!value.includes('=')) {
    if (value === '' || value === '-') throw new InvalidOptionError(`-o ${JSON.stringify(value)}: writing the image to standard output is not supported yet; give a file name`);
    return { type: 'oci', dest: value };
  }
  const fields = new Map<string, string>();
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new InvalidOptionError(`-o ${value}: "${part}" is not key=value`);
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const type = fields.get('type') ?? 'oci';
  if (type !== 'oci') throw new InvalidOptionError(`-o ${value}: output type "${type}" is not supported yet (supported: oci)`);
  const dest = fields.get('dest');
  if (!dest) throw new InvalidOptionError(`-o ${value}: dest=FILE is required`);
  if (dest === '-') throw new InvalidOptionError(`-o ${value}: writing the image to standard output is not supported yet; give a file name`);
  for (const key of fields.keys()) {
    if (key !== 'type' && key !== 'dest' && key !== 'name') throw new InvalidOptionError(`-o ${value}: unknown key "${key}"`);
  }
  return { type: 'oci', dest };
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
