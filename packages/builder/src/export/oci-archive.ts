import { copyFile, link, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { create as createTar } from 'tar';
import { MediaTypes, type ContentStore, type Descriptor } from '@stowage/registry-client';
import { prepareStreamedFile, type PendingOutput, type WrittenBytesListener } from './atomic.js';

/** Hard-links a content store blob to `target` (a copy across devices). */
export async function linkBlob(store: ContentStore, digest: string, target: string): Promise<void> {
  await link(store.blobPath(digest), target).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EXDEV' && err.code !== 'EPERM') throw err;
    await copyFile(store.blobPath(digest), target);
  });
}

/**
 * Tars the listed entries of `staging` (in that order, no recursion) into a
 * temp file next to `dest`. `portable`: no uid/gid/uname of the building
 * user; fixed mtime: same image, same tar bytes.
 */
export function prepareTarOfStaging(staging: string, names: string[], dest: string, kind: string, onBytes?: WrittenBytesListener): Promise<PendingOutput> {
  // 1 MiB reads (node-tar's default is 16 MiB a read): the export stays within a small, fixed memory.
  const tar = createTar({ cwd: staging, portable: true, mtime: new Date(0), noDirRecurse: true, maxReadSize: 1 << 20 }, names);
  return prepareStreamedFile(dest, kind, tar, 0o644, onBytes);
}

let stagingSeq = 0;

/**
 * A write into a staging directory ran out of space. Staging lives in the
 * build's tmp on --root, so the fix is room there, not at the output's
 * destination: the caller names --root.
 */
export class StagingNoSpaceError extends Error {
  readonly code = 'ENOSPC';
  constructor(override readonly cause: Error) {
    super(cause.message);
    this.name = 'StagingNoSpaceError';
  }
}

/** Runs writes into a staging directory; ENOSPC becomes a {@link StagingNoSpaceError}. */
export async function stagingWrites<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC' && !(err instanceof StagingNoSpaceError)) throw new StagingNoSpaceError(err as Error);
    throw err;
  }
}

/** A fresh staging directory below `stagingRoot` (the build's tmp). */
export async function makeStaging(stagingRoot: string, prefix: string): Promise<string> {
  const dir = join(stagingRoot, `${prefix}-${process.pid}-${Date.now()}-${++stagingSeq}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

/**
 * Prepares an OCI image layout (oci-layout, index.json, blobs/sha256/…) as one
 * tar file next to `dest`. Blobs are hard-linked from the content store into a
 * staging folder and streamed into the tar, never held in memory. Nothing
 * appears at `dest` until the returned output is committed.
 */
export async function prepareOciArchive(store: ContentStore, entries: Descriptor[], blobs: Descriptor[], dest: string, stagingRoot: string, onBytes?: WrittenBytesListener): Promise<PendingOutput> {
  const staging = await makeStaging(stagingRoot, 'oci');
  const blobDir = join(staging, 'blobs', 'sha256');
  try {
    const seen = new Set<string>();
    await stagingWrites(async () => {
      await mkdir(blobDir, { recursive: true });
      await writeFile(join(staging, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
      await writeFile(join(staging, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.OCI_INDEX, manifests: entries }));
      for (const blob of blobs) {
        if (seen.has(blob.digest)) continue;
        seen.add(blob.digest);
        await linkBlob(store, blob.digest, join(blobDir, blob.digest.slice('sha256:'.length)));
      }
    });
    const names = ['oci-layout', 'index.json', 'blobs/', 'blobs/sha256/', ...[...seen].sort().map((d) => `blobs/sha256/${d.slice('sha256:'.length)}`)];
    return await prepareTarOfStaging(staging, names, dest, 'oci image layout tar', onBytes);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** {@link prepareOciArchive} and commit: the tar appears at `dest` by rename only once complete. */
export async function writeOciArchive(store: ContentStore, entries: Descriptor[], blobs: Descriptor[], dest: string, stagingRoot: string): Promise<void> {
  const out = await prepareOciArchive(store, entries, blobs, dest, stagingRoot);
  try {
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err;
  }
}
