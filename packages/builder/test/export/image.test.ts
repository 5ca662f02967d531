import type { Descriptor } from '@stowage/registry-client';
import { taggedDescriptors } from '../../src/export/image.js';

const manifest: Descriptor = {
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${'1'.repeat(64)}`,
  size: 123,
};
const platform = { os: 'linux', architecture: 'amd64' };

describe('taggedDescriptors', () => {
  test('no tags: one entry without annotations', () => {
    const out = taggedDescriptors(manifest, [], platform);
    expect(out).toEqual([{ ...manifest, platform }]);
    expect(out[0]).not.toHaveProperty('annotations');
  });

  test('no platform given: no platform field', () => {
    expect(taggedDescriptors(manifest, [])).toEqual([manifest]);
  });

  test('-t hello: ref.name latest, containerd name fully qualified', () => {
    const [d] = taggedDescriptors(manifest, ['hello'], platform);
    expect(d).toMatchObject({ digest: manifest.digest, size: 123, mediaType: manifest.mediaType, platform });
    expect(d!.annotations).toEqual({
      'io.containerd.image.name': 'docker.io/library/hello:latest',
      'org.opencontainers.image.ref.name': 'latest',
    });
  });

  test('-t reg:5000/a/b:v1', () => {
    const [d] = taggedDescriptors(manifest, ['reg:5000/a/b:v1'], platform);
    expect(d!.annotations).toEqual({
      'io.containerd.image.name': 'reg:5000/a/b:v1',
      'org.opencontainers.image.ref.name': 'v1',
    });
  });

  test('several tags: one entry each, same manifest', () => {
    const out = taggedDescriptors(manifest, ['a:1', 'user/b:2'], { os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(out.map((d) => d.annotations?.['io.containerd.image.name'])).toEqual(['docker.io/library/a:1', 'docker.io/user/b:2']);
    expect(out.every((d) => d.digest === manifest.digest)).toBe(true);
    expect(out[0]!.platform).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  });

  test('an invalid tag throws', () => {
    expect(() => taggedDescriptors(manifest, ['Bad:Tag'])).toThrow();
  });
});

describe('writeImage', () => {
  test('stores config and manifest; diff_ids follow the layers', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { createHash } = await import('node:crypto');
    const { ContentStore, MediaTypes } = await import('@stowage/registry-client');
    const { writeImage } = await import('../../src/export/image.js');
    const dir = await mkdtemp(join(tmpdir(), 'stowage-export-'));
    try {
      const store = await ContentStore.open(dir);
      const layer = { descriptor: { mediaType: MediaTypes.OCI_LAYER_GZIP, digest: `sha256:${'2'.repeat(64)}`, size: 10 }, diffID: `sha256:${'3'.repeat(64)}` };
      const written = await writeImage(store, {
        layers: [layer],
        config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: ['stale'] }, history: [] },
      });
      const config = JSON.parse((await store.readBlob(written.config.digest)).toString('utf8'));
      expect(config.rootfs).toEqual({ type: 'layers', diff_ids: [layer.diffID] });
      expect(config.config).toEqual({ Cmd: ['sh'] });
      const manifestBytes = await store.readBlob(written.manifest.digest);
      expect(written.manifest.digest).toBe(`sha256:${createHash('sha256').update(manifestBytes).digest('hex')}`);
      expect(written.manifest.size).toBe(manifestBytes.length);
      const manifest = JSON.parse(manifestBytes.toString('utf8'));
      expect(manifest).toMatchObject({ schemaVersion: 2, mediaType: MediaTypes.OCI_MANIFEST, config: { mediaType: MediaTypes.OCI_CONFIG, digest: written.config.digest } });
      expect(manifest.layers).toEqual([layer.descriptor]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
