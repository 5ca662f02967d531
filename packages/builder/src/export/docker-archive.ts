import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { makeReference, parseReference, type ContentStore, type Descriptor } from '@stowage/registry-client';
import { BuildError } from '../errors.js';
import type { PendingOutput, WrittenBytesListener } from './atomic.js';
import { linkBlob, makeStaging, prepareTarOfStaging, stagingWrites } from './oci-archive.js';

/**
 * docker-archive, the format of `docker save` / `docker load`.
 *
 * Layout written (Docker Engine ≥ 25's `docker save` layout, without its OCI
 * index):
 *
 *   blobs/sha256/<config hex>     the image config (its digest is the image ID)
 *   blobs/sha256/<diffID hex>     each layer, as an *uncompressed* tar
 *   manifest.json                 [{ Config, RepoTags, Layers }] with those paths
 *   repositories                  { familiar name: { tag: top layer hex } } (legacy)
 *
 * Every `docker load` since 1.10 and containers/image (podman load, skopeo)
 * read only `manifest.json` and open the paths it lists, so the paths may be
 * anything; `blobs/sha256/` is what current Docker writes and keeps the
 * archive content-addressed. Layers are uncompressed because that is what
 * `docker save` has always written and the one form every reader accepts
 * (compressed layers inside docker-archive were added to the readers later).
 */

export interface DockerManifestEntry {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

export interface DockerArchiveIndex {
  manifest: DockerManifestEntry[];
  /** Absent without tags or without layers. */
  repositories?: Record<string, Record<string, string>>;
}

const hexOf = (digest: string) => {
  const m = /^sha256:([a-f0-9]{64})$/.exec(digest);
  if (!m) throw new BuildError('E_EXPORT', `unsupported digest ${digest} (only sha256 can be written to a docker archive)`);
  return m[1]!;
};

/** `blobs/sha256/<hex>` */
export const blobPathInArchive = (digest: string) => `blobs/sha256/${hexOf(digest)}`;

/**
 * Tags as docker writes them in RepoTags: familiar (`hello:latest`,
 * `user/app:1`, `reg:5000/a/b:v1`), the default tag made explicit; digest-only
 * references carry no tag and are left out; duplicates once.
 */
export function repoTags(tags: string[]): { name: string; tag: string }[] {
  const out: { name: string; tag: string }[] = [];
  const seen = new Set<string>();
  for (const t of tags) {
    const ref = parseReference(t);
    if (ref.tag === undefined) continue;
    const name = makeReference({ registry: ref.registry, repository: ref.repository }).familiar();
    const key = `${name}:${ref.tag}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ name, tag: ref.tag });
  }
  return out;
}

/** manifest.json and repositories for an image with this config and these layer diffIDs. */
export function dockerArchiveIndex(configDigest: string, diffIDs: string[], tags: string[]): DockerArchiveIndex {
  const named = repoTags(tags);
  const manifest: DockerManifestEntry[] = [
    {
      Config: blobPathInArchive(configDigest),
      RepoTags: named.length > 0 ? named.map((n) => `${n.name}:${n.tag}`) : null,
      Layers: diffIDs.map(blobPathInArchive),
    },
  ];
  if (named.length === 0 || diffIDs.length === 0) return { manifest };
  const top = hexOf(diffIDs[diffIDs.length - 1]!);
  const repositories: Record<string, Record<string, string>> = {};
  for (const { name, tag } of named) (repositories[name] ??= {})[tag] = top;
  return { manifest, repositories };
}

export interface DockerArchiveLayer {
  descriptor: Descriptor;
  diffID: string;
}

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

async function magic(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

const startsWith = (buf: Buffer, bytes: number[]) => buf.length >= bytes.length && bytes.every((b, i) => buf[i] === b);

/**
 * Writes the layer's uncompressed tar to `target`: a hard link of the blob
 * when it is stored uncompressed, else gunzipped from the content store and
 * checked against the layer's diffID.
 */
export async function writeUncompressedLayer(store: ContentStore, layer: DockerArchiveLayer, target: string): Promise<void> {
  const src = store.blobPath(layer.descriptor.digest);
  const head = await magic(src);
  if (startsWith(head, ZSTD_MAGIC)) {
    throw new BuildError('E_EXPORT', `layer ${layer.descriptor.digest} is zstd-compressed; type=docker cannot decompress zstd layers yet (use type=oci)`);
  }
  if (!startsWith(head, GZIP_MAGIC)) {
    if (layer.descriptor.digest === layer.diffID) {
      await linkBlob(store, layer.descriptor.digest, target);
      return;
    }
  }
  const hash = createHash('sha256');
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  if (startsWith(head, GZIP_MAGIC)) await pipeline(createReadStream(src), createGunzip(), tap, createWriteStream(target, { flags: 'wx' }));
  else await pipeline(createReadStream(src), tap, createWriteStream(target, { flags: 'wx' }));
  const got = `sha256:${hash.digest('hex')}`;
  if (got !== layer.diffID) {
    await rm(target, { force: true });
    throw new BuildError('E_EXPORT', `layer ${layer.descriptor.digest} uncompresses to ${got}, not its diffID ${layer.diffID}`);
  }
}

/**
 * Prepares a docker-archive tar (see the top of this file) next to `dest`;
 * nothing appears at `dest` until the returned output is committed.
 */
export async function prepareDockerArchive(
  store: ContentStore,
  image: { config: Descriptor; layers: DockerArchiveLayer[] },
  tags: string[],
  dest: string,
  stagingRoot: string,
  onBytes?: WrittenBytesListener,
): Promise<PendingOutput> {
  const staging = await makeStaging(stagingRoot, 'docker');
  const blobDir = join(staging, 'blobs', 'sha256');
  try {
    const index = dockerArchiveIndex(image.config.digest, image.layers.map((l) => l.diffID), tags);
    const blobs = new Set<string>();
    const names = ['blobs/', 'blobs/sha256/'];
    // The uncompressed layers take as much room on --root as the image unpacked.
    await stagingWrites(async () => {
      await mkdir(blobDir, { recursive: true });
      await linkBlob(store, image.config.digest, join(staging, blobPathInArchive(image.config.digest)));
      blobs.add(blobPathInArchive(image.config.digest));
      for (const layer of image.layers) {
        const rel = blobPathInArchive(layer.diffID);
        if (blobs.has(rel)) continue; // the same layer twice (e.g. two identical steps): one file
        await writeUncompressedLayer(store, layer, join(staging, rel));
        blobs.add(rel);
      }
      await writeFile(join(staging, 'manifest.json'), JSON.stringify(index.manifest));
      names.push(...[...blobs].sort(), 'manifest.json');
      if (index.repositories) {
        await writeFile(join(staging, 'repositories'), JSON.stringify(index.repositories));
        names.push('repositories');
      }
    });
    return await prepareTarOfStaging(staging, names, dest, 'docker archive tar', onBytes);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
