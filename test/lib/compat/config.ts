// Image config comparison: which fields, and how "unset" is normalised.
import { readTar } from './tarstream.js';

/** The compared fields of the image config's "config" object (OCI / docker ContainerConfig names). */
export const CONFIG_FIELDS = [
  'Env',
  'Cmd',
  'Entrypoint',
  'WorkingDir',
  'User',
  'ExposedPorts',
  'Volumes',
  'Labels',
  'Healthcheck',
  'StopSignal',
  'Shell',
  'OnBuild',
] as const;
export type ConfigField = (typeof CONFIG_FIELDS)[number];

/** JSON with object keys sorted (arrays keep their order). */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

const HEALTH_DURATIONS = ['Interval', 'Timeout', 'StartPeriod', 'StartInterval', 'Retries'];

/**
 * The canonical value of FIELD in an image config's "config" object, or undefined for
 * "unset". What counts as unset is what docker itself treats as unset:
 *   - every field: absent ≡ JSON null (Go's omitempty drops nil; some writers emit null);
 *   - Env, Cmd, Entrypoint, Shell, OnBuild: [] ≡ unset (the daemon and the Dockerfile
 *     frontend test len() == 0: an empty Cmd/Entrypoint runs nothing different from none,
 *     an empty Shell is the default shell, an empty Env/OnBuild adds nothing);
 *   - ExposedPorts, Volumes, Labels: {} ≡ unset (maps: len() == 0 everywhere);
 *   - WorkingDir, User, StopSignal: "" ≡ unset ("" is Go's zero value and the daemon's
 *     "not set"); "/" is NOT the same as "" (the config differs, though both start in /);
 *   - Healthcheck: compared whole (Test included, so {"Test":["NONE"]} ≠ unset and
 *     {"Test":[]} ≠ unset), with its durations/Retries of 0 dropped (0 = inherit/default
 *     for the daemon, and omitempty leaves them out).
 * Order is kept in arrays (Env order is visible in `docker inspect`; Cmd order is argv).
 * Map keys are compared sorted. Not compared: ArgsEscaped (a Windows-only flag that
 * BuildKit sets), timestamps, history, rootfs.diff_ids, architecture/os.
 */
export function configValue(config: Record<string, unknown> | undefined, field: ConfigField): string | undefined {
  const v = config?.[field];
  if (v === undefined || v === null) return undefined;
  switch (field) {
    case 'Env':
    case 'Cmd':
    case 'Entrypoint':
    case 'Shell':
    case 'OnBuild':
      if (Array.isArray(v) && v.length === 0) return undefined;
      return canonicalJson(v);
    case 'ExposedPorts':
    case 'Volumes':
    case 'Labels':
      if (typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0) return undefined;
      return canonicalJson(v);
    case 'WorkingDir':
    case 'User':
    case 'StopSignal':
      if (v === '') return undefined;
      return canonicalJson(v);
    case 'Healthcheck': {
      if (typeof v !== 'object' || Array.isArray(v)) return canonicalJson(v);
      const h: Record<string, unknown> = { ...(v as Record<string, unknown>) };
      for (const k of HEALTH_DURATIONS) if (h[k] === 0 || h[k] === null) delete h[k];
      if (h.Test === null) delete h.Test;
      return canonicalJson(h);
    }
  }
}

export interface ConfigDiff {
  field: ConfigField;
  buildkit: string | undefined;
  stowage: string | undefined;
}

/** The image config's "config" object (image config JSON → .config). */
export function innerConfig(imageConfig: unknown): Record<string, unknown> | undefined {
  if (!imageConfig || typeof imageConfig !== 'object') return undefined;
  const c = (imageConfig as Record<string, unknown>).config;
  return c && typeof c === 'object' ? (c as Record<string, unknown>) : undefined;
}

/** Differences between two image configs (whole image config JSON objects). */
export function compareConfigs(buildkit: unknown, stowage: unknown): ConfigDiff[] {
  const a = innerConfig(buildkit);
  const b = innerConfig(stowage);
  const out: ConfigDiff[] = [];
  for (const field of CONFIG_FIELDS) {
    const x = configValue(a, field);
    const y = configValue(b, field);
    if (x !== y) out.push({ field, buildkit: x, stowage: y });
  }
  return out;
}

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

/**
 * The image config JSON of the (single) image in an OCI layout tar, read in one streaming
 * pass: index.json and every blob up to 4 MiB are kept (manifests and configs are small),
 * bigger blobs (layers) are skipped unread.
 */
export async function readOciTarConfig(ociTar: string): Promise<Record<string, unknown>> {
  const small = new Map<string, Buffer>();
  await readTar(ociTar, (e) => {
    if (e.type !== 'File' && e.type !== 'OldFile') return;
    if (e.size > 4 << 20) return;
    const name = e.path.replace(/^\.?\/+/, '');
    if (name !== 'index.json' && !name.startsWith('blobs/')) return;
    const chunks: Buffer[] = [];
    return {
      write: (b) => void chunks.push(Buffer.from(b)),
      end: () => void small.set(name, Buffer.concat(chunks)),
    };
  });
  const json = (name: string): any => {
    const b = small.get(name);
    if (!b) throw new Error(`${ociTar}: no ${name} (or it is over 4 MiB)`);
    return JSON.parse(b.toString('utf8'));
  };
  const blob = (digest: string) => `blobs/${String(digest).replace(':', '/')}`;
  let desc = json('index.json').manifests?.[0];
  for (let depth = 0; desc && INDEX_TYPES.has(desc.mediaType) && depth < 4; depth++) {
    const idx = json(blob(desc.digest));
    desc = idx.manifests?.find((m: any) => m.platform?.os === 'linux' && m.platform?.architecture === 'amd64') ?? idx.manifests?.[0];
  }
  if (!desc) throw new Error(`${ociTar}: index.json has no manifest`);
  const manifest = json(blob(desc.digest));
  if (!manifest.config?.digest) throw new Error(`${ociTar}: the manifest has no config`);
  return json(blob(manifest.config.digest));
}
