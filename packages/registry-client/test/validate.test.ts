import { ManifestInvalidError, MediaTypes, parseImageConfig, parseImageIndex, parseImageManifest } from '../src/index.js';

const D = (c: string): string => `sha256:${c.repeat(64)}`;

const goodManifest = {
  schemaVersion: 2,
  mediaType: MediaTypes.OCI_MANIFEST,
  config: { mediaType: MediaTypes.OCI_CONFIG, digest: D('a'), size: 10 },
  layers: [{ mediaType: MediaTypes.OCI_LAYER_GZIP, digest: D('b'), size: 20, annotations: { k: 'v' } }],
  annotations: { 'org.opencontainers.image.ref.name': 'x' },
  unknownField: 'dropped',
};

function invalid(fn: () => unknown, message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ManifestInvalidError);
  expect((caught as ManifestInvalidError).code).toBe('E_MANIFEST_INVALID');
  expect((caught as Error).message).toMatch(message);
}

test('accepts a valid manifest and drops unknown fields', () => {
  const m = parseImageManifest(goodManifest);
  expect(m.layers[0]?.annotations).toEqual({ k: 'v' });
  expect(m.config.digest).toBe(D('a'));
  expect(Object.keys(m)).not.toContain('unknownField');
});

test('docker schema2 manifest without annotations', () => {
  const m = parseImageManifest({ ...goodManifest, mediaType: MediaTypes.DOCKER_MANIFEST, annotations: undefined });
  expect(m.mediaType).toBe(MediaTypes.DOCKER_MANIFEST);
  expect(m.annotations).toBeUndefined();
});

test.each<[string, unknown, RegExp]>([
  ['not an object', [], /expected an object/],
  ['schemaVersion 1', { ...goodManifest, schemaVersion: 1 }, /schemaVersion: expected 2/],
  ['index media type', { ...goodManifest, mediaType: MediaTypes.OCI_INDEX }, /not an image manifest media type/],
  ['missing config', { ...goodManifest, config: undefined }, /manifest.config: expected an object/],
  ['layers not array', { ...goodManifest, layers: {} }, /manifest.layers: expected an array/],
  ['bad digest', { ...goodManifest, layers: [{ mediaType: 'x', digest: 'sha256:zz', size: 1 }] }, /layers\[0\].digest: invalid digest/],
  ['negative size', { ...goodManifest, layers: [{ mediaType: 'x', digest: D('c'), size: -1 }] }, /layers\[0\].size/],
  ['fractional size', { ...goodManifest, layers: [{ mediaType: 'x', digest: D('c'), size: 1.5 }] }, /layers\[0\].size/],
  ['annotation not string', { ...goodManifest, annotations: { a: 1 } }, /annotations.a: expected a string/],
  ['missing mediaType in descriptor', { ...goodManifest, config: { digest: D('a'), size: 1 } }, /config.mediaType: missing/],
])('rejects manifest: %s', (_name, json, message) => invalid(() => parseImageManifest(json), message));

test('index with platforms', () => {
  const idx = parseImageIndex({
    schemaVersion: 2,
    mediaType: MediaTypes.OCI_INDEX,
    manifests: [
      { mediaType: MediaTypes.OCI_MANIFEST, digest: D('1'), size: 5, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: MediaTypes.OCI_MANIFEST, digest: D('2'), size: 5 },
    ],
  });
  expect(idx.manifests[0]?.platform).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  expect(idx.manifests[1]?.platform).toBeUndefined();
  invalid(() => parseImageIndex({ schemaVersion: 2, manifests: [{ mediaType: 'x', digest: D('1'), size: 1, platform: { os: 'linux' } }] }), /platform.architecture: missing/);
  invalid(() => parseImageIndex({ schemaVersion: 2, mediaType: MediaTypes.OCI_MANIFEST, manifests: [] }), /not an image index/);
  invalid(() => parseImageIndex({ schemaVersion: 2 }), /index.manifests: expected an array/);
});

test('image config: fields typed, nulls tolerated, unknown dropped', () => {
  const cfg = parseImageConfig({
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['A=1'], Cmd: null, Entrypoint: ['/bin/sh', '-c'], ExposedPorts: { '80/tcp': {} }, Hostname: 'x', Healthcheck: { Test: ['CMD', 'true'], Interval: 1e9 } },
    rootfs: { type: 'layers', diff_ids: [D('d')] },
    history: [{ created_by: 'RUN x', empty_layer: true }],
    container_config: { Cmd: ['ignored'] },
  });
  expect(cfg.config).toEqual({ Env: ['A=1'], Cmd: null, Entrypoint: ['/bin/sh', '-c'], ExposedPorts: { '80/tcp': {} }, Healthcheck: { Test: ['CMD', 'true'], Interval: 1e9 } });
  expect(cfg.history).toEqual([{ created_by: 'RUN x', empty_layer: true }]);
  invalid(() => parseImageConfig({ os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }), /config.architecture: missing/);
  invalid(() => parseImageConfig({ os: 'linux', architecture: 'amd64', rootfs: { type: 'other', diff_ids: [] } }), /rootfs.type/);
  invalid(() => parseImageConfig({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: ['nope'] } }), /diff_ids\[0\]/);
  invalid(() => parseImageConfig({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [] }, config: { Env: 'A=1' } }), /config.config.Env/);
});
