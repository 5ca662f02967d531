// The index of a whole-root-filesystem tar (BuildKit's type=tar exporter, stowage's
// -o type=tar): one record per path with what the harness compares. Contents are hashed
// while streaming; nothing but the index is kept.
import { createHash } from 'node:crypto';
import { readTar, type TarSource } from './tarstream.js';

export type FsType = 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block' | 'dangling-hardlink' | `other:${string}`;

export interface FsEntry {
  type: FsType;
  /** Permission bits with setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of content (files; 0 otherwise). */
  size: number;
  /** sha256 of the content (files). */
  sha256?: string;
  /** Symlink target, as written; for a dangling-hardlink entry, the missing target. */
  target?: string;
  /** "major:minor" of a device node. */
  dev?: string;
  /** name → value, printable values JSON-quoted, others as hex:… */
  xattrs: Record<string, string>;
  /** Inode number within this index: paths sharing one are a hardlink group. */
  ino: number;
}

export interface RootfsIndex {
  entries: Map<string, FsEntry>;
}

/** JSON-serialisable form (the oracle cache stores it). */
export interface RootfsIndexJson {
  entries: [string, FsEntry][];
}

/**
 * Normalises a tar entry name: no leading "./" or "/", no trailing "/", no doubled "/";
 * the root itself is "". Other components ("..", ".") are kept as written.
 */
export function normPath(p: string): string {
  let s = p.replace(/\/{2,}/g, '/');
  for (;;) {
    const t = s.replace(/^\.\//, '').replace(/^\/+/, '');
    if (t === s) break;
    s = t;
  }
  s = s.replace(/\/+$/, '');
  return s === '.' ? '' : s;
}

/** "/"-prefixed display form of a normalised path. */
export const displayPath = (p: string): string => `/${p}`;

export function xattrValue(v: Buffer): string {
  const printable = v.length > 0 && v.every((b) => b >= 0x20 && b < 0x7f);
  return printable ? JSON.stringify(v.toString('latin1')) : `hex:${v.toString('hex')}`;
}

const TYPES: Record<string, FsType> = {
  File: 'file',
  OldFile: 'file',
  ContiguousFile: 'file',
  Directory: 'dir',
  GNUDumpDir: 'dir',
  SymbolicLink: 'symlink',
  FIFO: 'fifo',
  CharacterDevice: 'char',
  BlockDevice: 'block',
};

/**
 * Streams a root-filesystem tar into an index. Later entries for a path replace earlier
 * ones (as extraction would). A hardlink entry takes its target's record (same inode: type,
 * mode, owner, content, xattrs); one whose target is not (yet) in the archive is recorded
 * as a dangling-hardlink. The root directory ("" after normalisation) is left out: one
 * writer may emit "./" and another not, and no Dockerfile step can change it except by
 * chmod/chown of / (not covered; say so in a case if it matters).
 */
export async function indexRootfs(source: TarSource): Promise<RootfsIndex> {
  const entries = new Map<string, FsEntry>();
  let ino = 0;
  await readTar(source, (e) => {
    const p = normPath(e.path);
    if (p === '') return;
    const xattrs: Record<string, string> = {};
    for (const [k, v] of [...e.xattrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) xattrs[k] = xattrValue(v);
    if (e.type === 'Link') {
      const target = normPath(e.linkpath);
      const t = entries.get(target);
      if (t && t.type !== 'dir') {
        entries.set(p, { ...t, xattrs: { ...t.xattrs } });
        return;
      }
      entries.set(p, { type: 'dangling-hardlink', mode: e.mode, uid: e.uid, gid: e.gid, size: 0, target, xattrs, ino: ++ino });
      return;
    }
    const type: FsType = TYPES[e.type] ?? `other:${e.type}`;
    const rec: FsEntry = { type, mode: e.mode, uid: e.uid, gid: e.gid, size: type === 'file' ? e.size : 0, xattrs, ino: ++ino };
    if (type === 'symlink') rec.target = e.linkpath;
    if (type === 'char' || type === 'block') rec.dev = `${e.devmajor}:${e.devminor}`;
    entries.set(p, rec);
    if (type !== 'file') return;
    const hash = createHash('sha256');
    return {
      write: (b: Buffer) => void hash.update(b),
      end: () => {
        rec.sha256 = hash.digest('hex');
      },
    };
  });
  return { entries };
}

export const indexToJson = (i: RootfsIndex): RootfsIndexJson => ({ entries: [...i.entries] });
export const indexFromJson = (j: RootfsIndexJson): RootfsIndex => ({ entries: new Map(j.entries) });

/** path → sorted list of all paths sharing its inode (only for groups of two or more). */
export function hardlinkGroups(index: RootfsIndex): Map<string, string[]> {
  const byIno = new Map<number, string[]>();
  for (const [p, e] of index.entries) {
    const g = byIno.get(e.ino);
    if (g) g.push(p);
    else byIno.set(e.ino, [p]);
  }
  const out = new Map<string, string[]>();
  for (const g of byIno.values()) {
    if (g.length < 2) continue;
    const sorted = g.map(displayPath).sort();
    for (const p of g) out.set(p, sorted);
  }
  return out;
}
