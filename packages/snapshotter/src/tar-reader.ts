/**
 * Pull-based streaming tar reader.
 *
 * node-tar's `Parser` pushes entries at us and moves on as soon as a bodyless
 * entry "ends", which does not fit extraction that awaits fs calls per entry.
 * Pulling from an async iterator gives natural backpressure: nothing is read
 * until the previous entry is fully handled, so memory stays at one chunk.
 * Header blocks are still decoded by node-tar's `Header` (names, types, prefix);
 * PAX records are parsed here because node-tar drops `SCHILY.xattr.*`.
 *
 * Framing follows Go's archive/tar (what containerd, moby, BuildKit and most scanners
 * use), so a layer cannot show one set of entries to them and another to us: size, uid
 * and gid fields are parsed strictly (garbage or negative → invalid layer), header-only
 * types (links, devices, dirs, FIFOs) carry no data whatever their size field says, only
 * the last of consecutive PAX `x` headers applies, and PAX global (`g`) headers are
 * checked but otherwise ignored.
 */
import { Header } from 'tar';
import { InvalidLayerError } from './errors.js';

export interface TarEntry {
  path: string;
  type: string; // node-tar type name: File, Directory, SymbolicLink, Link, FIFO, CharacterDevice, …
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date | undefined;
  linkpath: string;
  xattrs: Map<string, Buffer>;
}

/** Reads exact byte counts from an async chunk source. */
class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  constructor(private readonly it: AsyncIterator<Buffer>) {}

  private async fill(n: number): Promise<void> {
    while (this.buf.length < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else this.buf = this.buf.length === 0 ? r.value : Buffer.concat([this.buf, r.value]);
    }
  }

  /** Exactly n bytes, or fewer only at end of stream. */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(out.length);
    return out;
  }

  /** Up to `max` bytes as soon as any are available; empty at end of stream. */
  async readSome(max: number): Promise<Buffer> {
    if (this.buf.length === 0) await this.fill(1);
    const out = this.buf.subarray(0, Math.min(max, this.buf.length));
    this.buf = this.buf.subarray(out.length);
    return out;
  }

  /** Consume everything left (so a hash over the stream sees all of it). */
  async drain(): Promise<void> {
    this.buf = Buffer.alloc(0);
    while (!this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
    }
  }
}

export interface TarItem {
  entry: TarEntry;
  /** The entry body; must be consumed (or abandoned) before asking for the next item. */
  body(): AsyncGenerator<Buffer>;
}

interface PaxData {
  path?: string;
  linkpath?: string;
  size?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  xattrs: Map<string, Buffer>;
}

/** Types whose data, if any, is not part of the entry (Go's isHeaderOnlyType). */
const HEADER_ONLY = new Set(['Link', 'SymbolicLink', 'CharacterDevice', 'BlockDevice', 'Directory', 'FIFO']);

/** A PAX decimal: digits only (no sign, no junk), within exact JS integers. */
function paxInt(key: string, val: string): number {
  const n = Number(val);
  if (!/^[0-9]+$/.test(val) || !Number.isSafeInteger(n)) throw new InvalidLayerError(`invalid PAX ${key} ${JSON.stringify(val)}`);
  return n;
}

/**
 * A numeric header field the way Go reads it: octal with surrounding spaces/NULs, or
 * GNU base-256 (high bit set). Negative or non-octal values are an invalid layer.
 */
function headerNumber(block: Buffer, off: number, len: number, field: string): number {
  const raw = block.subarray(off, off + len);
  if ((raw[0] as number) & 0x80) {
    if (raw[0] === 0xff) throw new InvalidLayerError(`invalid ${field} field: negative base-256 value`);
    let v = BigInt((raw[0] as number) & 0x7f);
    for (const b of raw.subarray(1)) v = (v << 8n) | BigInt(b);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidLayerError(`invalid ${field} field: ${v} is out of range`);
    return Number(v);
  }
  const s = raw.toString('latin1').replace(/^[ \0]+|[ \0]+$/g, '');
  if (!/^[0-7]*$/.test(s)) throw new InvalidLayerError(`invalid ${field} field ${JSON.stringify(raw.toString('latin1'))}`);
  return s === '' ? 0 : parseInt(s, 8);
}

/**
 * The xattr name in a `SCHILY.xattr.<name>` keyword, decoded as GNU tar (1.34) does: a PAX
 * keyword cannot hold '=', so GNU tar writes `%` as `%25` and `=` as `%3D` (diff-writer.ts does
 * the same for names containing '='). Exactly those two escapes are decoded, uppercase only,
 * in one left-to-right pass (`%253D` → `%3D`); anything else, e.g. `%3d` or a lone `%`,
 * stays as it is, so a name without escapes is byte-identical.
 */
export function decodeXattrKeyword(name: string): string {
  return name.includes('%') ? name.replace(/%(?:3D|25)/g, (m) => (m === '%3D' ? '=' : '%')) : name;
}

function parsePax(body: Buffer, into: PaxData): void {
  let off = 0;
  while (off < body.length) {
    const sp = body.indexOf(0x20, off);
    if (sp < 0) break;
    const len = Number(body.toString('ascii', off, sp));
    if (!Number.isInteger(len) || len <= 0 || off + len > body.length) throw new InvalidLayerError('malformed PAX record');
    const rec = body.subarray(sp + 1, off + len - 1); // drop trailing '\n'
    const eq = rec.indexOf(0x3d);
    if (eq > 0) {
      const key = rec.toString('utf8', 0, eq);
      const raw = rec.subarray(eq + 1);
      const val = raw.toString('utf8');
      if (key.startsWith('SCHILY.xattr.')) into.xattrs.set(decodeXattrKeyword(key.slice('SCHILY.xattr.'.length)), Buffer.from(raw));
      else if (key === 'path') into.path = val;
      else if (key === 'linkpath') into.linkpath = val;
      else if (key === 'size') into.size = paxInt(key, val);
      else if (key === 'uid') into.uid = paxInt(key, val);
      else if (key === 'gid') into.gid = paxInt(key, val);
      else if (key === 'mtime') {
        if (!/^-?[0-9]+(\.[0-9]*)?$/.test(val)) throw new InvalidLayerError(`invalid PAX mtime ${JSON.stringify(val)}`);
        into.mtime = new Date(Number(val) * 1000);
      }
    }
    off += len;
  }
}

const cString = (b: Buffer): string => {
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
};

export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<TarItem> {
  const reader = new ByteReader(source[Symbol.asyncIterator]());
  let local: PaxData = { xattrs: new Map() };
  let longPath: string | undefined;
  let longLink: string | undefined;

  const readBody = async (size: number): Promise<Buffer> => {
    if (size > 16 * 1024 * 1024) throw new InvalidLayerError('extended header too large');
    const b = await reader.read(size);
    if (b.length < size) throw new InvalidLayerError('truncated tar');
    await reader.read((512 - (size % 512)) % 512);
    return b;
  };

  for (;;) {
    const block = await reader.read(512);
    if (block.length === 0) break; // tolerate archives without end-of-archive blocks
    if (block.length < 512) throw new InvalidLayerError('truncated tar header');
    if (block.every((b) => b === 0)) break; // end-of-archive
    let h: Header;
    try {
      h = new Header(block);
    } catch (err) {
      throw new InvalidLayerError(`invalid tar header: ${(err as Error).message}`, { cause: err });
    }
    if (!h.cksumValid) throw new InvalidLayerError('invalid tar header checksum');
    const type = h.type;
    const hsize = headerNumber(block, 124, 12, 'size');
    if (type === 'ExtendedHeader') {
      // Like Go: a second `x` header replaces the first, it does not merge with it.
      local = { xattrs: new Map() };
      parsePax(await readBody(hsize), local);
      continue;
    }
    if (type === 'GlobalExtendedHeader') {
      // Validated, then ignored (as containerd and moby do): a global `size` or `path`
      // would otherwise re-frame or rename every following entry.
      parsePax(await readBody(hsize), { xattrs: new Map() });
      continue;
    }
    if (type === 'NextFileHasLongPath' || type === 'OldGnuLongPath') {
      longPath = cString(await readBody(hsize));
      continue;
    }
    if (type === 'NextFileHasLongLinkpath') {
      longLink = cString(await readBody(hsize));
      continue;
    }
    const size = local.size ?? hsize;
    const entry: TarEntry = {
      path: longPath ?? local.path ?? h.path ?? '',
      type,
      mode: (h.mode ?? 0) & 0o7777,
      uid: local.uid ?? headerNumber(block, 108, 8, 'uid'),
      gid: local.gid ?? headerNumber(block, 116, 8, 'gid'),
      size: HEADER_ONLY.has(type) ? 0 : size,
      mtime: local.mtime ?? h.mtime,
      linkpath: longLink ?? local.linkpath ?? h.linkpath ?? '',
      xattrs: local.xattrs,
    };
    local = { xattrs: new Map() };
    longPath = undefined;
    longLink = undefined;

    let remaining = entry.size;
    const body = async function* (): AsyncGenerator<Buffer> {
      while (remaining > 0) {
        const chunk = await reader.readSome(Math.min(remaining, 1 << 20));
        if (chunk.length === 0) throw new InvalidLayerError(`truncated body of ${entry.path}`);
        remaining -= chunk.length;
        yield chunk;
      }
    };
    yield { entry, body };
    // Skip whatever the consumer left unread, then the block padding.
    while (remaining > 0) {
      const chunk = await reader.readSome(Math.min(remaining, 1 << 20));
      if (chunk.length === 0) throw new InvalidLayerError(`truncated body of ${entry.path}`);
      remaining -= chunk.length;
    }
    const pad = (512 - (entry.size % 512)) % 512;
    if (pad > 0 && (await reader.read(pad)).length < pad) throw new InvalidLayerError('truncated tar padding');
  }
  await reader.drain();
}
