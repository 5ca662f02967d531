import { didYouMean } from '../suggest.js';
import { parseReference } from '@stowage/registry-client';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { basename, resolve as resolvePath } from 'node:path';
import { InvalidOptionError } from '../errors.js';
import type { SecretSource } from '../engine/secrets.js';

export const OUTPUT_TYPES = ['oci', 'docker', 'local', 'tar', 'registry'] as const;
export type OutputType = (typeof OUTPUT_TYPES)[number];
export type FileOutputType = Exclude<OutputType, 'registry'>;

/**
 * One `-o`. `names` (from `name=`, repeatable) replace the `-t` tags for
 * that image output; absent when not given.
 */
export type FileOutputSpec =
  | { type: 'oci' | 'docker'; dest: string; names?: string[] }
  /** `preserveSpecial` (`preserve-special=true`): keep the setuid/setgid bits of files, which type=local drops by default. */
  | { type: 'local'; dest: string; preserveSpecial?: boolean }
  | { type: 'tar'; dest: string };
/** `-o type=registry[,name=REF]`: push after the file outputs are committed. */
export type RegistryOutputSpec = { type: 'registry'; names?: string[] };
export type OutputSpec = FileOutputSpec | RegistryOutputSpec;

const KEYS: Record<OutputType, readonly string[]> = {
  oci: ['type', 'dest', 'name'],
  docker: ['type', 'dest', 'name'],
  local: ['type', 'dest', 'preserve-special'],
  tar: ['type', 'dest'],
  registry: ['type', 'name', 'push'],
};

const DEST_WORD: Record<FileOutputType, string> = { oci: 'FILE', docker: 'FILE', local: 'DIR', tar: 'FILE' };

export function isRegistryOutput(o: OutputSpec): o is RegistryOutputSpec {
  return o.type === 'registry';
}

function checkNames(value: string, names: string[]): void {
  for (const n of names) {
    if (n === '') throw new InvalidOptionError(`-o ${value}: name= is empty`);
    try {
      parseReference(n);
    } catch (err) {
      throw new InvalidOptionError(`-o ${value}: name ${n}: ${(err as Error).message}`);
    }
  }
}

/**
 * The names to push to, in order and without duplicates (compared fully
 * qualified): each `type=registry` output's `name=`s, or the `-t` tags for
 * one without (as `--push` is). Fails when such an output has no name at all.
 */
export function registryNames(outputs: OutputSpec[], tags: string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const o of outputs) {
    if (!isRegistryOutput(o)) continue;
    const names = o.names ?? tags;
    if (names.length === 0) {
      throw new InvalidOptionError('-o type=registry / --push: no image name to push to; give -t REGISTRY/REPOSITORY:TAG or -o type=registry,name=REGISTRY/REPOSITORY:TAG');
    }
    for (const n of names) {
      const key = parseReference(n).toString();
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(n);
    }
  }
  return out;
}

/**
 * Parses `-o` as buildx does: `type=oci|docker|tar,dest=FILE`,
 * `type=local,dest=DIR[,preserve-special=true]`, `type=registry[,name=REF]` (push; without a name,
 * to the `-t` tags), `dest=FILE` (type oci), or a bare path (type oci).
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
  if (type === 'image') {
    throw new InvalidOptionError(`-o ${value}: output type "image" (the image store of a daemon) is not supported; use type=registry to push (supported: ${OUTPUT_TYPES.join(', ')})`);
  }
  if (!(OUTPUT_TYPES as readonly string[]).includes(type)) {
    // buildx's own type stowage lacks, or a typo.
    if (type === 'cacheonly') throw new InvalidOptionError(`-o ${value}: output type "${type}" is not supported yet (supported: ${OUTPUT_TYPES.join(', ')})`);
    throw new InvalidOptionError(`-o ${value}: unknown output type "${type}"${didYouMean(type, OUTPUT_TYPES)} (supported: ${OUTPUT_TYPES.join(', ')})`);
  }
  const ty = type as OutputType;
  for (const key of [...fields.keys(), ...(names.length > 0 ? ['name'] : [])]) {
    if (!KEYS[ty].includes(key)) throw new InvalidOptionError(`-o ${value}: unknown key "${key}" for type=${ty}${didYouMean(key, KEYS[ty])} (known: ${KEYS[ty].join(', ')})`);
  }
  if (ty === 'registry') {
    const push = fields.get('push');
    if (push !== undefined && push !== 'true') throw new InvalidOptionError(`-o ${value}: type=registry always pushes (push=${push} is not supported)`);
    checkNames(value, names);
    return names.length > 0 ? { type: 'registry', names } : { type: 'registry' };
  }
  const t: FileOutputType = ty;
  const dest = fields.get('dest');
  if (!dest) {
    const why = t === 'docker' ? ' (there is no daemon to load into: write a tar and `docker load -i` it)' : '';
    throw new InvalidOptionError(`-o ${value}: dest=${DEST_WORD[t]} is required${why}`);
  }
  if (dest === '-') {
    throw new InvalidOptionError(`-o ${value}: writing ${t === 'local' ? 'a directory' : 'the image'} to standard output is not supported yet; give a ${t === 'local' ? 'directory' : 'file'} name`);
  }
  if (t === 'local') {
    const special = fields.get('preserve-special');
    if (special !== undefined && special !== 'true' && special !== 'false') {
      throw new InvalidOptionError(`-o ${value}: preserve-special=${special}: expected true or false`);
    }
    return special === 'true' ? { type: t, dest, preserveSpecial: true } : { type: t, dest };
  }
  if (t === 'tar') return { type: t, dest };
  checkNames(value, names);
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

/**
 * `--secret` as buildx parses it: `id=ID,src=PATH` (also `source=`),
 * `id=ID,env=VAR`, with `type=file|env`; `type=env,src=VAR` names the
 * variable. Without src and env, the id names an environment variable when
 * one is set, else a file (BuildKit's secretsprovider). The id defaults to
 * the file's base name or the variable's name. A file must exist and be
 * readable now; a variable may be unset (the secret is then missing, which
 * only a `required` mount refuses). Paths are made absolute here, as the
 * build may change directory. Values are never read or printed here.
 */
export function parseSecrets(values: string[], env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): SecretSource[] {
  return values.map((value) => {
    let type: 'file' | 'env' | undefined;
    let id: string | undefined;
    let src: string | undefined;
    let envName: string | undefined;
    for (const field of value.split(',')) {
      const eq = field.indexOf('=');
      if (eq <= 0) throw new InvalidOptionError(`--secret ${value}: "${field}" is not key=value`);
      const key = field.slice(0, eq).trim().toLowerCase();
      const v = field.slice(eq + 1).trim();
      switch (key) {
        case 'type':
          if (v !== 'file' && v !== 'env') throw new InvalidOptionError(`--secret ${value}: unsupported type "${v}" (expected file or env)`);
          type = v;
          break;
        case 'id': id = v; break;
        case 'src': case 'source': src = v; break;
        case 'env': envName = v; break;
        default:
          throw new InvalidOptionError(`--secret ${value}: unknown key "${key}" (known: id, src, source, env, type)`);
      }
    }
    if (type === 'env' && envName === undefined) {
      envName = src;
      src = undefined;
    }
    if (type === 'file' && envName !== undefined) throw new InvalidOptionError(`--secret ${value}: type=file takes src=PATH, not env=`);
    if (src !== undefined && envName !== undefined) throw new InvalidOptionError(`--secret ${value}: give src=PATH or env=VAR, not both`);
    if (src === undefined && envName === undefined) {
      if (!id) throw new InvalidOptionError(`--secret ${value}: give id=ID with src=PATH or env=VAR`);
      if (type !== 'file' && env[id] !== undefined) envName = id;
      else src = id;
    }
    if (envName !== undefined) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(envName)) throw new InvalidOptionError(`--secret ${value}: "${envName}" is not an environment variable name`);
      return { id: id || envName, env: envName };
    }
    if (!src) throw new InvalidOptionError(`--secret ${value}: src= is empty`);
    const file = resolvePath(cwd, src);
    let ok = false;
    try {
      ok = statSync(file).isFile();
      accessSync(file, fsConstants.R_OK);
    } catch (err) {
      throw new InvalidOptionError(`--secret ${value}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!ok) throw new InvalidOptionError(`--secret ${value}: ${file} is not a regular file`);
    return { id: id || basename(file), file };
  });
}
