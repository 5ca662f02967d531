import { parseReference } from '@stowage/registry-client';
import type { WrittenImage } from './image.js';

/**
 * `--metadata-file` content, with the keys `docker buildx build` writes for
 * an image: the manifest digest, the config digest, the manifest's
 * descriptor, and the image names (fully qualified, comma-joined; absent
 * without tags).
 */
export function buildMetadata(written: Pick<WrittenImage, 'manifest' | 'config'>, tags: string[]): Record<string, unknown> {
  const meta: Record<string, unknown> = {
    'containerimage.config.digest': written.config.digest,
    'containerimage.descriptor': { mediaType: written.manifest.mediaType, digest: written.manifest.digest, size: written.manifest.size },
    'containerimage.digest': written.manifest.digest,
  };
  if (tags.length > 0) meta['image.name'] = tags.map((t) => parseReference(t).toString()).join(',');
  return meta;
}

/** Pretty-printed as buildx does (two-space indent). */
export function metadataFileContent(written: Pick<WrittenImage, 'manifest' | 'config'>, tags: string[]): string {
  return JSON.stringify(buildMetadata(written, tags), null, 2);
}

/** `--iidfile`: the image ID (the config digest, `sha256:…`) with no newline, as docker writes it. */
export function iidFileContent(written: Pick<WrittenImage, 'config'>): string {
  return written.config.digest;
}
