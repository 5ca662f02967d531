/**
 * Turn a possibly-compressed layer stream into uncompressed tar chunks while
 * hashing them: the diffID is the sha256 of the *uncompressed* tar, computed in
 * the same pass as extraction. Compression is sniffed from magic bytes, not
 * trusted from media types.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { UnsupportedLayerError } from './errors.js';
import { readAtLeast, toBuffers } from './chunks.js';
import { gunzip, gunzipFile } from './gunzip.js';

const startsWith = (b: Buffer, magic: number[]): boolean => magic.every((m, i) => b[i] === m);

export interface UncompressedLayer {
  chunks: AsyncIterable<Buffer>;
  /** Valid once `chunks` has been fully consumed. */
  diffID(): string;
}

export async function openLayer(layer: NodeJS.ReadableStream): Promise<UncompressedLayer> {
  const it = toBuffers(layer as AsyncIterable<Buffer | string>);
  // Enough bytes to sniff the magic (a first chunk can be tiny).
  const head = await readAtLeast(it, 6);
  const first = Buffer.concat(head.chunks, head.bytes);
  const ended = head.ended;
  async function* all(): AsyncGenerator<Buffer> {
    if (first.length > 0) yield first;
    if (!ended) yield* it;
  }
  return hashed(isGzip(first) ? gunzip(all()) : all());
}

/** The same for a layer blob on disk (read by the inflater itself when it can). */
export async function openLayerFile(path: string): Promise<UncompressedLayer> {
  const fh = await open(path, 'r');
  let first: Buffer;
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(6), 0, 6, 0);
    first = buffer.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  return hashed(isGzip(first) ? gunzipFile(path) : toBuffers(createReadStream(path, { highWaterMark: 1 << 20 })));
}

/** Whether the layer starts as gzip; other compressions are refused by name. */
function isGzip(first: Buffer): boolean {
  if (startsWith(first, [0x28, 0xb5, 0x2f, 0xfd])) throw new UnsupportedLayerError('zstd-compressed layers are not supported');
  if (startsWith(first, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) throw new UnsupportedLayerError('xz-compressed layers are not supported');
  if (startsWith(first, [0x42, 0x5a, 0x68])) throw new UnsupportedLayerError('bzip2-compressed layers are not supported');
  return startsWith(first, [0x1f, 0x8b]);
}

function hashed(raw: AsyncIterable<Buffer>): UncompressedLayer {
  const hash: Hash = createHash('sha256');
  let digest: string | undefined;
  async function* chunks(): AsyncGenerator<Buffer> {
    for await (const c of raw) {
      const b = typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
      hash.update(b);
      yield b;
    }
    digest = `sha256:${hash.digest('hex')}`;
  }
  return {
    chunks: chunks(),
    diffID: () => {
      if (digest === undefined) throw new Error('layer not fully read');
      return digest;
    },
  };
}
