import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rename, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { IgnoreMatcher, MatchInfo } from './dockerignore.js';
import { hasGlob } from './glob.js';

/**
 * What the build context holds once `.dockerignore` is applied: each path
 * with its type, mode and content digest (or link target). A COPY/ADD step's
 * cache key takes the digest of only the paths it can read, so changing one
 * file reruns only the steps that read it, and a miss can name the file.
 *
 * File contents are hashed once: the index of the previous build on this
 * --root is kept, and a file whose size, inode, mtime and ctime are unchanged
 * keeps its digest (git's index does the same).
 */
export interface ContextEntry {
  /** f file, d directory, l symlink, o other (FIFO, socket, device: never read). */
  type: 'f' | 'd' | 'l' | 'o';
  mode: number;
  /** sha256 of a file's content, a symlink's target, '' otherwise. */
  digest: string;
  size: number;
  /** Stat identity for reuse of `digest`: `ino:mtimeNs:ctimeNs`. */
  stamp: string;
}

export type ContextEntries = Map<string, ContextEntry>;

export class ContextIndex {
  constructor(readonly entries: ContextEntries, readonly previous: ContextEntries | undefined) {}

  /**
   * Digest of the entries a step with these source paths can read. A path that
   * passes through a symlink can lead anywhere in the context, so then the
   * whole context counts.
   */
  digestFor(prefixes: string[]): string {
    const scope = this.scope(prefixes);
    const hash = createHash('sha256');
    for (const path of [...this.entries.keys()].sort()) {
      if (!inScope(path, scope)) continue;
      const e = this.entries.get(path)!;
      hash.update(`${path}\0${e.type}\0${e.mode.toString(8)}\0${e.size}\0${e.digest}\n`);
    }
    // Paths named but absent still shape the result (a later `COPY missing` must not hit).
    for (const p of scope) if (p !== '' && !this.entries.has(p)) hash.update(`absent\0${p}\n`);
    return `sha256:${hash.digest('hex')}`;
  }

  /** What changed under `prefixes` since the previous build's index: e.g. `src/app.c changed`. */
  describeChange(prefixes: string[]): string | undefined {
    if (!this.previous) return undefined;
    const scope = this.scope(prefixes);
    const changed: string[] = [];
    for (const [path, e] of this.entries) {
      if (!inScope(path, scope)) continue;
      const before = this.previous.get(path);
      if (!before) changed.push(`${path} added`);
      else if (before.type !== e.type || before.mode !== e.mode || before.digest !== e.digest || before.size !== e.size) changed.push(`${path} changed`);
    }
    for (const path of this.previous.keys()) {
      if (inScope(path, scope) && !this.entries.has(path)) changed.push(`${path} removed`);
    }
    if (changed.length === 0) return undefined;
    changed.sort();
    return changed.length <= 3 ? changed.join(', ') : `${changed.slice(0, 3).join(', ')} and ${changed.length - 3} more`;
  }

  private scope(prefixes: string[]): string[] {
    for (const prefix of prefixes) {
      if (prefix === '') return [''];
      const parts = prefix.split('/');
      for (let i = 1; i <= parts.length; i++) {
        if (this.entries.get(parts.slice(0, i).join('/'))?.type === 'l') return [''];
      }
    }
    return prefixes;
  }
}

function inScope(path: string, scope: string[]): boolean {
  return scope.some((p) => p === '' || path === p || path.startsWith(`${p}/`));
}

/**
 * The context path a COPY/ADD source can read below: the source without its
 * wildcard tail, `..` clamped to the root (as the copy does), `/./` of
 * `--parents` dropped.
 */
export function sourcePrefix(source: string): string {
  const segments = posix.normalize(`/${source.replace(/\/\.\//g, '/')}`).split('/').filter(Boolean);
  const first = segments.findIndex((s) => hasGlob(s));
  return segments.slice(0, first < 0 ? segments.length : first).join('/');
}

interface StoredIndex {
  version: 1;
  entries: [string, ContextEntry][];
}

/**
 * Walks the context, skipping what `.dockerignore` leaves out (but walking an
 * excluded directory an exception may re-include something in), and saves
 * the index for the next build under `indexDir` (written in `tmpDir` first,
 * which must be on the same filesystem: the build's scratch space).
 */
export async function indexContext(contextDir: string, ignore: IgnoreMatcher, indexDir: string, tmpDir = indexDir): Promise<ContextIndex> {
  const file = join(indexDir, `${createHash('sha256').update(contextDir).digest('hex')}.json`);
  const previous = await readFile(file, 'utf8').then((text) => new Map((JSON.parse(text) as StoredIndex).entries), () => undefined);
  const entries: ContextEntries = new Map();
  const walk = async (rel: string, info: MatchInfo | undefined): Promise<void> => {
    let names: string[];
    try {
      names = (await readdir(rel === '' ? contextDir : join(contextDir, rel))).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const match = ignore.empty ? { matched: false, info: [] as MatchInfo } : ignore.match(path, info);
      const st = await lstat(join(contextDir, path), { bigint: true }).catch(() => undefined);
      if (!st) continue;
      if (st.isDirectory()) {
        if (match.matched && ignore.skipsDir(path)) continue;
        entries.set(path, { type: 'd', mode: Number(st.mode & 0o7777n), digest: '', size: 0, stamp: '' });
        await walk(path, match.info);
        continue;
      }
      if (match.matched) continue;
      const stamp = `${st.ino}:${st.mtimeNs}:${st.ctimeNs}`;
      const mode = Number(st.mode & 0o7777n);
      const size = Number(st.size);
      if (st.isSymbolicLink()) {
        entries.set(path, { type: 'l', mode, digest: await readlink(join(contextDir, path)), size: 0, stamp });
      } else if (st.isFile()) {
        const before = previous?.get(path);
        const digest = before && before.type === 'f' && before.stamp === stamp && before.size === size
          ? before.digest
          : await fileDigest(join(contextDir, path));
        entries.set(path, { type: 'f', mode, digest, size, stamp });
      } else {
        entries.set(path, { type: 'o', mode: Number(st.mode), digest: '', size: 0, stamp });
      }
    }
  };
  await walk('', undefined);
  await saveIndex(file, indexDir, tmpDir, entries).catch(() => undefined);
  return new ContextIndex(entries, previous);
}

async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Temp + rename: a crash leaves the old index or the new one, never half of one. */
async function saveIndex(file: string, dir: string, tmpDir: string, entries: ContextEntries): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tmp = join(tmpDir, `.${randomBytes(6).toString('hex')}.tmp`);
  const stored: StoredIndex = { version: 1, entries: [...entries] };
  await writeFile(tmp, JSON.stringify(stored));
  await rename(tmp, file);
}
