/**
 * Deterministic OCI layer writer: tar → sha256 (diffID) → gzip → sha256 (digest) → file,
 * in one streaming pass. Entries arrive already ordered (parents before children);
 * this module turns them into bytes: no uname/gname, no atime/ctime, PAX only
 * when ustar fields overflow (long names, large ids/sizes) or for xattrs,
 * gzip header with mtime 0, no file name and a fixed OS byte; large layers are
 * compressed as fixed-size gzip members in parallel (gzip-members.ts).
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, openSync, readSync } from 'node:fs';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { once } from 'node:events';
import { Header } from 'tar';
import { crashPoint } from './crash-point.js';
import { SnapshotError } from './errors.js';
import { gzipMembers, type GzipMemberOptions } from './gzip-members.js';

export type LayerEntryType = 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'FIFO' | 'CharacterDevice' | 'BlockDevice';

export interface LayerEntry {
  /** Relative path without leading or trailing slash. */
  path: string;
  type: LayerEntryType;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch (already clamped). */
  mtime: number;
  size: number;
  linkpath?: string;
  /** Absolute path to read a File's content from. */
  source?: string;
  xattrs?: Map<string, Buffer>;
  devmajor?: number;
  devminor?: number;
}

export interface LayerDigests {
  diffID: string;
  digest: string;
  size: number;
  empty: boolean;
  /** Entries in the layer's tar: files, directories, links and whiteouts. */
  entries: number;
}

/** One PAX record: "<len> <key>=<value>\n", where len counts the whole record. */
function paxRecord(key: string, value: Buffer): Buffer {
  const rest = Buffer.byteLength(` ${key}=\n`) + value.length;
  let len = rest + String(rest).length;
  if (String(len).length !== String(rest).length) len = rest + String(len).length;
  return Buffer.concat([Buffer.from(`${len} ${key}=`), value, Buffer.from('\n')]);
}

/**
 * A PAX keyword cannot contain '=' (readers split the record at the first one), but an
 * xattr name can: `user.a=b` with value `c` would read back as `user.a` = `b=c`. Such names
 * are written the way GNU tar does (`%` → `%25`, `=` → `%3D`; GNU tar decodes them back).
 * So are names holding `%3D` or `%25`, which a GNU-style reader would otherwise decode into
 * something else. All other names stay raw, as Go/containerd and libarchive write them.
 */
function xattrKeyword(name: string): string {
  return name.includes('=') || /%(3D|25)/.test(name) ? name.replace(/%/g, '%25').replace(/=/g, '%3D') : name;
}

const zeroPad = (n: number): Buffer => Buffer.alloc((512 - (n % 512)) % 512);

/** The tar header blocks of one entry (a PAX header first when a field overflows or xattrs are set). Also the root-filesystem tar's. */
export function encodeHeader(e: LayerEntry): Buffer[] {
  const name = e.type === 'Directory' ? `${e.path}/` : e.path;
  const h = new Header({
    path: name,
    mode: e.mode & 0o7777,
    uid: e.uid,
    gid: e.gid,
    size: e.type === 'File' ? e.size : 0,
    mtime: new Date(e.mtime * 1000),
    type: e.type,
    linkpath: e.linkpath ?? '',
    uname: '',
    gname: '',
    devmaj: e.devmajor ?? 0,
    devmin: e.devminor ?? 0,
  });
  const block = Buffer.alloc(512);
  const needPax = h.encode(block);
  const records: Buffer[] = [];
  if (needPax) {
    // Emit every field that might have overflowed; readers prefer PAX values.
    records.push(paxRecord('path', Buffer.from(name)));
    if (e.linkpath) records.push(paxRecord('linkpath', Buffer.from(e.linkpath)));
    records.push(paxRecord('uid', Buffer.from(String(e.uid))), paxRecord('gid', Buffer.from(String(e.gid))));
    if (e.type === 'File') records.push(paxRecord('size', Buffer.from(String(e.size))));
  }
  for (const k of [...(e.xattrs?.keys() ?? [])].sort()) {
    records.push(paxRecord(`SCHILY.xattr.${xattrKeyword(k)}`, e.xattrs?.get(k) ?? Buffer.alloc(0)));
  }
  if (records.length === 0) return [block];
  const body = Buffer.concat(records);
  const paxHeader = Buffer.alloc(512);
  new Header({
    path: 'PaxHeaders/entry',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime: new Date(0),
    type: 'ExtendedHeader',
    linkpath: '',
    uname: '',
    gname: '',
  }).encode(paxHeader);
  return [paxHeader, body, zeroPad(body.length), block];
}

/** Files up to this size are read in one synchronous call (a layer of many small files is most layers). */
const SMALL_FILE_BYTES = 1 << 20;

async function* fileBody(e: LayerEntry): AsyncGenerator<Buffer> {
  if (e.source === undefined) throw new Error(`no source for ${e.path}`);
  let written = 0;
  // Reads are bounded by `size`: a file that grew since stat must not corrupt the tar.
  if (e.size > 0 && e.size <= SMALL_FILE_BYTES) {
    const fd = openSync(e.source, 'r');
    try {
      const b = Buffer.allocUnsafe(e.size);
      let n;
      while (written < e.size && (n = readSync(fd, b, written, e.size - written, written)) > 0) written += n;
      if (written === e.size) yield b;
    } finally {
      closeSync(fd);
    }
  } else if (e.size > 0) {
    for await (const chunk of createReadStream(e.source, { start: 0, end: e.size - 1 })) {
      const b = chunk as Buffer;
      written += b.length;
      yield b;
    }
  }
  if (written !== e.size) throw new SnapshotError(`${e.path} changed size while writing the layer (${written} != ${e.size})`);
  yield zeroPad(e.size);
}

async function* tarStream(entries: AsyncIterable<LayerEntry>, counter: { n: number }): AsyncGenerator<Buffer> {
  for await (const e of entries) {
    counter.n++;
    yield* encodeHeader(e);
    if (e.type === 'File' && e.size > 0) yield* fileBody(e);
    crashPoint('diff:entry');
  }
  yield Buffer.alloc(1024); // end-of-archive: two zero blocks
}

class HashTap extends Transform {
  bytes = 0;
  constructor(private readonly hash: Hash) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

export async function writeLayer(entries: AsyncIterable<LayerEntry>, dest: string, gzip: GzipMemberOptions = {}): Promise<LayerDigests> {
  const diffHash = createHash('sha256');
  const digestHash = createHash('sha256');
  const compressedTap = new HashTap(digestHash);
  const counter = { n: 0 };
  // Opened before the first entry is read, so the file is there from the start
  // (a crash mid-diff always leaves it in ingest/ for recovery to find).
  const out = createWriteStream(dest, { mode: 0o644 });
  await once(out, 'open');
  await pipeline(
    Readable.from(tarStream(entries, counter)),
    new HashTap(diffHash),
    gzipMembers(gzip),
    compressedTap,
    out,
  );
  return {
    diffID: `sha256:${diffHash.digest('hex')}`,
    digest: `sha256:${digestHash.digest('hex')}`,
    size: compressedTap.bytes,
    empty: counter.n === 0,
    entries: counter.n,
  };
}
