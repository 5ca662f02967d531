/** Small helpers for the byte streams layers travel in. */

/** The chunks of `source` as Buffers (a stream in string mode yields strings). */
export async function* toBuffers(source: AsyncIterable<Buffer | Uint8Array | string>): AsyncGenerator<Buffer> {
  for await (const c of source) yield typeof c === 'string' ? Buffer.from(c) : Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
}

/**
 * Takes chunks from `it` until at least `n` bytes are in hand or it ends:
 * enough to sniff a magic number, or to decide the form of an output.
 */
export async function readAtLeast(it: AsyncIterator<Buffer>, n: number): Promise<{ chunks: Buffer[]; bytes: number; ended: boolean }> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  while (bytes < n) {
    const r = await it.next();
    if (r.done) return { chunks, bytes, ended: true };
    chunks.push(r.value);
    bytes += r.value.length;
  }
  return { chunks, bytes, ended: false };
}
