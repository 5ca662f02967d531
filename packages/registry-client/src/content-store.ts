/**
 * Content-addressed blob store: <root>/blobs/<alg>/<hex>.
 *
 * Invariant: a file under blobs/ always holds exactly the bytes its name
 * says. Everything is written under ingest/ first, hashed while written,
 * fsynced, and only renamed into blobs/ after verification; rename is atomic
 * on one filesystem, so a crash leaves at worst a stale file in ingest/
 * (see cleanupIngest), never a wrong blob. Ingest files carry their writer's
 * pid and start time, so the next process on the store deletes those of dead
 * writers at once (and never a live writer's).
 *
 * Hashing uses node:crypto directly rather than ssri: OCI digests are
 * `alg:hex`, not SRI `alg-base64`, and hashing inside our own write loop lets
 * us stop reading as soon as the declared size is exceeded and decide exactly
 * when verification happens relative to fsync and rename.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, open, readFile, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { hasherFor, isValidDigest, parseDigest, sha256Digest } from './digest.js';
import { isProcessAlive, processStartTime } from './proc.js';
import { acquireLock, lockScope, type Lock, type LockOptions } from './lock.js';
import { crashPoint } from './crash-point.js';
import { BlobNotFoundError, DigestMismatchError, IngestInterruptedError } from './errors.js';

/** How much an ingest holds back before one write. */
const WRITE_BATCH_BYTES = 1 << 20;

/** Ingest files whose writer cannot be told (other names) are dropped after this long. */
const DEFAULT_STALE_INGEST_MS = 24 * 60 * 60 * 1000;

/** `in-<pid>-<start time>-<random>`: whose partial file this is. */
const INGEST_NAME = /^in-(\d+)-(\d+)-[0-9a-f]+$/;
let ingestPrefix: string | undefined;

export interface IngestExpectation {
  digest: string;
  size?: number;
}

function toBytes(chunk: Uint8Array | string): Uint8Array {
  return typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
}

/** Adapts in-memory bytes to the streaming ingest path, so there is one verified write path. */
export async function* bytesSource(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ENOENT';
}

export class ContentStore {
  private constructor(
    readonly root: string,
    private readonly scope: string,
  ) {}

  static async open(root: string): Promise<ContentStore> {
    await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
    await mkdir(join(root, 'ingest'), { recursive: true });
    return new ContentStore(root, await lockScope(root));
  }

  /**
   * Locks `digest` against other processes on this store: held while
   * downloading it, so that concurrent builds fetch a blob once (the others
   * wait and then find it in the store).
   */
  lock(digest: string, opts: LockOptions): Promise<Lock> {
    parseDigest(digest);
    return acquireLock(this.scope, `blob ${digest}`, opts);
  }

  blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.root, 'blobs', algorithm, hex);
  }

  /** A fresh path under ingest/, on the same filesystem as blobs/ so rename is atomic. */
  tempPath(): string {
    ingestPrefix ??= `in-${process.pid}-${processStartTime(process.pid) ?? 0}-`;
    return join(this.root, 'ingest', `${ingestPrefix}${randomBytes(8).toString('hex')}`);
  }

  async has(digest: string): Promise<boolean> {
    try {
      return (await stat(this.blobPath(digest))).isFile();
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * Streams `source` into the store, verifying size and digest on the way.
   * On any failure the partial file is removed and nothing appears in blobs/.
   */
  async ingest(source: NodeJS.ReadableStream | AsyncIterable<Uint8Array>, expected: IngestExpectation): Promise<void> {
    const writer = await this.begin(expected);
    try {
      for await (const raw of source as AsyncIterable<Uint8Array | string>) await writer.write(toBytes(raw));
      await writer.commit();
    } finally {
      await writer.abort(); // no-op once committed
    }
  }

  /**
   * Opens a partial blob under ingest/ that the caller fills in pieces: a
   * download can continue after a dropped connection (HTTP Range) without
   * hashing anything twice, or start over with reset(). Always end with
   * commit() or abort().
   */
  async begin(expected: IngestExpectation): Promise<IngestWriter> {
    hasherFor(expected.digest); // validates the digest before touching disk
    const tmp = this.tempPath();
    const fh = await open(tmp, 'wx', 0o644);
    return new IngestWriter(fh, tmp, expected, (path) => this.commit(path, expected.digest));
  }

  /** For content we produce ourselves (configs, manifests). */
  async writeBlob(data: Uint8Array | string): Promise<{ digest: string; size: number }> {
    const bytes = toBytes(data);
    const digest = sha256Digest(bytes);
    if (!(await this.has(digest))) await this.ingest(bytesSource(bytes), { digest, size: bytes.byteLength });
    return { digest, size: bytes.byteLength };
  }

  /**
   * Moves a file we produced into the store. With verify: true it is re-hashed
   * first (and deleted on mismatch); otherwise the caller vouches for `digest`.
   */
  async importFile(tempPath: string, digest: string, opts: { verify?: boolean } = {}): Promise<void> {
    parseDigest(digest);
    if (opts.verify === true) {
      const hasher = hasherFor(digest);
      for await (const chunk of createReadStream(tempPath)) hasher.update(chunk as Buffer);
      const actual = hasher.digest();
      if (actual !== digest) {
        await rm(tempPath, { force: true });
        throw new DigestMismatchError(`imported file digest mismatch: expected ${digest}, got ${actual}`);
      }
    }
    // The producer may not have fsynced; the rename must not become visible before the data.
    const fh = await open(tempPath, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await this.commit(tempPath, digest);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'EXDEV') throw err;
      // Different filesystem after all: copy into ingest/ first so the final step is still a rename.
      const tmp = this.tempPath();
      try {
        await copyFile(tempPath, tmp);
        const copy = await open(tmp, 'r+');
        await copy.sync().finally(() => copy.close());
        await this.commit(tmp, digest);
        await unlink(tempPath);
      } catch (copyErr) {
        await rm(tmp, { force: true });
        throw copyErr;
      }
    }
  }

  /** Atomic publish. Concurrent commits of one digest are harmless: same bytes, last rename wins. */
  private async commit(tmp: string, digest: string): Promise<void> {
    const { algorithm } = parseDigest(digest);
    const dir = join(this.root, 'blobs', algorithm);
    await mkdir(dir, { recursive: true });
    await rename(tmp, this.blobPath(digest));
    // fsync the directory so the rename itself survives a crash.
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
    crashPoint('blob:renamed');
  }

  /** Whole blob in memory: for manifests and configs only. */
  async readBlob(digest: string): Promise<Buffer> {
    try {
      return await readFile(this.blobPath(digest));
    } catch (err) {
      if (isNotFound(err)) throw new BlobNotFoundError(`blob ${digest} is not in the content store`);
      throw err;
    }
  }

  /** Streams a blob, or the inclusive byte range [start, end] of it. */
  openRead(digest: string, range?: { start: number; end: number }): NodeJS.ReadableStream {
    // 1 MiB reads: layers are read whole and gunzipped, where 64 KiB reads cost measurably more calls.
    return createReadStream(this.blobPath(digest), { highWaterMark: 1 << 20, ...(range !== undefined ? { start: range.start, end: range.end } : {}) });
  }

  async size(digest: string): Promise<number> {
    try {
      return (await stat(this.blobPath(digest))).size;
    } catch (err) {
      if (isNotFound(err)) throw new BlobNotFoundError(`blob ${digest} is not in the content store`);
      throw err;
    }
  }

  /**
   * Removes partial files of processes that died (crashed, killed): every
   * one whose writer (pid and start time, from its name) no longer runs.
   * Files named otherwise (older versions) go once older than `olderThanMs`.
   * Returns how many files went and their bytes.
   */
  async cleanupIngest(olderThanMs: number = DEFAULT_STALE_INGEST_MS, opts: { dryRun?: boolean } = {}): Promise<{ count: number; bytes: number }> {
    const dir = join(this.root, 'ingest');
    const cutoff = Date.now() - olderThanMs;
    let count = 0;
    let bytes = 0;
    for (const name of await readdir(dir)) {
      const p = join(dir, name);
      try {
        const m = INGEST_NAME.exec(name);
        const st = await stat(p);
        const stale = m ? !isProcessAlive(Number(m[1]), m[2] === '0' ? undefined : m[2]) : st.mtimeMs <= cutoff;
        if (!stale) continue;
        if (opts.dryRun !== true) await rm(p, { recursive: true, force: true });
        count++;
        bytes += st.size;
      } catch (err) {
        if (!isNotFound(err)) throw err; // finished (renamed) while we looked: fine
      }
    }
    return { count, bytes };
  }

  /**
   * Removes this process's own partial files: for an interrupted build
   * (SIGINT/SIGTERM), which exits right after and whose downloads will never
   * finish. A write still under way fails on its renamed-away file; nothing
   * reaches blobs/.
   */
  async discardOwnIngest(): Promise<void> {
    const dir = join(this.root, 'ingest');
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (Number(INGEST_NAME.exec(name)?.[1]) === process.pid) await rm(join(dir, name), { recursive: true, force: true });
    }
  }

  /** Every blob in the store with its size, for garbage collection. Files that are not digests are skipped. */
  async list(): Promise<Array<{ digest: string; size: number }>> {
    const out: Array<{ digest: string; size: number }> = [];
    const blobs = join(this.root, 'blobs');
    for (const algorithm of await readdir(blobs).catch(() => [] as string[])) {
      for (const hex of await readdir(join(blobs, algorithm)).catch(() => [] as string[])) {
        const digest = `${algorithm}:${hex}`;
        if (!isValidDigest(digest)) continue;
        try {
          const st = await stat(join(blobs, algorithm, hex));
          if (st.isFile()) out.push({ digest, size: st.size });
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
    }
    return out;
  }

  /**
   * Removes a blob; false when it was not there. Readers that opened it keep
   * reading the old bytes (unlink), and a blob is never half there: a later
   * `has()` says no and a pull fetches it again.
   */
  async delete(digest: string): Promise<boolean> {
    try {
      await unlink(this.blobPath(digest));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }
}

/**
 * One partial blob being written under ingest/. Bytes are hashed as they are
 * written, so `offset` is also how much has been verified-so-far; nothing is
 * visible under blobs/ until commit() has checked size and digest.
 */
export class IngestWriter {
  private hasher: ReturnType<typeof hasherFor>;
  private size = 0;
  private state: 'open' | 'committed' | 'aborted' = 'open';
  /** Received and hashed, not yet written: the last bytes of `size`. */
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  /** Bytes in the file, readable by followers (`size` less what is held back). */
  private written = 0;
  /** Bumped by reset(): a follower of an earlier generation has read bytes that are gone. */
  private generation = 0;
  private waiting: (() => void)[] = [];

  constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    readonly expected: IngestExpectation,
    private readonly publish: (path: string) => Promise<void>,
  ) {
    this.hasher = hasherFor(expected.digest);
  }

  /** Committed or aborted: nothing more will be written. */
  get finished(): boolean {
    return this.state !== 'open';
  }

  /** Bytes written so far: where a resumed download continues. */
  get offset(): number {
    return this.size;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.state !== 'open') throw new Error(`ingest of ${this.expected.digest} is already ${this.state}`);
    const size = this.size + chunk.byteLength;
    if (this.expected.size !== undefined && size > this.expected.size) {
      // Stop early: a server sending more than promised is broken or hostile.
      throw new DigestMismatchError(`blob ${this.expected.digest}: received more than the expected ${this.expected.size} bytes`);
    }
    this.hasher.update(chunk);
    this.pending.push(chunk);
    this.pendingBytes += chunk.byteLength;
    this.size = size;
    // Network chunks are small (tens of KiB): one write per MiB instead of one per chunk.
    if (this.pendingBytes >= WRITE_BATCH_BYTES) await this.flush();
    if (size < (this.expected.size ?? Infinity)) crashPoint('ingest:partial');
  }

  /** Writes what is held back, at its position: after reset() the file offset is not where the data goes. */
  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const buffers = this.pending;
    const at = this.size - this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    const generation = this.generation;
    await this.fh.writev(buffers, at);
    if (generation === this.generation) this.written = at + buffers.reduce((n, b) => n + b.byteLength, 0);
    this.wake();
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w();
  }

  /**
   * The bytes of this download as they reach the file, from byte 0, for
   * unpacking a layer while it downloads. Read back from the file (the page
   * cache), so a slow reader holds nothing in memory. Ends once the blob is
   * committed, i.e. verified; throws IngestInterruptedError when the download
   * starts over or is abandoned. The reader must not trust what it built
   * until the download's own promise has resolved.
   */
  async *follow(): AsyncGenerator<Buffer> {
    const generation = this.generation;
    const lost = (why: string) => new IngestInterruptedError(`download of ${this.expected.digest} ${why}`);
    let fh: FileHandle;
    try {
      fh = await open(this.path, 'r');
    } catch (err) {
      // Committed (renamed into blobs/) or abandoned before the reader came: read the store instead.
      if (isNotFound(err)) throw lost(this.state === 'committed' ? 'finished before it was followed' : 'was abandoned');
      throw err;
    }
    try {
      let pos = 0;
      for (;;) {
        if (this.generation !== generation) throw lost('started over');
        if (pos < this.written) {
          const want = Math.min(this.written - pos, WRITE_BATCH_BYTES);
          const { bytesRead, buffer } = await fh.read(Buffer.allocUnsafe(want), 0, want, pos);
          // reset() may have truncated the file during the read.
          if (this.generation !== generation || bytesRead === 0) throw lost('started over');
          pos += bytesRead;
          yield buffer.subarray(0, bytesRead);
          continue;
        }
        if (this.state === 'committed') return;
        if (this.state === 'aborted') throw lost('was abandoned');
        await new Promise<void>((resolve) => this.waiting.push(resolve));
      }
    } finally {
      await fh.close();
    }
  }

  /** Starts over from byte 0 (the server ignored a Range request, or a resumed download was wrong). */
  async reset(): Promise<void> {
    if (this.state !== 'open') throw new Error(`ingest of ${this.expected.digest} is already ${this.state}`);
    this.pending = [];
    this.pendingBytes = 0;
    this.generation++;
    this.written = 0;
    this.wake();
    await this.fh.truncate(0);
    this.hasher = hasherFor(this.expected.digest);
    this.size = 0;
  }

  /**
   * Verifies size and digest, fsyncs and renames into blobs/. On a mismatch
   * the writer stays open (the caller may reset() and try again, or abort()).
   */
  async commit(): Promise<void> {
    if (this.state !== 'open') throw new Error(`ingest of ${this.expected.digest} is already ${this.state}`);
    const { expected } = this;
    if (expected.size !== undefined && this.size !== expected.size) {
      throw new DigestMismatchError(`blob ${expected.digest}: size mismatch, expected ${expected.size} bytes, got ${this.size}`);
    }
    const actual = this.hasher.digest();
    if (actual !== expected.digest) {
      throw new DigestMismatchError(`blob digest mismatch: expected ${expected.digest}, got ${actual}`);
    }
    try {
      await this.flush();
      await this.fh.sync();
      await this.fh.close();
      this.state = 'committed';
      this.wake();
      crashPoint('ingest:verified');
      await this.publish(this.path);
    } catch (err) {
      this.state = 'open';
      await this.abort();
      throw err;
    }
  }

  /** Closes and removes the partial file. Safe to call more than once, and after commit() (then it does nothing). */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    this.wake();
    await this.fh.close().catch(() => undefined);
    await rm(this.path, { force: true });
  }
}
