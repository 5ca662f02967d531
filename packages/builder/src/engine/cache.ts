import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rename, writeFile } from 'node:fs/promises';
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

export class BuildCache {
  constructor(private readonly dir: string, readonly enabled: boolean) {}

  /** sha256 of the canonical JSON of `parts` (object keys sorted). */
  key(parts: unknown): string {
    return createHash('sha256').update(canonicalJson({ version: VERSION, parts })).digest('hex');
  }

  async get(key: string): Promise<CacheRecord | undefined> {
    if (!this.enabled) return undefined;
    try {
      return JSON.parse(await readFile(join(this.dir, `${key}.json`), 'utf8')) as CacheRecord;
    } catch {
      return undefined;
    }
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
