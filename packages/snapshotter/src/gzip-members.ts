/**
 * Deterministic gzip for layers, in parallel for large ones.
 *
 * A stream shorter than `threshold` becomes one gzip member, byte for byte what
 * `zlib.createGzip` writes (so small layers keep the digests they always had).
 * A longer stream is cut into `blockSize` blocks at fixed offsets; each block
 * becomes a complete gzip member of its own and the members are concatenated
 * (RFC 1952 §2.2: a gzip file is a series of members; gzip, Go's
 * compress/gzip, zlib's gunzip, containerd, skopeo and umoci all read every
 * member). Blocks are compressed by zlib's async API, i.e. on the libuv thread
 * pool, a few at once, and written out in order.
 *
 * Output depends only on the input bytes and the options, never on timing,
 * chunking or the number of cores: where the cuts fall is fixed by offsets,
 * and the choice between one member and many by the total size. Each member's
 * header is the same 10 bytes: no name, mtime 0, XFL from the level, and the
 * OS byte forced to 3 (Unix) because zlib writes its build's OS code there
 * (19 on macOS builds), which would otherwise change the digest.
 *
 * Memory stays bounded: at most `concurrency` blocks are compressing or waiting
 * to be written, plus the one being filled; the source is read only while
 * there is room, and the next block is read while earlier ones compress.
 */
import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';
import { gzip as gzipCallback, type ZlibOptions } from 'node:zlib';
import { readAtLeast, toBuffers } from './chunks.js';

const gzipAsync = promisify<Buffer, ZlibOptions, Buffer>(gzipCallback);

export const GZIP_BLOCK_SIZE = 1 << 20;
export const GZIP_PARALLEL_THRESHOLD = 4 << 20;
const OS_UNIX = 3;

export interface GzipMemberOptions {
  /** zlib level (default 6, as gzip and BuildKit). */
  level?: number;
  /** Uncompressed bytes per member once the stream reaches `threshold` (default 1 MiB). Changing it changes the output. */
  blockSize?: number;
  /** Streams shorter than this stay a single member (default 4 MiB). Changing it changes the output. */
  threshold?: number;
  /** Blocks compressing or waiting to be written at once (default: cores, at most the thread pool size less one). Does not change the output. */
  concurrency?: number;
}

/** How many blocks to keep in flight: one per core, leaving a pool thread free for file reads. */
export function defaultGzipConcurrency(): number {
  const pool = Number(process.env['UV_THREADPOOL_SIZE']) || 4;
  return Math.max(1, Math.min(availableParallelism(), pool - 1));
}

async function member(data: Buffer, level: number): Promise<Buffer> {
  const out = await gzipAsync(data, { level });
  out[9] = OS_UNIX;
  return out;
}

/** Cuts a stream of chunks into blocks of exactly `size` bytes (the last may be shorter). */
async function* fixedBlocks(head: Buffer[], rest: AsyncIterator<Buffer> | undefined, size: number): AsyncGenerator<Buffer> {
  let block = Buffer.allocUnsafe(size);
  let filled = 0;
  const take = function* (chunk: Buffer): Generator<Buffer> {
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(size - filled, chunk.length - at);
      chunk.copy(block, filled, at, at + n);
      filled += n;
      at += n;
      if (filled === size) {
        yield block;
        block = Buffer.allocUnsafe(size);
        filled = 0;
      }
    }
  };
  try {
    // Shifted, not iterated: the look-ahead is released as it is used, not held to the end.
    for (let chunk = head.shift(); chunk !== undefined; chunk = head.shift()) yield* take(chunk);
    if (rest) {
      for (let r = await rest.next(); !r.done; r = await rest.next()) yield* take(r.value);
    }
    if (filled > 0) yield block.subarray(0, filled);
  } finally {
    await rest?.return?.(undefined);
  }
}

/**
 * Compresses `blocks` with up to `concurrency` in flight, yielding members in
 * order. A producer task reads ahead while the consumer waits on the oldest
 * block; it stops when the consumer goes away.
 */
async function* compressInOrder(blocks: AsyncGenerator<Buffer>, level: number, concurrency: number): AsyncGenerator<Buffer> {
  const queue: Promise<Buffer>[] = [];
  let finished = false;
  let stopped = false;
  let failure: { error: unknown } | undefined;
  let wakeConsumer: (() => void) | undefined;
  let wakeProducer: (() => void) | undefined;
  const signal = (which: 'consumer' | 'producer'): void => {
    const f = which === 'consumer' ? wakeConsumer : wakeProducer;
    if (which === 'consumer') wakeConsumer = undefined;
    else wakeProducer = undefined;
    f?.();
  };

  const producer = (async () => {
    try {
      for (let r = await blocks.next(); !r.done; r = await blocks.next()) {
        if (stopped) break;
        const p = member(r.value, level);
        // Observed here so that a failure waiting in the queue is never "unhandled"; the consumer rethrows it.
        p.catch(() => undefined);
        queue.push(p);
        signal('consumer');
        while (queue.length >= concurrency && !stopped) await new Promise<void>((res) => (wakeProducer = res));
        if (stopped) break;
      }
    } catch (error) {
      failure = { error };
    } finally {
      finished = true;
      await blocks.return(undefined).catch(() => undefined);
      signal('consumer');
    }
  })();

  try {
    for (;;) {
      const next = queue[0];
      if (next !== undefined) {
        const out = await next;
        queue.shift();
        signal('producer');
        yield out;
        continue;
      }
      if (failure) throw failure.error;
      if (finished) break;
      await new Promise<void>((res) => (wakeConsumer = res));
    }
  } finally {
    stopped = true;
    signal('producer');
    await producer;
  }
}

/**
 * Async-generator transform (usable as a `stream.pipeline` stage): gzip of
 * `source`, one member below the threshold, fixed-size members above it.
 */
export function gzipMembers(opts: GzipMemberOptions = {}): (source: AsyncIterable<Buffer | string>) => AsyncGenerator<Buffer> {
  const level = opts.level ?? 6;
  const blockSize = opts.blockSize ?? GZIP_BLOCK_SIZE;
  const threshold = Math.max(opts.threshold ?? GZIP_PARALLEL_THRESHOLD, blockSize);
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? defaultGzipConcurrency()));
  return async function* gzip(source) {
    const it = toBuffers(source);
    // Read up to the threshold first: only then is the form of the output known.
    const head = await readAtLeast(it, threshold);
    if (head.ended) {
      yield await member(Buffer.concat(head.chunks, head.bytes), level);
      return;
    }
    yield* compressInOrder(fixedBlocks(head.chunks, it, blockSize), level, concurrency);
  };
}
