import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isProcessAlive, crashPoint } from '@stowage/registry-client';

/**
 * An output written to a temporary name in its destination's directory and
 * not yet visible at `dest`. `commit` moves it into place (rename: atomic
 * for files); `abort` removes the temporary. The build prepares every output
 * first and commits them all only when all are ready, so a failure leaves
 * none of them behind.
 */
export interface PendingOutput {
  dest: string;
  /** What was written, for the progress log: `oci image layout tar`, … */
  kind: string;
  commit(): Promise<void>;
  /** Before commit: removes the temporary. */
  abort(): Promise<void>;
  /** After commit: removes what commit put in place (when a later output fails to commit). */
  revert(): Promise<void>;
}

/** Temporaries that exist right now, removed by {@link removeTemporaries} when the build is interrupted. */
const temporaries = new Set<string>();

/** Tracks a temporary file or directory until it is renamed into place or removed. */
export function trackTemporary(path: string): () => void {
  temporaries.add(path);
  return () => temporaries.delete(path);
}

/** Removes every tracked temporary (on SIGINT/SIGTERM); never throws. */
export async function removeTemporaries(): Promise<void> {
  const all = [...temporaries];
  temporaries.clear();
  await Promise.allSettled(all.map((p) => rm(p, { recursive: true, force: true })));
}

/** `.<name>.stowage-<pid>-<rand>.tmp` next to `dest` (same filesystem, so rename works). */
export function tempPathFor(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}.stowage-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Removes the temporaries next to `dest` that builds which died left behind
 * (`.<name>.stowage-<pid>-…`, the pid no longer running): a build killed
 * while writing an output leaves its temporary, and the next build writing
 * the same output cleans it up. Never throws.
 */
export async function removeDeadTemporaries(dest: string): Promise<void> {
  const dir = dirname(dest);
  const prefix = `.${basename(dest)}.stowage-`;
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    if (!Number.isInteger(pid) || pid === process.pid || isProcessAlive(pid)) continue;
    await rm(join(dir, name), { recursive: true, force: true }).catch(() => undefined);
  }
}

async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function pendingFile(tmp: string, dest: string, kind: string, untrack: () => void): PendingOutput {
  return {
    dest,
    kind,
    commit: async () => {
      crashPoint('export:before-rename');
      await rename(tmp, dest);
      untrack();
    },
    abort: async () => {
      await rm(tmp, { force: true });
      untrack();
    },
    revert: () => rm(dest, { force: true }),
  };
}

/** Writes a temp file next to `dest` with `write` and fsyncs it; commit renames it to `dest`. */
async function prepareFile(dest: string, kind: string, write: (tmp: string) => Promise<void>): Promise<PendingOutput> {
  await removeDeadTemporaries(dest);
  const tmp = tempPathFor(dest);
  const untrack = trackTemporary(tmp);
  try {
    await write(tmp);
    await fsyncFile(tmp);
  } catch (err) {
    await rm(tmp, { force: true });
    untrack();
    throw err;
  }
  return pendingFile(tmp, dest, kind, untrack);
}

/** Reports the bytes written so far to an output file (progress only). */
export type WrittenBytesListener = (written: number) => void;

/** Streams `source` into a temp file next to `dest`; commit renames it to `dest`. */
export function prepareStreamedFile(dest: string, kind: string, source: NodeJS.ReadableStream | AsyncIterable<Buffer>, mode = 0o644, onBytes?: WrittenBytesListener): Promise<PendingOutput> {
  return prepareFile(dest, kind, async (tmp) => {
    const out = createWriteStream(tmp, { mode, flags: 'wx' });
    if (!onBytes) return pipeline(source, crashBetweenChunks, out);
    let written = 0;
    const count = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        written += chunk.length;
        onBytes(written);
        cb(null, chunk);
      },
    });
    await pipeline(source, crashBetweenChunks, count, out);
  });

}

/** Passes chunks through; a crash-test hook can stop the process between two of them (a half-written temp file). */
async function* crashBetweenChunks(source: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer | string> {
  for await (const chunk of source) {
    yield chunk;
    crashPoint('export:partial');
  }
}

/** A small file (iidfile, metadata) written temp + fsync; commit renames it to `dest`. */
export function prepareSmallFile(dest: string, kind: string, content: string | Uint8Array, mode = 0o644): Promise<PendingOutput> {
  return prepareFile(dest, kind, (tmp) => writeFile(tmp, content, { mode, flag: 'wx' }));
}

/**
 * Commits every pending output in order; if one fails, the ones already
 * committed are removed again (best effort) and the rest aborted, so the
 * build leaves either all outputs or none.
 */
export async function commitAll(pending: PendingOutput[]): Promise<void> {
  const done: PendingOutput[] = [];
  try {
    for (const p of pending) {
      await p.commit();
      done.push(p);
      crashPoint('export:committed');
    }
  } catch (err) {
    for (const p of done.reverse()) await p.revert().catch(() => undefined);
    await abortAll(pending.filter((p) => !done.includes(p)));
    throw err;
  }
}

/** Removes every temporary; never throws. */
export async function abortAll(pending: PendingOutput[]): Promise<void> {
  for (const p of pending) await p.abort().catch(() => undefined);
}
