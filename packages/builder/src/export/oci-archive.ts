import { createWriteStream } from 'node:fs';
import { copyFile, link, mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { create as createTar } from 'tar';
import { MediaTypes, type ContentStore, type Descriptor } from '@stowage/registry-client';

/**
 * Writes an OCI image layout (oci-layout, index.json, blobs/sha256/…) as one
 * tar file. Blobs are hard-linked from the content store into a staging
 * folder and streamed into the tar, never held in memory. The tar appears at
 * `dest` by rename only once complete, so a failed export leaves no
 * half-written file.
 */
export async function writeOciArchive(store: ContentStore, entries: Descriptor[], blobs: Descriptor[], dest: string, stagingRoot: string): Promise<void> {
  const staging = join(stagingRoot, `oci-${process.pid}-${Date.now()}`);
  const blobDir = join(staging, 'blobs', 'sha256');
  await mkdir(blobDir, { recursive: true });
  const tmp = join(dirname(dest), `.${basename(dest)}.stowage-${process.pid}.tmp`);
  try {
    await writeFile(join(staging, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(join(staging, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.OCI_INDEX, manifests: entries }));
    const seen = new Set<string>();
    for (const blob of blobs) {
      if (seen.has(blob.digest)) continue;
      seen.add(blob.digest);
      const target = join(blobDir, blob.digest.slice('sha256:'.length));
      await link(store.blobPath(blob.digest), target).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EXDEV' && err.code !== 'EPERM') throw err;
        await copyFile(store.blobPath(blob.digest), target);
      });
    }
    const names = ['oci-layout', 'index.json', 'blobs/', 'blobs/sha256/', ...[...seen].sort().map((d) => `blobs/sha256/${d.slice('sha256:'.length)}`)];
    // portable: no uid/gid/uname of the building user; fixed mtime: same image, same tar bytes.
    const tar = createTar({ cwd: staging, portable: true, mtime: new Date(0), noDirRecurse: true }, names);
    await pipeline(tar, createWriteStream(tmp, { mode: 0o644 }));
    const fh = await open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
