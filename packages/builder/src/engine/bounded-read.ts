import { constants, open } from 'node:fs/promises';

/**
 * Reads at most `limit` bytes of a file as UTF-8, so that a huge or endless
 * file (`-f /dev/zero`, a .dockerignore linked to it) costs bounded memory;
 * callers that must refuse more than `limit` read `limit + 1` and check.
 *
 * With `regularOnly`, the file is opened without blocking and must be a
 * regular file: a FIFO in a build context must not stall the build waiting
 * for a writer.
 */
export async function readBounded(path: string, limit: number, opts: { regularOnly?: boolean } = {}): Promise<string> {
  const fh = await open(path, opts.regularOnly === true ? constants.O_RDONLY | constants.O_NONBLOCK : constants.O_RDONLY);
  try {
    if (opts.regularOnly === true) {
      const st = await fh.stat();
      if (!st.isFile()) throw new NotRegularFileError(path, st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isDirectory() ? 'a directory' : 'a device');
    }
    const buf = Buffer.alloc(Math.min(limit, 1 << 20));
    const chunks: Buffer[] = [];
    let total = 0;
    while (total < limit) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, limit - total), null);
      if (bytesRead === 0) break;
      chunks.push(Buffer.from(buf.subarray(0, bytesRead)));
      total += bytesRead;
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    await fh.close();
  }
}

export class NotRegularFileError extends Error {
  constructor(readonly path: string, readonly kind: string) {
    super(`${path} is ${kind}, not a regular file`);
  }
}
