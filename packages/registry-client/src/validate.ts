/**
 * Shape checks for JSON that arrives from registries. Everything downstream
 * (the build engine included) relies on these types being true, so we check
 * once here and copy only the fields we know into fresh objects: unknown or
 * mistyped data never leaks through as a typed value.
 */
import { isValidDigest } from './digest.js';
import { ManifestInvalidError } from './errors.js';
import type {
  ContainerConfig,
  Descriptor,
  HealthConfig,
  HistoryEntry,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  Platform,
} from './types.js';
import { INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES } from './types.js';

type Json = Record<string, unknown>;

function fail(path: string, what: string): never {
  throw new ManifestInvalidError(`${path}: ${what}`);
}

function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function record(v: unknown, path: string): Json {
  if (!isRecord(v)) fail(path, 'expected an object');
  return v;
}

function optString(o: Json, key: string, path: string): string | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') fail(`${path}.${key}`, 'expected a string');
  return v;
}

function reqString(o: Json, key: string, path: string): string {
  const v = optString(o, key, path);
  if (v === undefined) fail(`${path}.${key}`, 'missing');
  return v;
}

function optStringArray(o: Json, key: string, path: string, nullable = false): string[] | null | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (v === null) {
    if (nullable) return null;
    fail(`${path}.${key}`, 'expected an array of strings');
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) fail(`${path}.${key}`, 'expected an array of strings');
  return [...(v as string[])];
}

function optStringMap(o: Json, key: string, path: string): Record<string, string> | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  const r = record(v, `${path}.${key}`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(r)) {
    if (typeof val !== 'string') fail(`${path}.${key}.${k}`, 'expected a string');
    out[k] = val;
  }
  return out;
}

/** Docker writes port/volume sets as `{ "80/tcp": {} }`; values carry no data. */
function optObjectSet(o: Json, key: string, path: string): Record<string, object> | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  const r = record(v, `${path}.${key}`);
  const out: Record<string, object> = {};
  for (const k of Object.keys(r)) out[k] = {};
  return out;
}

function optNumber(o: Json, key: string, path: string): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${path}.${key}`, 'expected a number');
  return v;
}

function optBoolean(o: Json, key: string, path: string): boolean | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') fail(`${path}.${key}`, 'expected a boolean');
  return v;
}

function digestField(o: Json, key: string, path: string): string {
  const d = reqString(o, key, path);
  if (!isValidDigest(d)) fail(`${path}.${key}`, `invalid digest "${d.slice(0, 80)}"`);
  return d;
}

/** Assigns only defined values so optional keys stay absent rather than `undefined`. */
function put<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}

function parsePlatform(v: unknown, path: string): Platform {
  const o = record(v, path);
  const p: Platform = { os: reqString(o, 'os', path), architecture: reqString(o, 'architecture', path) };
  put(p, 'variant', optString(o, 'variant', path));
  put(p, 'os.version', optString(o, 'os.version', path));
  put(p, 'os.features', optStringArray(o, 'os.features', path) ?? undefined);
  return p;
}

export function parseDescriptor(v: unknown, path = 'descriptor'): Descriptor {
  const o = record(v, path);
  const size = o['size'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) fail(`${path}.size`, 'expected a non-negative integer');
  const d: Descriptor = { mediaType: reqString(o, 'mediaType', path), digest: digestField(o, 'digest', path), size };
  put(d, 'annotations', optStringMap(o, 'annotations', path));
  if (o['platform'] !== undefined) d.platform = parsePlatform(o['platform'], `${path}.platform`);
  put(d, 'urls', optStringArray(o, 'urls', path) ?? undefined);
  put(d, 'artifactType', optString(o, 'artifactType', path));
  return d;
}

function schemaVersion2(o: Json, path: string): 2 {
  if (o['schemaVersion'] !== 2) {
    fail(`${path}.schemaVersion`, `expected 2, got ${JSON.stringify(o['schemaVersion'])?.slice(0, 20)}`);
  }
  return 2;
}

export function parseImageManifest(json: unknown): ImageManifest {
  const path = 'manifest';
  const o = record(json, path);
  const mediaType = optString(o, 'mediaType', path);
  if (mediaType !== undefined && !MANIFEST_MEDIA_TYPES.includes(mediaType)) {
    fail(`${path}.mediaType`, `"${mediaType.slice(0, 100)}" is not an image manifest media type`);
  }
  const layers = o['layers'];
  if (!Array.isArray(layers)) fail(`${path}.layers`, 'expected an array');
  const m: ImageManifest = {
    schemaVersion: schemaVersion2(o, path),
    config: parseDescriptor(o['config'], `${path}.config`),
    layers: layers.map((l, i) => parseDescriptor(l, `${path}.layers[${i}]`)),
  };
  put(m, 'mediaType', mediaType);
  put(m, 'artifactType', optString(o, 'artifactType', path));
  if (o['subject'] !== undefined) m.subject = parseDescriptor(o['subject'], `${path}.subject`);
  put(m, 'annotations', optStringMap(o, 'annotations', path));
  return m;
}

export function parseImageIndex(json: unknown): ImageIndex {
  const path = 'index';
  const o = record(json, path);
  const mediaType = optString(o, 'mediaType', path);
  if (mediaType !== undefined && !INDEX_MEDIA_TYPES.includes(mediaType)) {
    fail(`${path}.mediaType`, `"${mediaType.slice(0, 100)}" is not an image index media type`);
  }
  const manifests = o['manifests'];
  if (!Array.isArray(manifests)) fail(`${path}.manifests`, 'expected an array');
  const idx: ImageIndex = {
    schemaVersion: schemaVersion2(o, path),
    manifests: manifests.map((d, i) => parseDescriptor(d, `${path}.manifests[${i}]`)),
  };
  put(idx, 'mediaType', mediaType);
  put(idx, 'artifactType', optString(o, 'artifactType', path));
  if (o['subject'] !== undefined) idx.subject = parseDescriptor(o['subject'], `${path}.subject`);
  put(idx, 'annotations', optStringMap(o, 'annotations', path));
  return idx;
}

function parseHealthcheck(v: unknown, path: string): HealthConfig {
  const o = record(v, path);
  const h: HealthConfig = {};
  put(h, 'Test', optStringArray(o, 'Test', path) ?? undefined);
  put(h, 'Interval', optNumber(o, 'Interval', path));
  put(h, 'Timeout', optNumber(o, 'Timeout', path));
  put(h, 'StartPeriod', optNumber(o, 'StartPeriod', path));
  put(h, 'StartInterval', optNumber(o, 'StartInterval', path));
  put(h, 'Retries', optNumber(o, 'Retries', path));
  return h;
}

function parseContainerConfig(v: unknown, path: string): ContainerConfig {
  const o = record(v, path);
  const c: ContainerConfig = {};
  put(c, 'User', optString(o, 'User', path));
  put(c, 'ExposedPorts', optObjectSet(o, 'ExposedPorts', path));
  put(c, 'Env', optStringArray(o, 'Env', path, true) ?? undefined);
  put(c, 'Entrypoint', optStringArray(o, 'Entrypoint', path, true));
  put(c, 'Cmd', optStringArray(o, 'Cmd', path, true));
  put(c, 'Volumes', optObjectSet(o, 'Volumes', path));
  put(c, 'WorkingDir', optString(o, 'WorkingDir', path));
  put(c, 'Labels', optStringMap(o, 'Labels', path));
  put(c, 'StopSignal', optString(o, 'StopSignal', path));
  put(c, 'OnBuild', optStringArray(o, 'OnBuild', path, true));
  put(c, 'Shell', optStringArray(o, 'Shell', path, true) ?? undefined);
  if (o['Healthcheck'] !== undefined && o['Healthcheck'] !== null) c.Healthcheck = parseHealthcheck(o['Healthcheck'], `${path}.Healthcheck`);
  put(c, 'ArgsEscaped', optBoolean(o, 'ArgsEscaped', path));
  return c;
}

function parseHistoryEntry(v: unknown, path: string): HistoryEntry {
  const o = record(v, path);
  const h: HistoryEntry = {};
  put(h, 'created', optString(o, 'created', path));
  put(h, 'created_by', optString(o, 'created_by', path));
  put(h, 'author', optString(o, 'author', path));
  put(h, 'comment', optString(o, 'comment', path));
  put(h, 'empty_layer', optBoolean(o, 'empty_layer', path));
  return h;
}

export function parseImageConfig(json: unknown): ImageConfig {
  const path = 'config';
  const o = record(json, path);
  const rootfs = record(o['rootfs'], `${path}.rootfs`);
  if (rootfs['type'] !== 'layers') fail(`${path}.rootfs.type`, 'expected "layers"');
  const diffIds = rootfs['diff_ids'];
  if (!Array.isArray(diffIds)) fail(`${path}.rootfs.diff_ids`, 'expected an array');
  const cfg: ImageConfig = {
    architecture: reqString(o, 'architecture', path),
    os: reqString(o, 'os', path),
    rootfs: {
      type: 'layers',
      diff_ids: diffIds.map((d, i) => {
        if (typeof d !== 'string' || !isValidDigest(d)) fail(`${path}.rootfs.diff_ids[${i}]`, 'invalid digest');
        return d;
      }),
    },
  };
  put(cfg, 'created', optString(o, 'created', path));
  put(cfg, 'author', optString(o, 'author', path));
  put(cfg, 'variant', optString(o, 'variant', path));
  put(cfg, 'os.version', optString(o, 'os.version', path));
  put(cfg, 'os.features', optStringArray(o, 'os.features', path) ?? undefined);
  if (o['config'] !== undefined && o['config'] !== null) cfg.config = parseContainerConfig(o['config'], `${path}.config`);
  const history = o['history'];
  if (history !== undefined && history !== null) {
    if (!Array.isArray(history)) fail(`${path}.history`, 'expected an array');
    cfg.history = history.map((h, i) => parseHistoryEntry(h, `${path}.history[${i}]`));
  }
  return cfg;
}
