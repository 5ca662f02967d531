import { spawn } from 'node:child_process';
import { constants as fsConstants, createReadStream } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, rm, symlink, utimes } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { findExecutable } from '@stowage/snapshotter';
import { makeFifo } from './fifo.js';
import { resolveInRoot, resolveParentInRoot } from './secure-path.js';

/*
 * The local-archive half of Dockerfile `ADD`.
 *
 * Dockerfile reference (ADD): a local tar archive in a recognised compression
 * format (identity, gzip, bzip2, xz or zstd, as Docker's DecompressStream) is unpacked as a directory, with the
 * behaviour of `tar -x`: the result is the union of what was at the
 * destination and the archive, conflicts resolved entry by entry in favour of
 * the archive. Whether a file is an archive is decided by its content only.
 * BuildKit (solver/llbsolver/file/unpack.go, isArchivePath) takes a source as
 * an archive when it is a regular file, its compression is recognised by magic
 * bytes (util/archiveutil/compression.go) and archive/tar can read a first
 * header from the decompressed stream; anything else is copied as-is.
 *
 * Ownership and --chmod, as BuildKit does it (moby/buildkit
 * solver/llbsolver/file/unpack_root.go, applyRootArchive and
 * mapArchiveHeaderOwner; covered by testDockerfileAddChownArchive in
 * frontend/dockerfile/dockerfile_add_test.go, which expects an entry stored
 * without owner to come out as 100:200 after `ADD --chown=100:200 t.tar /out/`):
 *  - without --chown every entry keeps the uid/gid stored in the archive;
 *  - with --chown every entry (files, directories, symlinks, hardlinks) gets
 *    the --chown owner instead ("explicit --chown values override the header
 *    ownership"). Older BuildKit/Docker ignored --chown for archives (moby
 *    issues #35525, buildkit #1547); current BuildKit applies it;
 *  - parent directories the archive implies but does not contain are created
 *    0755 and owned by root (the identity mapping's root pair), not by --chown;
 *  - --chmod is NOT applied to extracted entries: docopy hands unpack() only
 *    the chowner and the timestamp, never the copy mode
 *    (solver/llbsolver/file/backend.go), so every entry keeps its archive mode.
 *    That is why ExtractOptions has no mode.
 *  - a "." entry never changes the destination directory itself; setting up
 *    destDir (created 0755, owned by --chown) is the caller's job, as
 *    copy.MkdirAll(dest, 0755, ch, tm) is BuildKit's.
 *
 * Where we knowingly differ from BuildKit: BuildKit confines the extraction to
 * the destination directory (os.OpenRoot(dest)) and fails when a relative
 * symlink would lead out of it; we resolve every path inside the whole target
 * root (an absolute link restarts at targetRoot, `..` stops there), as COPY
 * does, so nothing can reach the host either way. BuildKit fails on device
 * nodes and other unsupported types; a rootless build cannot mknod, so those
 * are skipped with a warning. A hardlink may only point at a file extracted
 * earlier from the same archive (BuildKit accepts any file under the root),
 * so an archive cannot chmod/chown a file of the image through a link.
 */

export type ArchiveFormat = 'tar' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

export interface ExtractOptions {
  /** `--chown`: replaces the archive's owner on every extracted entry. */
  owner?: { uid: number; gid: number };
  /** Do not chown at all (e.g. a rootless build without an ID map). */
  ignoreOwnership?: boolean;
}

export class ArchiveError extends Error {}

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b, 0x08]);
const BZIP2_MAGIC = Buffer.from('BZh', 'latin1');
const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const BLOCK = 512;

const TOOLS = { bzip2: { command: 'bzip2', pkg: 'bzip2' }, xz: { command: 'xz', pkg: 'xz-utils' }, zstd: { command: 'zstd', pkg: 'zstd' } } as const;

/**
 * Magic-byte detection. For 'gzip'/'bzip2'/'xz'/'zstd' the decompressed stream must
 * also begin with a tar header (valid checksum), so a plain .gz of a non-tar
 * file is not an archive. Returns undefined when not an archive, including
 * when `path` is not a regular file (the caller passes an already resolved
 * path; symlinks are not followed here).
 */
export async function detectArchive(path: string): Promise<ArchiveFormat | undefined> {
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isFile()) return undefined;
  const head = await readFileHead(path, BLOCK);
  const format: ArchiveFormat = head.subarray(0, 3).equals(GZIP_MAGIC) ? 'gzip'
    : head.subarray(0, 3).equals(BZIP2_MAGIC) ? 'bzip2'
      : head.subarray(0, 6).equals(XZ_MAGIC) ? 'xz'
        : head.subarray(0, 4).equals(ZSTD_MAGIC) ? 'zstd'
          : 'tar';
  if (format === 'tar') return isTarHeader(head) ? 'tar' : undefined;
  const stream = await openDecompressed(path, format);
  let block: Buffer | undefined;
  try {
    block = await readStreamHead(stream.output, BLOCK);
  } catch {
    block = undefined; // not decompressible: not an archive (BuildKit: Next() fails)
  } finally {
    stream.stop();
    await stream.finished.catch(() => undefined);
  }
  return block && isTarHeader(block) ? format : undefined;
}

/**
 * A tar header block: 512 bytes, not all zero (an end-of-archive marker is
 * not a first entry) and a checksum that matches, computed with unsigned or,
 * as some historic tars did, signed bytes (Go's archive/tar accepts both).
 * The ustar magic alone is not enough: archive/tar, and so BuildKit, rejects
 * a header with a bad checksum whatever its magic.
 */
export function isTarHeader(block: Buffer): boolean {
  if (block.length < BLOCK) return false;
  const field = block.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (!/^[0-7]+$/.test(field)) return false;
  const stored = parseInt(field, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

/**
 * Extracts the archive at `path` into `destDir`, an absolute path inside
 * `targetRoot` (already created). Streams: the archive is never held in
 * memory. No entry can write outside `targetRoot`: names are cleaned (a
 * leading `/` is dropped, `..` leading out of destDir is refused), every path
 * is resolved inside `targetRoot` through symlinks already there or created
 * by earlier entries, hardlinks may only point at files this archive has
 * extracted, device nodes and FIFOs are skipped with a warning.
 */
export async function extractArchive(
  path: string,
  format: ArchiveFormat,
  targetRoot: string,
  destDir: string,
  opts: ExtractOptions = {},
  warn: (msg: string) => void = () => undefined,
): Promise<void> {
  const destRel = posix.relative(targetRoot, destDir);
  if (!posix.isAbsolute(destDir) || !posix.isAbsolute(targetRoot) || destRel === '..' || destRel.startsWith('../') || posix.isAbsolute(destRel)) {
    throw new ArchiveError(`destination ${destDir} is not inside ${targetRoot}`);
  }
  const ctx: Ctx = {
    targetRoot,
    destInRoot: `/${destRel}`,
    destReal: await resolveInRoot(targetRoot, `/${destRel}`),
    opts,
    warn,
    extracted: new Map(),
    dirs: new Map(),
  };

  const source = await openDecompressed(path, format);
  // strict: a bad checksum or a truncated archive is an error, not a warning.
  // zstd: false: the stream is already decompressed; never sniff it again.
  const parser = new Parser({ strict: true, zstd: false });
  const queue: ReadEntry[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const fail = (err: unknown) => {
    ctx.failure ??= err instanceof Error ? err : new Error(String(err));
    // Unblocks a body being read when the stream breaks in the middle of it.
    ctx.abortRead?.(ctx.failure);
    notify();
  };
  parser.on('entry', (entry: ReadEntry) => {
    queue.push(entry);
    notify();
  });
  parser.on('ignoredEntry', (entry: ReadEntry) => warn(`skipping ${entry.path}: unsupported tar entry type ${entry.type}`));
  parser.on('error', fail);
  parser.on('end', () => {
    ended = true;
    notify();
  });
  source.output.on('error', fail);
  source.finished.catch(fail);
  source.output.pipe(parser as unknown as NodeJS.WritableStream);

  try {
    for (;;) {
      if (ctx.failure) throw ctx.failure;
      const entry = queue.shift();
      if (entry) {
        try {
          await extractEntry(ctx, entry);
        } finally {
          entry.resume();
        }
        continue;
      }
      if (ended) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    // A decompressor that failed late (truncated .xz) may still have produced
    // a well-formed prefix: its exit status decides.
    await source.finished;
    if (ctx.failure) throw ctx.failure;
    await applyDirectoryMetadata(ctx);
  } finally {
    source.output.unpipe(parser as unknown as NodeJS.WritableStream);
    source.stop();
    await source.finished.catch(() => undefined);
  }
}

interface Ctx {
  targetRoot: string;
  /** destDir relative to targetRoot, as an absolute path inside the root. */
  destInRoot: string;
  /** destDir with its symlinks resolved inside the root. */
  destReal: string;
  opts: ExtractOptions;
  warn: (msg: string) => void;
  /** Files (not directories) this archive created: real path → inode, for hardlinks. */
  extracted: Map<string, { dev: number; ino: number }>;
  /** Directory mode and times, applied at the end so a read-only directory or later entries do not get in the way. */
  dirs: Map<string, { dev: number; ino: number; mode: number; atime: number; mtime: number }>;
  /** Set when the archive stream fails. */
  failure?: Error;
  /** Rejects the body read in progress, so it does not wait forever for a stream that broke. */
  abortRead?: (err: Error) => void;
}

async function extractEntry(ctx: Ctx, entry: ReadEntry): Promise<void> {
  const name = cleanName(entry.path);
  if (name === undefined) return; // "." / "/": never touches destDir itself
  const inRoot = posix.join(ctx.destInRoot, name);
  switch (entry.type) {
    case 'Directory':
      return extractDirectory(ctx, entry, inRoot);
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      return extractFile(ctx, entry, inRoot);
    case 'SymbolicLink':
      return extractSymlink(ctx, entry, inRoot);
    case 'Link':
      return extractHardlink(ctx, entry, inRoot);
    case 'CharacterDevice':
    case 'BlockDevice':
      ctx.warn(`skipping ${entry.path}: device nodes cannot be created in a rootless build`);
      return;
    case 'FIFO':
      return extractFifo(ctx, entry, inRoot);
    default:
      ctx.warn(`skipping ${entry.path}: unsupported tar entry type ${entry.type}`);
  }
}

/** Archive name → path relative to destDir; undefined for the destination itself. */
function cleanName(raw: string): string | undefined {
  const stripped = raw.replace(/^\/+/, '');
  const normal = posix.normalize(stripped === '' ? '.' : stripped).replace(/\/+$/, '');
  if (normal === '' || normal === '.') return undefined;
  if (normal === '..' || normal.startsWith('../')) {
    throw new ArchiveError(`archive entry "${raw}" points outside the destination`);
  }
  return normal;
}

function ownerOf(ctx: Ctx, entry: ReadEntry): { uid: number; gid: number } | undefined {
  if (ctx.opts.ignoreOwnership) return undefined;
  if (ctx.opts.owner) return ctx.opts.owner;
  return { uid: entry.uid ?? 0, gid: entry.gid ?? 0 };
}

/** Seconds; like BuildKit, a time before the epoch or beyond what the kernel takes becomes the epoch. */
function seconds(date: Date | undefined): number {
  const s = date ? date.getTime() / 1000 : 0;
  return Number.isFinite(s) && s >= 0 && s <= 9_223_372_036 ? s : 0;
}

function times(entry: ReadEntry): { atime: number; mtime: number } {
  const mtime = seconds(entry.mtime);
  const atime = Math.max(mtime, seconds(entry.atime));
  return { atime, mtime };
}

const modeOf = (entry: ReadEntry) => (entry.mode ?? 0) & 0o7777;

/**
 * Creates the missing directories down to `dir`, a path already resolved
 * inside the root (no component is a symlink). Implied directories are 0755
 * and owned by root, as BuildKit creates them.
 */
async function ensureDir(ctx: Ctx, dir: string): Promise<void> {
  const parts = posix.relative(ctx.targetRoot, dir).split('/').filter(Boolean);
  let current = ctx.targetRoot;
  for (const part of parts) {
    current = posix.join(current, part);
    const st = await lstat(current).catch(() => undefined);
    if (st?.isDirectory()) continue;
    if (st) throw new ArchiveError(`cannot extract into /${posix.relative(ctx.targetRoot, current)}: not a directory`);
    await mkdir(current, { mode: 0o755 });
    if (!ctx.opts.ignoreOwnership) await lchown(current, 0, 0);
    await chmod(current, 0o755);
  }
}

/** Removes whatever is at `path` (never following a symlink) so a new entry can take its place. */
async function clear(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (st) await rm(path, { recursive: true, force: true });
}

async function extractDirectory(ctx: Ctx, entry: ReadEntry, inRoot: string): Promise<void> {
  const path = await resolveParentInRoot(ctx.targetRoot, inRoot);
  let st = await lstat(path).catch(() => undefined);
  // A directory entry replaces whatever non-directory is at its path, a
  // symlink to a directory included (usr-merged /lib -> usr/lib too): BuildKit
  // unpacks with moby's archive.Untar, which removes it (checked with the
  // oracle, test/compat/cases/add-tar-through-symlink). Only the leaf: parents
  // resolve through links, inside the root.
  // Neither the root of the image nor the destination itself is changed by an
  // entry (BuildKit skips a directory entry that resolves to its root).
  if (path === ctx.targetRoot || path === ctx.destReal) return;
  if (!st?.isDirectory()) {
    if (st) await rm(path, { recursive: true, force: true });
    await ensureDir(ctx, posix.dirname(path));
    await mkdir(path, { mode: 0o700 });
    st = await lstat(path);
  }
  const owner = ownerOf(ctx, entry);
  if (owner) await lchown(path, owner.uid, owner.gid);
  ctx.dirs.delete(path);
  ctx.dirs.set(path, { dev: st.dev, ino: st.ino, mode: modeOf(entry), ...times(entry) });
}

async function extractFile(ctx: Ctx, entry: ReadEntry, inRoot: string): Promise<void> {
  const path = await resolveParentInRoot(ctx.targetRoot, inRoot);
  await ensureDir(ctx, posix.dirname(path));
  await clear(path);
  const fh = await open(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
  try {
    const body = (entry as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    for (;;) {
      // Not Promise.race against a long-lived promise: each race would leave
      // a reaction on it holding the chunk, keeping the whole body in memory.
      const next = await new Promise<IteratorResult<Buffer>>((resolve, reject) => {
        if (ctx.failure) return reject(ctx.failure);
        ctx.abortRead = reject;
        body.next().then(resolve, reject);
      }).finally(() => {
        ctx.abortRead = undefined;
      });
      if (next.done) break;
      const chunk = next.value;
      let offset = 0;
      while (offset < chunk.length) {
        const { bytesWritten } = await fh.write(chunk, offset, chunk.length - offset);
        offset += bytesWritten;
      }
    }
    const owner = ownerOf(ctx, entry);
    if (owner) await fh.chown(owner.uid, owner.gid);
    // chmod after chown: chown clears setuid/setgid.
    await fh.chmod(modeOf(entry));
    const { atime, mtime } = times(entry);
    await fh.utimes(atime, mtime);
    const st = await fh.stat();
    ctx.extracted.set(path, { dev: st.dev, ino: st.ino });
  } finally {
    await fh.close();
  }
}

/** A FIFO is made, never opened, with the entry's mode, owner and times (BuildKit extracts them too). */
async function extractFifo(ctx: Ctx, entry: ReadEntry, inRoot: string): Promise<void> {
  const path = await resolveParentInRoot(ctx.targetRoot, inRoot);
  await ensureDir(ctx, posix.dirname(path));
  await clear(path);
  await makeFifo(path);
  const owner = ownerOf(ctx, entry);
  if (owner) await lchown(path, owner.uid, owner.gid);
  await chmod(path, modeOf(entry));
  const { atime, mtime } = times(entry);
  await utimes(path, atime, mtime);
}

async function extractSymlink(ctx: Ctx, entry: ReadEntry, inRoot: string): Promise<void> {
  const path = await resolveParentInRoot(ctx.targetRoot, inRoot);
  await ensureDir(ctx, posix.dirname(path));
  await clear(path);
  // The target is kept as written; it is only ever followed inside the root.
  await symlink(entry.linkpath ?? '', path);
  const owner = ownerOf(ctx, entry);
  if (owner) await lchown(path, owner.uid, owner.gid);
  const { atime, mtime } = times(entry);
  await lutimes(path, atime, mtime);
  const st = await lstat(path);
  ctx.extracted.set(path, { dev: st.dev, ino: st.ino });
}

async function extractHardlink(ctx: Ctx, entry: ReadEntry, inRoot: string): Promise<void> {
  const linkName = cleanName(entry.linkpath ?? '');
  if (linkName === undefined) throw new ArchiveError(`archive hardlink "${entry.path}" points at the destination itself`);
  const target = await resolveParentInRoot(ctx.targetRoot, posix.join(ctx.destInRoot, linkName));
  const known = ctx.extracted.get(target);
  const tst = await lstat(target).catch(() => undefined);
  if (!known || !tst || tst.isDirectory() || tst.dev !== known.dev || tst.ino !== known.ino) {
    throw new ArchiveError(`archive hardlink "${entry.path}" -> "${entry.linkpath}": the target is not a file extracted earlier from this archive`);
  }
  const path = await resolveParentInRoot(ctx.targetRoot, inRoot);
  if (path === target) return; // a link to itself: already there
  await ensureDir(ctx, posix.dirname(path));
  await clear(path);
  await link(target, path);
  const owner = ownerOf(ctx, entry);
  if (owner) await lchown(path, owner.uid, owner.gid);
  if (tst.isFile()) {
    // The header's metadata applies to the shared inode, as BuildKit does;
    // the inode is one this archive created, so nothing else is touched.
    await chmod(path, modeOf(entry));
    const { atime, mtime } = times(entry);
    await utimes(path, atime, mtime);
  }
  ctx.extracted.set(path, known);
}

/**
 * Directory modes and times, last: writing a child changes a directory's
 * mtime, and a read-only directory must not block its own contents. Each
 * directory is checked to still be the one created (same inode, no symlink
 * on the way from the root) so a later entry cannot redirect the chmod.
 */
async function applyDirectoryMetadata(ctx: Ctx): Promise<void> {
  for (const [path, meta] of ctx.dirs) {
    const st = await lstat(path).catch(() => undefined);
    if (!st?.isDirectory() || st.dev !== meta.dev || st.ino !== meta.ino) continue;
    if ((await resolveInRoot(ctx.targetRoot, posix.relative(ctx.targetRoot, path))) !== path) continue;
    await chmod(path, meta.mode);
    await utimes(path, meta.atime, meta.mtime);
  }
}

// ---------------------------------------------------------------------------
// Decompression

interface Decompressed {
  output: Readable;
  /** Settles when decompression is over: rejects on a corrupt stream or a failing tool. */
  finished: Promise<void>;
  /** Stops reading early (kills a tool, closes the file). */
  stop(): void;
}

async function openDecompressed(path: string, format: ArchiveFormat): Promise<Decompressed> {
  if (format === 'tar' || format === 'gzip') {
    const file = createReadStream(path);
    const output: Readable = format === 'gzip' ? file.pipe(createGunzip()) : file;
    if (output !== file) file.on('error', (err) => output.destroy(err));
    const finished = new Promise<void>((resolve, reject) => {
      output.on('end', resolve);
      output.on('error', reject);
      output.on('close', () => reject(new ArchiveError(`reading ${path} stopped`)));
    });
    finished.catch(() => undefined);
    return {
      output,
      finished,
      stop: () => {
        file.destroy();
        output.destroy();
      },
    };
  }
  const tool = TOOLS[format];
  await requireTool(tool.command, tool.pkg, format);
  const fh = await open(path, 'r');
  const child = spawn(tool.command, ['-d', '-c', '-q'], { stdio: [fh.fd, 'pipe', 'pipe'] });
  let stderr = '';
  let stopped = false;
  // Errors surface through `finished`; a late one after stop() must not crash.
  child.stdout!.on('error', () => undefined);
  child.stderr!.on('error', () => undefined);
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  const finished = new Promise<void>((resolve, reject) => {
    child.on('error', (err) => reject(err));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else if (stopped) reject(new ArchiveError(`${tool.command} stopped`));
      else reject(new ArchiveError(`${tool.command} could not decompress ${path} (${code !== null ? `exit status ${code}` : `signal ${signal}`})${stderr.trim() ? `: ${stderr.trim()}` : ''}`));
    });
  });
  finished.catch(() => undefined);
  // The child has its own descriptor once started.
  const closeFile = () => void fh.close().catch(() => undefined);
  child.once('spawn', closeFile);
  child.once('error', closeFile);
  return {
    output: child.stdout!,
    finished,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) {
        stopped = true;
        child.kill('SIGKILL');
      }
      child.stdout!.destroy();
    },
  };
}

async function requireTool(command: string, pkg: string, format: string): Promise<void> {
  if (findExecutable(command) !== null) return;
  throw new ArchiveError(`${command} is needed to unpack ${format} archives but was not found in PATH: install the Debian package ${pkg}`);
}

async function readFileHead(path: string, n: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await fh.read(buf, got, n - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } finally {
    await fh.close();
  }
}

async function readStreamHead(stream: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    length += chunk.length;
    if (length >= n) break;
  }
  return Buffer.concat(chunks).subarray(0, n);
}
