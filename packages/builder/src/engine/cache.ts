import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Descriptor } from '@stowage/registry-client';
import { crashPoint } from '@stowage/registry-client';

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

/**
 * Part of every key: bumped when a step's result changes for the same inputs,
 * so a cache written by an older stowage is never hit. 2: COPY --from keeps
 * owners, hard links, heredoc unescaping, WORKDIR owners (BuildKit fidelity).
 */
const VERSION = 2;

export interface StoredCacheRecord {
  file: string;
  key: string;
  /** Last use (the file's mtime), ms since the epoch. */
  lastUsed: number;
  record: CacheRecord | undefined;
}

export class BuildCache {
  /**
   * `tmpDir`: where files are written before their rename into `dir` (the
   * build's own scratch space on the same filesystem, so a crashed build's
   * half-written file goes away with it); default `dir` itself.
   */
  constructor(
    readonly dir: string,
    private readonly tmpDir?: string,
  ) {}

  /**
   * The key of a filesystem step. A linked step (COPY/ADD --link) is built on
   * an empty tree and stacked on its parent afterwards, so the parent is not
   * one of its inputs: after a change above it, it still hits.
   */
  stepKey(step: StepKeyParts): string {
    const { parent, linked, ...rest } = step;
    return this.key(linked === true ? { ...rest, linked: true } : { parent, ...rest });
  }

  /** sha256 of the canonical JSON of `parts` (object keys sorted). */
  key(parts: unknown): string {
    return createHash('sha256').update(canonicalJson({ version: VERSION, parts })).digest('hex');
  }

  async get(key: string): Promise<CacheRecord | undefined> {
    const file = join(this.dir, `${key}.json`);
    let record: CacheRecord;
    try {
      record = JSON.parse(await readFile(file, 'utf8')) as CacheRecord;
    } catch {
      return undefined;
    }
    // The record's mtime is its last use: `prune --keep-storage` drops the least recently used first.
    const now = new Date();
    await utimes(file, now, now).catch(() => undefined);
    return record;
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

  async put(key: string, record: CacheRecord): Promise<void> {
    await writeAtomically(this.dir, `${key}.json`, JSON.stringify(record), this.tmpDir);
  }

  /**
   * The last run of a step, found by what it is (stage and instruction) and by
   * where it is (stage and position), for explaining the next miss.
   */
  async lastTrace(identity: StepIdentity): Promise<{ trace: StepTrace; samePosition: boolean } | undefined> {
    for (const [name, samePosition] of [[traceName(identity, 'text'), false], [traceName(identity, 'position'), true]] as const) {
      try {
        const trace = JSON.parse(await readFile(join(this.dir, 'steps', name), 'utf8')) as StepTrace;
        if (!samePosition || trace.createdBy !== identity.createdBy) return { trace, samePosition };
      } catch {
        // No earlier run known under this name.
      }
    }
    return undefined;
  }

  async saveTrace(identity: StepIdentity, trace: StepTrace): Promise<void> {
    const text = JSON.stringify(trace);
    await writeAtomically(join(this.dir, 'steps'), traceName(identity, 'text'), text, this.tmpDir);
    await writeAtomically(join(this.dir, 'steps'), traceName(identity, 'position'), text, this.tmpDir);
  }
}

/** What a filesystem step's result depends on. */
export interface StepKeyParts {
  /** The chain ID the step starts from; null on an empty scratch. */
  parent: string | null;
  platform: unknown;
  createdBy: string;
  inputs: Record<string, unknown>;
  /** COPY/ADD --link: the parent is left out of the key. */
  linked?: boolean;
}

/** Where a filesystem step sits in a build: enough to find its last run. */
export interface StepIdentity {
  dockerfile: string;
  stage: string;
  position: number;
  platform: string;
  createdBy: string;
}

/** What a step's cache key was made of the last time it ran. */
export interface StepTrace {
  createdBy: string;
  parent: string | null;
  inputs: Record<string, unknown>;
}

function traceName(id: StepIdentity, by: 'text' | 'position'): string {
  const what = by === 'text' ? id.createdBy : `#${id.position}`;
  return `${createHash('sha256').update(canonicalJson([id.dockerfile, id.stage, id.platform, what])).digest('hex')}.json`;
}

/**
 * The top-level inputs whose values differ between two runs of a step, in a
 * stable order; `env` is compared per variable, so the answer can name one.
 */
export function changedInputs(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const key of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
    if (canonicalJson(before[key]) === canonicalJson(after[key])) continue;
    if (key === 'env' && Array.isArray(before[key]) && Array.isArray(after[key])) {
      const a = envMap(before[key] as string[]);
      const b = envMap(after[key] as string[]);
      for (const name of [...new Set([...a.keys(), ...b.keys()])].sort()) if (a.get(name) !== b.get(name)) out.push(`env:${name}`);
    } else {
      out.push(key);
    }
  }
  return out;
}

function envMap(list: string[]): Map<string, string> {
  return new Map(list.map((kv) => {
    const i = kv.indexOf('=');
    return i < 0 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)];
  }));
}

/** Written temp + rename: a crash never leaves a half-written file. */
async function writeAtomically(dir: string, name: string, text: string, tmpDir = dir): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tmp = join(tmpDir, `.${name}.${randomBytes(6).toString('hex')}`);
  await writeFile(tmp, text);
  crashPoint('cache:record');
  await rename(tmp, join(dir, name));
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}
