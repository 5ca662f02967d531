/**
 * Local image records: which images this root holds, by name and platform
 * (`<root>/images/<sha256 of "name platform">.json`, written temp + rename).
 *
 * `stowage pull` writes records with `source: "pull"`: a build whose FROM
 * names such an image uses it as pulled, by digest, without asking the
 * registry (as `docker pull` then `docker build` does); pull again to
 * update it. A build records the base images it pulled itself with
 * `source: "build"`; those are never used to resolve a name (the registry
 * is asked every time) but tell `stowage prune` which blobs and snapshots
 * a base image needs. A record's mtime is its last use.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContentStore, Descriptor, ResolvedImage } from '@stowage/registry-client';
import { nextChainId } from './chain-id.js';

export interface ImageRecord {
  version: 1;
  /** Fully qualified reference as asked for, e.g. `docker.io/library/busybox:latest`. */
  name: string;
  /** The platform asked for, `os/arch[/variant]`. */
  platform: string;
  /** What the name resolved to: the index when there is one, else the manifest. */
  digest: string;
  index?: { digest: string };
  /** The platform's image manifest. */
  manifest: { digest: string };
  config: Descriptor;
  layers: Descriptor[];
  diffIDs: string[];
  /** Chain ID of the whole layer stack (the snapshot a build unpacks it to); null without layers. */
  chainId: string | null;
  source: 'pull' | 'build';
  /** When it was pulled (ISO 8601). */
  pulled: string;
}

export interface StoredImageRecord {
  file: string;
  /** Last use (the file's mtime), ms since the epoch. */
  lastUsed: number;
  record: ImageRecord | undefined;
}

/** The record of a resolved (and fully pulled) image. */
export function imageRecord(resolved: ResolvedImage, name: string, platform: string, source: ImageRecord['source']): ImageRecord {
  const diffIDs = [...resolved.config.rootfs.diff_ids];
  let chain: string | undefined;
  for (const d of diffIDs) chain = nextChainId(chain, d);
  return {
    version: 1,
    name,
    platform,
    digest: resolved.index?.digest ?? resolved.manifestDigest,
    ...(resolved.index !== undefined ? { index: { digest: resolved.index.digest } } : {}),
    manifest: { digest: resolved.manifestDigest },
    config: { mediaType: resolved.manifest.config.mediaType, digest: resolved.manifest.config.digest, size: resolved.manifest.config.size },
    layers: resolved.manifest.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    diffIDs,
    chainId: chain ?? null,
    source,
    pulled: new Date().toISOString(),
  };
}

/** Every blob a record needs: index, manifest, config, layers. */
export function recordBlobs(r: ImageRecord): string[] {
  return [...(r.index ? [r.index.digest] : []), r.manifest.digest, r.config.digest, ...r.layers.map((l) => l.digest)];
}

export class ImageStore {
  constructor(readonly dir: string) {}

  private file(name: string, platform: string): string {
    return join(this.dir, `${createHash('sha256').update(`${name} ${platform}`).digest('hex')}.json`);
  }

  async get(name: string, platform: string): Promise<ImageRecord | undefined> {
    try {
      const r = JSON.parse(await readFile(this.file(name, platform), 'utf8')) as ImageRecord;
      return r.name === name && r.platform === platform ? r : undefined;
    } catch {
      return undefined;
    }
  }

  /** A record whose blobs are all in `store`, else undefined. */
  async usable(name: string, platform: string, store: ContentStore): Promise<ImageRecord | undefined> {
    const r = await this.get(name, platform);
    if (r === undefined) return undefined;
    for (const d of recordBlobs(r)) if (!(await store.has(d))) return undefined;
    return r;
  }

  async put(record: ImageRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const dest = this.file(record.name, record.platform);
    const tmp = join(this.dir, `.${randomBytes(6).toString('hex')}.tmp`);
    await writeFile(tmp, `${JSON.stringify(record, null, 2)}\n`);
    await rename(tmp, dest);
  }

  /** Marks a record as just used (its mtime), for `prune --keep-storage`. */
  async touch(name: string, platform: string): Promise<void> {
    const now = new Date();
    await utimes(this.file(name, platform), now, now).catch(() => undefined);
  }

  async list(): Promise<StoredImageRecord[]> {
    const out: StoredImageRecord[] = [];
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const file = join(this.dir, name);
      try {
        const st = await stat(file);
        let record: ImageRecord | undefined;
        try {
          record = JSON.parse(await readFile(file, 'utf8')) as ImageRecord;
        } catch {
          record = undefined;
        }
        out.push({ file, lastUsed: st.mtimeMs, record });
      } catch {
        // removed meanwhile
      }
    }
    return out;
  }

  async remove(file: string): Promise<void> {
    await rm(file, { force: true });
  }
}
