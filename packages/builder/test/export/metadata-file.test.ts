import { buildMetadata, iidFileContent, metadataFileContent } from '../../src/export/metadata-file.js';

const written = {
  manifest: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: 480 },
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'b'.repeat(64)}`, size: 900 },
};

describe('--metadata-file and --iidfile', () => {
  test('the keys buildx writes for an image', () => {
    expect(buildMetadata(written, ['demo:1', 'reg:5000/a/b'])).toEqual({
      'containerimage.config.digest': written.config.digest,
      'containerimage.descriptor': written.manifest,
      'containerimage.digest': written.manifest.digest,
      'image.name': 'docker.io/library/demo:1,reg:5000/a/b:latest',
    });
  });

  test('no tags: no image.name', () => {
    expect(buildMetadata(written, [])).not.toHaveProperty('image.name');
  });

  test('pretty-printed JSON; the iidfile is the config digest without a newline', () => {
    expect(metadataFileContent(written, [])).toBe(JSON.stringify(buildMetadata(written, []), null, 2));
    expect(iidFileContent(written)).toBe(written.config.digest);
  });
});
