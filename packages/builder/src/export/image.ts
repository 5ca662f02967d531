import { MediaTypes, parseReference, type ContentStore, type Descriptor, type ImageManifest } from '@stowage/registry-client';
import type { StageResult } from '../engine/builder.js';
import { withoutEmptyFields } from '../engine/image-config.js';

export interface WrittenImage {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
}

/**
 * Stores the image's config and OCI manifest in the content store. Layers are
 * already there: base layers as pulled (never recompressed), new ones as the
 * snapshotter wrote them.
 */
export async function writeImage(store: ContentStore, image: Pick<StageResult, 'layers' | 'config'>): Promise<WrittenImage> {
  const config = {
    ...image.config,
    ...(image.config.config ? { config: withoutEmptyFields(image.config.config) } : {}),
    rootfs: { type: 'layers' as const, diff_ids: image.layers.map((l) => l.diffID) },
  };
  const configBlob = await store.writeBlob(JSON.stringify(config));
  const configDesc: Descriptor = { mediaType: MediaTypes.OCI_CONFIG, digest: configBlob.digest, size: configBlob.size };
  const layers = image.layers.map((l) => ({ ...l.descriptor }));
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaTypes.OCI_MANIFEST, config: configDesc, layers };
  const manifestBlob = await store.writeBlob(JSON.stringify(manifest));
  return { manifest: { mediaType: MediaTypes.OCI_MANIFEST, digest: manifestBlob.digest, size: manifestBlob.size }, config: configDesc, layers };
}

/**
 * Index entries for the tags, as BuildKit's OCI exporter writes them: the
 * tag in `org.opencontainers.image.ref.name`, the full name in
 * `io.containerd.image.name`. No tag gives one unnamed entry.
 */
export function taggedDescriptors(manifest: Descriptor, tags: string[], platform?: { os: string; architecture: string; variant?: string }): Descriptor[] {
  const base: Descriptor = { ...manifest, ...(platform ? { platform: { ...platform } } : {}) };
  if (tags.length === 0) return [base];
  return tags.map((tag) => {
    const ref = parseReference(tag);
    return {
      ...base,
      annotations: {
        'io.containerd.image.name': ref.toString(),
        'org.opencontainers.image.ref.name': ref.tag ?? ref.digest ?? 'latest',
      },
    };
  });
}
