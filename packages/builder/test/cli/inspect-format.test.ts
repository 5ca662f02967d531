import type { ImageConfig, ImageIndex, ImageManifest } from '@stowage/registry-client';
import { inspectDocument, inspectText, type InspectInput } from '../../src/cli/inspect-format.js';

const D = (c: string) => `sha256:${c.repeat(64)}`;

const manifest: ImageManifest = {
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: D('c'), size: 700 },
  layers: [
    { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D('1'), size: 1_000_000 },
    { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D('2'), size: 2048 },
  ],
};

const config: ImageConfig = {
  created: '2024-05-01T10:00:00Z',
  architecture: 'arm64',
  os: 'linux',
  variant: 'v8',
  config: {
    User: 'app',
    Env: ['PATH=/usr/bin:/bin', 'A=1'],
    Cmd: ['serve', '--port', '80'],
    WorkingDir: '/srv',
    Labels: { 'z.label': 'last', 'a.label': 'first' },
    ExposedPorts: { '80/tcp': {}, '53/udp': {} },
  },
  rootfs: { type: 'layers', diff_ids: [D('a'), D('b')] },
  history: [
    { created: '2024-05-01T09:00:00Z', created_by: '/bin/sh -c #(nop) ADD file:abc in /' },
    { created: '2024-05-01T10:00:00Z', created_by: 'ENV A=1', comment: 'stowage.dockerfile.v0', empty_layer: true },
    { created_by: 'RUN make\n  install' },
  ],
};

const index: ImageIndex = {
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.index.v1+json',
  manifests: [
    { mediaType: manifest.mediaType!, digest: D('e'), size: 500, platform: { os: 'linux', architecture: 'amd64' } },
    { mediaType: manifest.mediaType!, digest: D('f'), size: 501, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    // An attestation manifest (BuildKit) is not a platform.
    { mediaType: manifest.mediaType!, digest: D('9'), size: 300, platform: { os: 'unknown', architecture: 'unknown' } },
  ],
};

const input = (over: Partial<InspectInput> = {}): InspectInput => ({
  name: 'registry.example.com/app:1',
  source: 'registry',
  top: { digest: D('0'), mediaType: index.mediaType!, size: 900 },
  index,
  manifest: { digest: D('f'), mediaType: manifest.mediaType!, size: 501, json: manifest },
  config,
  ...over,
});

describe('inspectDocument', () => {
  test('an index: every field, platforms without attestations, sizes summed', () => {
    expect(inspectDocument(input())).toEqual({
      name: 'registry.example.com/app:1',
      source: 'registry',
      digest: D('0'),
      mediaType: 'application/vnd.oci.image.index.v1+json',
      platforms: ['linux/amd64', 'linux/arm64/v8'],
      manifest: { digest: D('f'), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 501 },
      platform: 'linux/arm64/v8',
      created: '2024-05-01T10:00:00Z',
      author: null,
      config: {
        digest: D('c'),
        mediaType: 'application/vnd.oci.image.config.v1+json',
        size: 700,
        User: 'app',
        Env: ['PATH=/usr/bin:/bin', 'A=1'],
        Entrypoint: null,
        Cmd: ['serve', '--port', '80'],
        WorkingDir: '/srv',
        Labels: { 'z.label': 'last', 'a.label': 'first' },
        ExposedPorts: ['53/udp', '80/tcp'],
        Volumes: [],
        StopSignal: null,
      },
      layers: [
        { digest: D('1'), size: 1_000_000, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', diffID: D('a') },
        { digest: D('2'), size: 2048, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', diffID: D('b') },
      ],
      history: [
        { created: '2024-05-01T09:00:00Z', created_by: '/bin/sh -c #(nop) ADD file:abc in /', comment: null, empty_layer: false },
        { created: '2024-05-01T10:00:00Z', created_by: 'ENV A=1', comment: 'stowage.dockerfile.v0', empty_layer: true },
        { created: null, created_by: 'RUN make\n  install', comment: null, empty_layer: false },
      ],
      size: 501 + 700 + 1_000_000 + 2048,
    });
  });

  test('a single manifest and an empty config: one platform, nulls and empty collections, never missing keys', () => {
    const bare: ImageConfig = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } };
    const m: ImageManifest = { ...manifest, layers: [] };
    const doc = inspectDocument({ name: null, source: 'oci-archive', top: { digest: D('f'), mediaType: manifest.mediaType!, size: 300 }, manifest: { digest: D('f'), mediaType: manifest.mediaType!, size: 300, json: m }, config: bare });
    expect(doc.platforms).toEqual(['linux/amd64']);
    expect(doc.config).toEqual({ digest: D('c'), mediaType: 'application/vnd.oci.image.config.v1+json', size: 700, User: null, Env: [], Entrypoint: null, Cmd: null, WorkingDir: null, Labels: {}, ExposedPorts: [], Volumes: [], StopSignal: null });
    expect(doc).toMatchObject({ name: null, created: null, author: null, layers: [], history: [], size: 1000 });
    // Stable for scripts: the same keys in the same order whatever the image.
    expect(Object.keys(doc)).toEqual(Object.keys(inspectDocument(input())));
    expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
  });

  test('more layers than diff_ids (a broken config) gives null diffIDs rather than failing', () => {
    const doc = inspectDocument(input({ config: { ...config, rootfs: { type: 'layers', diff_ids: [D('a')] } } }));
    expect(doc.layers.map((l) => l.diffID)).toEqual([D('a'), null]);
  });
});

describe('inspectText', () => {
  test('labelled lines, config fields indented, one line per layer and history entry', () => {
    const text = inspectText(inspectDocument(input()));
    const lines = text.split('\n');
    expect(lines.slice(0, 7)).toEqual([
      'Name:       registry.example.com/app:1',
      `Digest:     ${D('0')}`,
      'MediaType:  application/vnd.oci.image.index.v1+json',
      'Platforms:  linux/amd64, linux/arm64/v8',
      `Manifest:   ${D('f')} (linux/arm64/v8)`,
      'Created:    2024-05-01T10:00:00Z',
      'Size:       980 KiB (1003249 bytes, 2 layers)',
    ]);
    expect(lines).toContain('  Env:          PATH=/usr/bin:/bin');
    expect(lines).toContain('                A=1');
    expect(lines).toContain('  Cmd:          ["serve","--port","80"]');
    expect(lines).toContain('  Entrypoint:');
    // Labels sorted by key.
    expect(lines.indexOf('  Labels:       a.label=first')).toBeLessThan(lines.indexOf('                z.label=last'));
    expect(lines).toContain('  ExposedPorts: 53/udp, 80/tcp');
    expect(lines).toContain(`  ${D('1')}    977 KiB  application/vnd.oci.image.layer.v1.tar+gzip`);
    expect(lines).toContain('  2024-05-01T10:00:00Z      ENV A=1  (no layer)');
    // Multi-line commands stay on one line.
    expect(lines).toContain(`  ${'-'.padEnd(24)}  RUN make install`);
    expect(text.endsWith('\n')).toBe(true);
  });

  test('a single manifest shows its platform instead of the index lines', () => {
    const text = inspectText(inspectDocument(input({ index: undefined, top: { digest: D('f'), mediaType: manifest.mediaType!, size: 501 } })));
    expect(text).toMatch(/^Platform: {3}linux\/arm64\/v8$/m);
    expect(text).not.toMatch(/^Platforms:/m);
    expect(text).not.toMatch(/^Manifest:/m);
  });
});
