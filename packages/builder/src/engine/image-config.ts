import type { ContainerConfig, HistoryEntry, ImageConfig, Platform } from '@stowage/registry-client';

/** Docker's default PATH, used when an image sets none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Ordered environment as in an image config (`KEY=value` list), with map-like updates. */
export class EnvList {
  private readonly entries = new Map<string, string>();

  constructor(list: readonly string[] = []) {
    for (const item of list) {
      const eq = item.indexOf('=');
      if (eq < 0) this.entries.set(item, '');
      else this.entries.set(item.slice(0, eq), item.slice(eq + 1));
    }
  }

  get(key: string): string | undefined {
    return this.entries.get(key);
  }

  set(key: string, value: string): void {
    this.entries.set(key, value);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  toRecord(): Record<string, string> {
    return Object.fromEntries(this.entries);
  }

  toList(): string[] {
    return [...this.entries].map(([k, v]) => `${k}=${v}`);
  }
}

/** A fresh config for `FROM scratch`, as BuildKit's emptyImage: the default PATH and WorkingDir `/`. */
export function scratchConfig(platform: Platform): ImageConfig {
  return {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: [`PATH=${DEFAULT_PATH}`], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [] },
    history: [],
  };
}

/** Deep copy, so a stage never mutates the config of the stage or image it starts from. */
export function cloneConfig(config: ImageConfig): ImageConfig {
  return structuredClone(config);
}

export function containerConfig(image: ImageConfig): ContainerConfig {
  image.config ??= {};
  return image.config;
}

export function addHistory(image: ImageConfig, entry: HistoryEntry): void {
  image.history ??= [];
  image.history.push(entry);
}

/**
 * An EXPOSE word → the keys image configs use, as Docker's port-spec parser
 * (go-connections nat.ParsePortSpecs) reads it: `80` → 80/tcp, `53/UDP` →
 * 53/udp, a range `7000-7002` → one key per port, and an `ip:host:` prefix is
 * dropped (only the container port is exposed). Anything else is refused.
 */
export function exposedPorts(word: string): string[] {
  const slash = word.indexOf('/');
  const proto = (slash >= 0 && slash < word.length - 1 ? word.slice(slash + 1) : 'tcp').toLowerCase();
  const spec = slash >= 0 ? word.slice(0, slash) : word;
  const container = spec.slice(spec.lastIndexOf(':') + 1);
  const range = /^(\d+)(?:-(\d+))?$/.exec(container);
  const first = range ? Number(range[1]) : NaN;
  const last = range?.[2] !== undefined ? Number(range[2]) : first;
  if (!range || first > 65535 || last > 65535 || last < first) throw new PortSpecError(`invalid port "${word}": expected PORT, PORT-PORT, or either followed by /tcp, /udp or /sctp`);
  if (!['tcp', 'udp', 'sctp'].includes(proto)) throw new PortSpecError(`invalid port "${word}": unknown protocol ${proto}`);
  const out: string[] = [];
  for (let p = first; p <= last; p++) out.push(`${p}/${proto}`);
  return out;
}

export class PortSpecError extends Error {}

/**
 * The config as BuildKit marshals it: its image config fields are `omitempty`,
 * so a reset CMD (`null`), `ENTRYPOINT []`, or an empty `User` are absent
 * rather than written as null, [] or "".
 */
export function withoutEmptyFields(config: ContainerConfig): ContainerConfig {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    const empty = v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0)
      || (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);
    if (!empty) out[k] = v;
  }
  return out as ContainerConfig;
}
