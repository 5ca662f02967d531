/**
 * Where each member of an (uncompressed) tar file lives, found by reading
 * only the headers: an image archive's blobs are then read in place, as byte
 * ranges of the tar, never extracted and never held in memory.
 *
 * Understands ustar/GNU headers, PAX `path`/`linkpath`/`size` records and GNU
 * long names (`L`/`K`), which is what Go's archive/tar (skopeo, docker save)
 * and node-tar write.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';
import { InvalidOptionError } from '../errors.js';

export interface TarEntry {
  /** Normalised: no leading `./` or `/`, no trailing `/`. */
  path: string;
  /** `file`, `dir`, `symlink`, `hardlink` or `other`. */
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';
  /** Byte offset of the member's data in the tar file. */
  offset: number;
  size: number;
  linkpath?: string;
}

const BLOCK = 512;

export function normaliseTarPath(p: string): string {
  const n = posix.normalize(`/${p}`).replace(/^\/+/, '').replace(/\/+$/, '');
  return n === '.' ? '' : n;
}

function cstring(buf: Buffer, start: number, len: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end === -1 || end > start + len ? start + len : end);
}

/** An octal field, or GNU base-256 (high bit of the first byte) for large sizes. */
function numeric(buf: Buffer, start: number, len: number, what: string, file: string): number {
  if ((buf[start]! & 0x80) !== 0) {
    let n = buf[start]! & 0x7f;
    for (let i = start + 1; i < start + len; i++) n = n * 256 + buf[i]!;
    if (!Number.isSafeInteger(n)) throw new InvalidOptionError(`${file}: tar header ${what} too large`);
    return n;
  }
  const text = cstring(buf, start, len).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new InvalidOptionError(`${file}: malformed tar header (${what} "${text.slice(0, 20)}")`);
  return parseInt(text, 8);
}

function checksumOk(buf: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : buf[i]!;
  const text = cstring(buf, 148, 8).trim();
  return /^[0-7]+$/.test(text) && parseInt(text, 8) === sum;
}

/** PAX records: `<len> <key>=<value>\n`, lengths counted in bytes. */
function parsePax(body: Buffer, file: string): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < body.length) {
    const space = body.indexOf(0x20, pos);
    if (space === -1) break;
    const len = Number(body.toString('ascii', pos, space));
    if (!Number.isInteger(len) || len <= 0 || pos + len > body.length) throw new InvalidOptionError(`${file}: malformed PAX header`);
    const record = body.toString('utf8', space + 1, pos + len - 1);
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}

async function readAt(fh: FileHandle, pos: number, len: number): Promise<Buffer> {
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, got, len - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === len ? buf : buf.subarray(0, got);
}

/** Indexes the members of the tar at `file` by normalised path (the last member of a path wins, as on extraction). */
export async function indexTar(file: string): Promise<Map<string, TarEntry>> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const first = await readAt(fh, 0, 6);
    if (first[0] === 0x1f && first[1] === 0x8b) throw new InvalidOptionError(`${file}: a gzip-compressed archive; give the uncompressed tar (gunzip it first)`);
    const out = new Map<string, TarEntry>();
    let pos = 0;
    let longName: string | undefined;
    let longLink: string | undefined;
    let pax = new Map<string, string>();
    while (pos + BLOCK <= size) {
      const h = await readAt(fh, pos, BLOCK);
      if (h.every((b) => b === 0)) break; // end of archive
      if (!checksumOk(h)) throw new InvalidOptionError(`${file}: not a tar archive (bad header checksum at byte ${pos})`);
      const flag = String.fromCharCode(h[156]!);
      const extension = flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K';
      const paxSize = extension ? undefined : pax.get('size');
      const len = paxSize !== undefined && /^\d+$/.test(paxSize) ? Number(paxSize) : numeric(h, 124, 12, 'size', file);
      const data = pos + BLOCK;
      const next = data + Math.ceil(len / BLOCK) * BLOCK;
      if (data + len > size) throw new InvalidOptionError(`${file}: truncated tar archive`);
      if (extension) {
        if (len > 1024 * 1024) throw new InvalidOptionError(`${file}: oversized tar extension header`);
        const body = await readAt(fh, data, len);
        // 'g' (global) records carry nothing an index needs.
        if (flag === 'x') pax = parsePax(body, file);
        else if (flag === 'L') longName = cstring(body, 0, body.length);
        else if (flag === 'K') longLink = cstring(body, 0, body.length);
        pos = next;
        continue;
      }
      const ustar = h.toString('ascii', 257, 262) === 'ustar';
      const prefix = ustar ? cstring(h, 345, 155) : '';
      const name = pax.get('path') ?? longName ?? (prefix !== '' ? `${prefix}/${cstring(h, 0, 100)}` : cstring(h, 0, 100));
      const link = pax.get('linkpath') ?? longLink ?? cstring(h, 157, 100);
      const type: TarEntry['type'] = flag === '0' || flag === '\0' || flag === '7' ? 'file' : flag === '5' ? 'dir' : flag === '2' ? 'symlink' : flag === '1' ? 'hardlink' : 'other';
      const path = normaliseTarPath(name);
      if (path !== '') {
        out.set(path, { path, type, offset: data, size: type === 'file' ? len : 0, ...(type === 'symlink' || type === 'hardlink' ? { linkpath: link } : {}) });
      }
      pax = new Map();
      longName = undefined;
      longLink = undefined;
      pos = next;
    }
    return out;
  } finally {
    await fh.close();
  }
}

/**
 * The regular file a path names, following symlinks (relative to the
 * link's directory) and hard links (archive paths) inside the archive;
 * undefined when there is none.
 */
export function resolveTarFile(index: Map<string, TarEntry>, path: string): TarEntry | undefined {
  let cur = normaliseTarPath(path);
  for (let hops = 0; hops < 40; hops++) {
    const e = index.get(cur);
    if (e === undefined) return undefined;
    if (e.type === 'file') return e;
    if (e.type === 'hardlink') cur = normaliseTarPath(e.linkpath ?? '');
    else if (e.type === 'symlink') {
      const target = e.linkpath ?? '';
      cur = normaliseTarPath(target.startsWith('/') ? target : posix.join(posix.dirname(cur), target));
    } else return undefined;
  }
  return undefined;
}
