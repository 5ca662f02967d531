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

/** A fresh config for `FROM scratch`. */
export function scratchConfig(platform: Platform): ImageConfig {
  return {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: [`PATH=${DEFAULT_PATH}`] },
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

/** `80`, `80/tcp`, `53/udp` → the key form image configs use. */
export function normalizePort(port: string): string {
  return port.includes('/') ? port.toLowerCase() : `${port}/tcp`;
}
