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

  test('several tags: one entry each, same manifest, independent objects', () => {
    const out = taggedDescriptors(manifest, ['a:1', 'user/b:2'], { os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(out.map((d) => d.annotations?.['io.containerd.image.name'])).toEqual(['docker.io/library/a:1', 'docker.io/user/b:2']);
    expect(out.every((d) => d.digest === manifest.digest)).toBe(true);
    expect(out[0]!.platform).not.toBe(out[1]!.platform === undefined ? undefined : {});
    expect(out[0]!.platform).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  });

  test('an invalid tag throws', () => {
    expect(() => taggedDescriptors(manifest, ['Bad:Tag'])).toThrow();
  });
});
