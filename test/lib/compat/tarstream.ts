// A streaming tar reader (and a small writer for tests) for the compatibility harness.
//
// The 512-byte ustar/GNU headers are decoded by the `tar` package's Header class (base-256
// numbers, the ustar prefix, checksums); the framing, pax records and GNU long names are
// read here because tar's Parser hands pax data over as a UTF-8 string and keeps no xattrs:
// here pax values stay bytes, so SCHILY.xattr.* values (security.capability …) compare
// exactly. Bodies are never held in memory: each goes to the entry's sink chunk by chunk.
import fs from 'node:fs';
import { Header } from 'tar';

export interface TarEntry {
  /** Path as written (pax path / GNU long name applied), not normalised. */
  path: string;
  /** tar's type name: File, OldFile, ContiguousFile, Link, SymbolicLink, Directory, FIFO, CharacterDevice, BlockDevice, … */
  type: string;
  /** Permission and setuid/setgid/sticky bits (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linkpath: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes from SCHILY.xattr.* (and LIBARCHIVE.xattr.*) pax records. */
  xattrs: Map<string, Buffer>;
}

export interface BodySink {
  write(chunk: Buffer): void;
  end(): void;
}

/** Largest pax / GNU long-name body accepted (they are held in memory). */
const MAX_META = 16 << 20;
const BLOCK = 512;

const META_TYPES = new Set(['x', 'g', 'X', 'L', 'K', 'N']);

type Pax = Map<string, Buffer>;

/** Parses pax extended header records ("%d %s=%s\n"), keeping values as bytes. */
export function parsePax(buf: Buffer): Pax {
  const out: Pax = new Map();
  let pos = 0;
  while (pos < buf.length) {
    const sp = buf.indexOf(0x20, pos);
    if (sp < 0) break;
    const len = Number(buf.subarray(pos, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= 0 || pos + len > buf.length) break;
    const rec = buf.subarray(sp + 1, pos + len);
    const eq = rec.indexOf(0x3d);
    if (eq > 0) {
      const key = rec.subarray(0, eq).toString('utf8');
      let val = rec.subarray(eq + 1);
      if (val.length && val[val.length - 1] === 0x0a) val = val.subarray(0, val.length - 1);
      if (val.length === 0) out.delete(key); // an empty value removes the keyword
      else out.set(key, Buffer.from(val));
    }
    pos += len;
  }
  return out;
}

function paxNumber(p: Pax, key: string): number | undefined {
  const v = p.get(key);
  if (!v) return undefined;
  const n = Number(v.toString('latin1'));
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** Source bytes: a file path or any async iterable of Buffers (e.g. a Readable). */
export type TarSource = string | AsyncIterable<Buffer>;

/**
 * Reads a tar stream. For each file-system entry, `onEntry` may return a sink that gets the
 * entry's body (then `end()`); without a sink the body is skipped. Throws on a malformed
 * archive (bad checksum, truncated body).
 */
export async function readTar(source: TarSource, onEntry: (e: TarEntry) => BodySink | void): Promise<void> {
  const input: AsyncIterable<Buffer> = typeof source === 'string' ? fs.createReadStream(source, { highWaterMark: 1 << 20 }) : source;
  let pending: Buffer = Buffer.alloc(0);
  let offset = 0; // archive offset of pending[0]

  // Body state.
  let remain = 0; // body bytes left
  let pad = 0; // padding bytes after the body
  let sink: BodySink | undefined;
  let meta: { type: string; chunks: Buffer[]; size: number } | undefined;

  let pax: Pax = new Map();
  let gpax: Pax = new Map();
  let longPath: string | undefined;
  let longLink: string | undefined;
  let zeroBlocks = 0;
  let ended = false;

  const finishBody = () => {
    if (meta) {
      const body = Buffer.concat(meta.chunks);
      if (meta.type === 'x' || meta.type === 'X') for (const [k, v] of parsePax(body)) pax.set(k, v);
      else if (meta.type === 'g') for (const [k, v] of parsePax(body)) gpax.set(k, v);
      else if (meta.type === 'L' || meta.type === 'N') longPath = body.toString('utf8').replace(/\0.*$/s, '');
      else if (meta.type === 'K') longLink = body.toString('utf8').replace(/\0.*$/s, '');
      meta = undefined;
    } else if (sink) {
      sink.end();
      sink = undefined;
    }
  };

  const onHeader = (block: Buffer, at: number) => {
    if (block.every((b) => b === 0)) {
      zeroBlocks++;
      if (zeroBlocks >= 2) ended = true;
      return;
    }
    zeroBlocks = 0;
    const h = new Header(block);
    if (!h.cksumValid) throw new Error(`tar: bad header checksum at offset ${at}`);
    const code = String.fromCharCode(block[156]!) === '\0' ? '' : String.fromCharCode(block[156]!);
    const size = h.size ?? 0;
    if (META_TYPES.has(code)) {
      if (size > MAX_META) throw new Error(`tar: extended header of ${size} bytes at offset ${at}`);
      meta = { type: code, chunks: [], size };
      remain = size;
      pad = (BLOCK - (size % BLOCK)) % BLOCK;
      if (remain === 0) finishBody();
      return;
    }
    const all: Pax = new Map([...gpax, ...pax]);
    const xattrs = new Map<string, Buffer>();
    for (const [k, v] of all) {
      if (k.startsWith('SCHILY.xattr.')) xattrs.set(k.slice('SCHILY.xattr.'.length), v);
      else if (k.startsWith('LIBARCHIVE.xattr.')) {
        const name = decodeURIComponent(k.slice('LIBARCHIVE.xattr.'.length));
        if (!xattrs.has(name)) xattrs.set(name, Buffer.from(v.toString('latin1'), 'base64'));
      }
    }
    const bodySize = paxNumber(all, 'size') ?? size;
    const entry: TarEntry = {
      path: pax.get('path')?.toString('utf8') ?? longPath ?? h.path ?? '',
      type: h.type,
      mode: (h.mode ?? 0) & 0o7777,
      uid: paxNumber(all, 'uid') ?? h.uid ?? 0,
      gid: paxNumber(all, 'gid') ?? h.gid ?? 0,
      size: h.type === 'Directory' ? 0 : bodySize,
      linkpath: pax.get('linkpath')?.toString('utf8') ?? longLink ?? decLink(block),
      devmajor: h.devmaj ?? 0,
      devminor: h.devmin ?? 0,
      xattrs,
    };
    pax = new Map();
    longPath = undefined;
    longLink = undefined;
    // Directories have no body whatever the size field says (old tars put stat's size there).
    remain = h.type === 'Directory' ? 0 : bodySize;
    pad = (BLOCK - (remain % BLOCK)) % BLOCK;
    sink = onEntry(entry) ?? undefined;
    if (remain === 0) finishBody();
  };

  for await (const chunk of input) {
    const buf = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let pos = 0;
    while (!ended) {
      if (remain > 0) {
        const n = Math.min(remain, buf.length - pos);
        if (n === 0) break;
        const part = buf.subarray(pos, pos + n);
        if (meta) meta.chunks.push(Buffer.from(part));
        else sink?.write(part);
        pos += n;
        remain -= n;
        if (remain === 0) finishBody();
        continue;
      }
      if (pad > 0) {
        const n = Math.min(pad, buf.length - pos);
        if (n === 0) break;
        pos += n;
        pad -= n;
        continue;
      }
      if (buf.length - pos < BLOCK) break;
      onHeader(buf.subarray(pos, pos + BLOCK), offset + pos);
      pos += BLOCK;
    }
    offset += pos;
    // After the end-of-archive blocks the rest is padding to the record size: drained unread.
    pending = ended ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos));
  }
  if (remain > 0) throw new Error(`tar: truncated archive (${remain} body bytes missing at offset ${offset})`);
  if (pending.length && pending.some((b) => b !== 0)) {
    throw new Error(`tar: ${pending.length} trailing bytes at offset ${offset} are not a whole header`);
  }
  // A missing end-of-archive marker (or an empty file: an empty root filesystem) is accepted.
}

function decLink(block: Buffer): string {
  return block.subarray(157, 257).toString('utf8').replace(/\0.*$/s, '');
}

// ------------------------------------------------------------------ writer (tests)

export interface TarWriteEntry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'FIFO' | 'CharacterDevice' | 'BlockDevice';
  mode?: number;
  uid?: number;
  gid?: number;
  content?: string | Buffer;
  linkpath?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, string | Buffer>;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function padded(b: Buffer): Buffer {
  const rem = b.length % BLOCK;
  return rem ? Buffer.concat([b, Buffer.alloc(BLOCK - rem)]) : b;
}

/** Builds a tar (ustar + pax records for xattrs and long names) in memory; for small test archives. */
export function makeTar(entries: TarWriteEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? 'File';
    const content = type === 'File' ? Buffer.from(e.content ?? '') : Buffer.alloc(0);
    const records: Buffer[] = [];
    for (const [k, v] of Object.entries(e.xattrs ?? {})) records.push(paxRecord(`SCHILY.xattr.${k}`, Buffer.from(v)));
    if (Buffer.byteLength(e.path) > 99) records.push(paxRecord('path', Buffer.from(e.path)));
    if (e.linkpath && Buffer.byteLength(e.linkpath) > 99) records.push(paxRecord('linkpath', Buffer.from(e.linkpath)));
    if (records.length) {
      const body = Buffer.concat(records);
      const ph = new Header({ path: 'PaxHeader', type: 'ExtendedHeader', size: body.length, mode: 0o644, uid: 0, gid: 0, mtime: new Date(0) });
      ph.encode();
      parts.push(ph.block!, padded(body));
    }
    const h = new Header({
      path: Buffer.byteLength(e.path) > 99 ? e.path.slice(-90) : e.path,
      type,
      mode: e.mode ?? (type === 'Directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      size: content.length,
      mtime: new Date(0),
      linkpath: e.linkpath && Buffer.byteLength(e.linkpath) > 99 ? '' : (e.linkpath ?? ''),
      devmaj: e.devmajor ?? 0,
      devmin: e.devminor ?? 0,
    });
    h.encode();
    parts.push(h.block!, padded(content));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}
