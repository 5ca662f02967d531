/**
 * Minimal distribution-API pusher for tests: monolithic blob uploads
 * (POST then PUT ?digest=) and manifest PUTs.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export async function pushBlob(base: string, repo: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha256(data);
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await start.arrayBuffer();
  if (start.status !== 202) throw new Error(`upload start: HTTP ${start.status}`);
  const location = start.headers.get('location');
  if (location === null) throw new Error('upload start: no Location');
  const u = new URL(location, base);
  u.searchParams.set('digest', digest);
  const put = await fetch(u, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: data });
  const text = await put.text();
  if (put.status !== 201) throw new Error(`upload finish: HTTP ${put.status} ${text}`);
  return { digest, size: data.byteLength };
}

export async function pushManifest(base: string, repo: string, reference: string, mediaType: string, body: string): Promise<string> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${reference}`, { method: 'PUT', headers: { 'content-type': mediaType }, body });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`manifest put ${reference}: HTTP ${res.status} ${text}`);
  return sha256(body);
}

/** A tiny but well-formed single-entry tar, so the layer is realistic. */
function tarWithFile(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${content.byteLength.toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148); // checksum placeholder
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const pad = Buffer.alloc((512 - (content.byteLength % 512)) % 512);
  return Buffer.concat([header, content, pad, Buffer.alloc(1024)]);
}

export interface PushedImage {
  manifestDigest: string;
  manifestBody: string;
  manifestSize: number;
  configDigest: string;
  layerDigest: string;
  layerBytes: Buffer;
  diffId: string;
}

export async function pushImage(
  base: string,
  repo: string,
  opts: { tag?: string; architecture: string; variant?: string; fileContent: string; docker?: boolean },
): Promise<PushedImage> {
  const tar = tarWithFile('hello.txt', Buffer.from(opts.fileContent));
  const layerBytes = gzipSync(tar);
  const diffId = sha256(tar);
  const layer = await pushBlob(base, repo, layerBytes);
  const config = JSON.stringify({
    created: '2024-01-01T00:00:00Z',
    architecture: opts.architecture,
    ...(opts.variant !== undefined ? { variant: opts.variant } : {}),
    os: 'linux',
    config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'], WorkingDir: '/', Labels: { 'org.example': 'yes' } },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created: '2024-01-01T00:00:00Z', created_by: 'test' }],
  });
  const cfg = await pushBlob(base, repo, Buffer.from(config));
  const docker = opts.docker === true;
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: docker ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json',
      digest: cfg.digest,
      size: cfg.size,
    },
    layers: [
      {
        mediaType: docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: layer.digest,
        size: layer.size,
      },
    ],
  });
  const mt = docker ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/vnd.oci.image.manifest.v1+json';
  const manifestDigest = await pushManifest(base, repo, opts.tag ?? sha256(manifest), mt, manifest);
  return {
    manifestDigest,
    manifestBody: manifest,
    manifestSize: Buffer.byteLength(manifest),
    configDigest: cfg.digest,
    layerDigest: layer.digest,
    layerBytes,
    diffId,
  };
}

export async function pushIndex(
  base: string,
  repo: string,
  tag: string,
  entries: Array<{ image: PushedImage; architecture: string; variant?: string }>,
): Promise<string> {
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: entries.map((e) => ({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: e.image.manifestDigest,
      size: e.image.manifestSize,
      platform: { os: 'linux', architecture: e.architecture, ...(e.variant !== undefined ? { variant: e.variant } : {}) },
    })),
  });
  return pushManifest(base, repo, tag, 'application/vnd.oci.image.index.v1+json', index);
}
