import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { writeLayer, type LayerEntry } from '../src/diff-writer.js';
import { GZIP_BLOCK_SIZE, GZIP_PARALLEL_THRESHOLD, gzipMembers, type GzipMemberOptions } from '../src/gzip-members.js';

const MiB = 1 << 20;

/** Deterministic content that compresses like a real layer: pseudo-random runs (AES-CTR of zeros) between text. */
function sample(bytes: number, seed = 1): Buffer {
  const key = createHash('sha256').update(`seed ${seed}`).digest().subarray(0, 16);
  const random = createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(bytes));
  const out = Buffer.alloc(bytes);
  const text = Buffer.from('func main() { fmt.Println("hello, world") } // a line of source text\n');
  for (let at = 0, i = 0; at < bytes; i++) {
    const n = Math.min(bytes - at, 4096 + (random[at % random.length]! << 4));
    if (i % 2 === 0) random.copy(out, at, at, at + n);
    else for (let j = 0; j < n; j++) out[at + j] = text[(at + j) % text.length]!;
    at += n;
  }
  return out;
}

/** Chunks of varying sizes, so that block cuts never line up with chunk boundaries. */
function* chunked(data: Buffer, sizes: number[]): Generator<Buffer> {
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield data.subarray(at, at + n);
    at += n;
  }
}

async function gz(source: Iterable<Buffer> | AsyncIterable<Buffer>, opts: GzipMemberOptions = {}): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of gzipMembers(opts)(source as AsyncIterable<Buffer>)) out.push(c);
  return Buffer.concat(out);
}

/** gzip of one block as zlib writes it, OS byte set to Unix. */
function member(data: Buffer): Buffer {
  const m = gzipSync(data, { level: 6 });
  m[9] = 3;
  return m;
}

const GZIP_HEADER = '1f8b08000000000000' + '03'; // magic, deflate, no flags, mtime 0, XFL 0 (level 6), OS Unix

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'stowage-gzip-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('gzipMembers', () => {
  test('below the threshold: one member, the same bytes as a plain zlib stream', async () => {
    const data = sample(GZIP_PARALLEL_THRESHOLD - 1);
    const out = await gz(chunked(data, [65536, 512, 1]));
    expect(out.equals(member(data))).toBe(true);
    expect(out.subarray(0, 10).toString('hex')).toBe(GZIP_HEADER);
    expect(gunzipSync(out).equals(data)).toBe(true);
    // Empty input is still a valid (empty) gzip file.
    expect(gunzipSync(await gz([])).length).toBe(0);
  }, 30_000);

  test('above the threshold: one member per 1 MiB block at fixed offsets, valid for gzip -t and gunzip', async () => {
    const data = sample(GZIP_PARALLEL_THRESHOLD + 2 * GZIP_BLOCK_SIZE + 12345);
    const out = await gz(chunked(data, [70000, 3, 1 << 20, 511]));
    const blocks: Buffer[] = [];
    for (let at = 0; at < data.length; at += GZIP_BLOCK_SIZE) blocks.push(member(data.subarray(at, at + GZIP_BLOCK_SIZE)));
    expect(blocks.length).toBe(7);
    expect(out.equals(Buffer.concat(blocks))).toBe(true);
    expect(gunzipSync(out).equals(data)).toBe(true);
    const file = join(dir, 'members.gz');
    writeFileSync(file, out);
    const t = spawnSync('gzip', ['-t', file], { encoding: 'utf8' });
    expect(t.stderr).toBe('');
    expect(t.status).toBe(0);
    const z = spawnSync('gzip', ['-dc', file], { maxBuffer: 64 * MiB });
    expect(z.status).toBe(0);
    expect(Buffer.compare(z.stdout, data)).toBe(0);
  }, 30_000);

  test('deterministic: the same bytes whatever the chunking and the concurrency', async () => {
    const data = sample(9 * MiB + 7, 2);
    const digests = new Set<string>();
    for (const [sizes, concurrency] of [[[MiB], 1], [[1, 4095, 77777], 2], [[13, 3 * MiB], 8]] as const) {
      const out = await gz(chunked(data, [...sizes]), { concurrency });
      digests.add(createHash('sha256').update(out).digest('hex'));
    }
    expect(digests.size).toBe(1);
  }, 30_000);

  test('reads ahead only a bounded amount when the consumer is slow', async () => {
    let produced = 0;
    async function* source(): AsyncGenerator<Buffer> {
      const chunk = sample(64 * 1024, 3);
      for (let i = 0; i < 40 * 16; i++) {
        produced += chunk.length;
        yield chunk;
      }
    }
    const it = gzipMembers({ concurrency: 2 })(source());
    await it.next();
    await new Promise((r) => setTimeout(r, 300));
    // Threshold read-ahead (4 MiB), then at most 2 blocks in flight plus the one being filled.
    expect(produced).toBeLessThanOrEqual(GZIP_PARALLEL_THRESHOLD + 3 * GZIP_BLOCK_SIZE + 64 * 1024);
    let members = 1;
    while (!(await it.next()).done) members++;
    expect(members).toBe(40);
    expect(produced).toBe(40 * MiB);
  }, 30_000);

  test('a failing source fails the stream; a failing consumer stops the reading', async () => {
    async function* broken(): AsyncGenerator<Buffer> {
      yield sample(6 * MiB, 4);
      throw new Error('disk on fire');
    }
    await expect(gz(broken())).rejects.toThrow('disk on fire');

    let produced = 0;
    // "Endless" up to 256 MiB, and yielding to the event loop, so that a broken stop fails the test instead of hanging it.
    async function* endless(): AsyncGenerator<Buffer> {
      const chunk = sample(MiB, 5);
      while (produced < 256 * MiB) {
        produced += chunk.length;
        yield chunk;
        await new Promise((r) => setImmediate(r));
      }
    }
    const failing = new Writable({ write: (_c, _e, cb) => cb(new Error('no space left')) });
    await expect(pipeline(endless(), gzipMembers({ concurrency: 2 }), failing)).rejects.toThrow('no space left');
    const after = produced;
    await new Promise((r) => setTimeout(r, 100));
    expect(produced).toBe(after);
    expect(after).toBeLessThan(16 * MiB);
  }, 30_000);
});

describe('writeLayer with a large layer', () => {
  const layerOf = async (src: string, dest: string) => {
    async function* entries(): AsyncGenerator<LayerEntry> {
      yield { path: 'data', type: 'Directory', mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0 };
      yield { path: 'data/big.bin', type: 'File', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 12 * MiB, source: src };
    }
    return writeLayer(entries(), dest);
  };

  test('digests match the bytes, two runs give the same digest, and gzip, tar and umoci read it', async () => {
    const src = join(dir, 'big.bin');
    const content = sample(12 * MiB, 6);
    writeFileSync(src, content);
    const a = await layerOf(src, join(dir, 'a.tar.gz'));
    const b = await layerOf(src, join(dir, 'b.tar.gz'));
    expect(b.digest).toBe(a.digest);
    const gzBytes = readFileSync(join(dir, 'a.tar.gz'));
    expect(`sha256:${createHash('sha256').update(gzBytes).digest('hex')}`).toBe(a.digest);
    expect(a.size).toBe(gzBytes.length);
    const tarBytes = gunzipSync(gzBytes);
    expect(`sha256:${createHash('sha256').update(tarBytes).digest('hex')}`).toBe(a.diffID);
    expect(spawnSync('gzip', ['-t', join(dir, 'a.tar.gz')]).status).toBe(0);
    const list = spawnSync('tar', ['-tzf', join(dir, 'a.tar.gz')], { encoding: 'utf8' });
    expect(list.status).toBe(0);
    expect(list.stdout.split('\n').filter(Boolean)).toEqual(['data/', 'data/big.bin']);

    // An OCI layout holding the layer, unpacked by umoci (Go's readers of multi-member gzip).
    const layout = join(dir, 'layout');
    const blobs = join(layout, 'blobs', 'sha256');
    mkdirSync(blobs, { recursive: true });
    const put = (bytes: Buffer): { digest: string; size: number } => {
      const hex = createHash('sha256').update(bytes).digest('hex');
      writeFileSync(join(blobs, hex), bytes);
      return { digest: `sha256:${hex}`, size: bytes.length };
    };
    put(gzBytes);
    const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [a.diffID] } })));
    const manifest = put(Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: a.digest, size: a.size }],
    })));
    writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(join(layout, 'index.json'), JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'big' } }],
    }));
    const bundle = join(dir, 'bundle');
    const u = spawnSync('umoci', ['unpack', '--rootless', '--image', `${layout}:big`, bundle], { encoding: 'utf8' });
    expect(u.stderr).not.toMatch(/error|invalid/i);
    expect(u.status).toBe(0);
    expect(readFileSync(join(bundle, 'rootfs', 'data', 'big.bin')).equals(content)).toBe(true);
  }, 120_000);
});
