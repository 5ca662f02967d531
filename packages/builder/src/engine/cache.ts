import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Descriptor } from '@stowage/registry-client';

/**
 * The build cache: what a filesystem step (RUN, COPY, ADD, WORKDIR) produced,
 * keyed by everything its result depends on. The parent is a chain ID, which
 * names the parent's filesystem content exactly, so a key never matches a
 * step that ran on other files. A hit is used only while its snapshot and
 * layer blob still exist on this --root.
 */
export interface CacheRecord {
  /** The chain ID after the step, or null when the step changed nothing. */
  snapshot: string | null;
  layer?: { descriptor: Descriptor; diffID: string };
  /** History time of the original run, reused so that a cached rebuild gives the same image. */
  created: string;
}

const VERSION = 1;

export interface StoredCacheRecord {
  file: string;
  key: string;
  /** Last use (the file's mtime), ms since the epoch. */
  lastUsed: number;
  record: CacheRecord | undefined;
}

export class BuildCache {
  constructor(readonly dir: string, readonly enabled: boolean) {}

  /** sha256 of the canonical JSON of `parts` (object keys sorted). */
  key(parts: unknown): string {
    return createHash('sha256').update(canonicalJson({ version: VERSION, parts })).digest('hex');
  }

  async get(key: string): Promise<CacheRecord | undefined> {
    if (!this.enabled) return undefined;
    const file = join(this.dir, `${key}.json`);
    try {
      const record = JSON.parse(await readFile(file, 'utf8')) as CacheRecord;
      // The mtime is the record's last use: `prune --keep-storage` drops the least recently used first.
      await utimes(file, new Date(), new Date()).catch(() => undefined);
      return record;
    } catch {
      return undefined;
    }
  }

  /** Every record on disk with its last use (mtime); `record` is undefined when unreadable. */
  async list(): Promise<StoredCacheRecord[]> {
    const out: StoredCacheRecord[] = [];
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const file = join(this.dir, name);
      try {
        const st = await stat(file);
        let record: CacheRecord | undefined;
        try {
          record = JSON.parse(await readFile(file, 'utf8')) as CacheRecord;
        } catch {
          record = undefined;
        }
        out.push({ file, key: name.slice(0, -'.json'.length), lastUsed: st.mtimeMs, record });
      } catch {
        // removed meanwhile
      }
    }
    return out;
  }

  async remove(file: string): Promise<void> {
    await rm(file, { force: true });
  }

  /** Written temp + rename: a crash never leaves a half-written record. */
  async put(key: string, record: CacheRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.${key}.${randomBytes(6).toString('hex')}`);
    await writeFile(tmp, JSON.stringify(record));
    await rename(tmp, join(this.dir, `${key}.json`));
  }
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/**
 * A digest of the whole build context: every path, type, mode, link target
 * and file content. Deliberately coarse (ignored files count too): a change
 * anywhere in the context reruns the COPY/ADD steps that read from it, never
 * the other way round.
 */
export async function contextDigest(root: string): Promise<string> {
  const hash = createHash('sha256');
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(root, rel))).sort();
    for (const name of names) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(join(root, path));
      hash.update(`${path}\0${st.mode.toString(8)}\0`);
      if (st.isDirectory()) await walk(path);
      else if (st.isSymbolicLink()) hash.update(`${await readlink(join(root, path))}\0`);
      else if (st.isFile()) {
        hash.update(`${st.size}\0`);
        for await (const chunk of createReadStream(join(root, path))) hash.update(chunk as Buffer);
      }
    }
  };
  await walk('');
  return `sha256:${hash.digest('hex')}`;
}
