import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { applyLayer } from '../src/index.js';
import { gunzip, igzipTool } from '../src/gunzip.js';
import { makeTar, sha256 } from './fixtures.js';

const hasIgzip = spawnSync('sh', ['-c', 'command -v igzip'], { encoding: 'utf8' }).status === 0;

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of chunks) out.push(c);
  return Buffer.concat(out);
}

async function* pieces(buf: Buffer, size = 997): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function* failingAfter(buf: Buffer, err: Error): AsyncGenerator<Buffer> {
  yield buf.subarray(0, Math.floor(buf.length / 2));
  throw err;
}

// scripts/setup installs isal; the suite runs both inflaters wherever igzip is present.
const inflaters = hasIgzip ? ['igzip', 'zlib'] : ['zlib'];

describe.each(inflaters)('gunzip with %s', (which) => {
  const saved = process.env.STOWAGE_GUNZIP;
  beforeAll(() => {
    process.env.STOWAGE_GUNZIP = which === 'zlib' ? 'zlib' : (igzipTool() ?? 'igzip');
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.STOWAGE_GUNZIP;
    else process.env.STOWAGE_GUNZIP = saved;
  });

  const data = Buffer.concat(Array.from({ length: 2000 }, (_, i) => Buffer.from(`line ${i} ${'x'.repeat(i % 97)}\n`)));

  test('round-trips, across concatenated members and trailing zero padding', async () => {
    expect((await collect(gunzip(pieces(gzipSync(data))))).equals(data)).toBe(true);
    const members = Buffer.concat([gzipSync(data.subarray(0, 5000)), gzipSync(data.subarray(5000))]);
    expect((await collect(gunzip(pieces(members)))).equals(data)).toBe(true);
    const padded = Buffer.concat([gzipSync(data), Buffer.alloc(1024)]);
    expect((await collect(gunzip(pieces(padded)))).equals(data)).toBe(true);
  });

  test('a truncated or corrupted stream is an invalid layer', async () => {
    const gz = gzipSync(data);
    await expect(collect(gunzip(pieces(gz.subarray(0, gz.length - 100))))).rejects.toMatchObject({ code: 'E_LAYER_INVALID' });
    const bad = Buffer.from(gz);
    bad.writeUInt8((bad.at(-6) ?? 0) ^ 0xff, bad.length - 6); // CRC32 field
    await expect(collect(gunzip(pieces(bad)))).rejects.toMatchObject({ code: 'E_LAYER_INVALID' });
  });

  test('a failing source surfaces as itself, not as a corrupt stream', async () => {
    const err = new Error('connection reset by the registry');
    await expect(collect(gunzip(failingAfter(gzipSync(data), err)))).rejects.toBe(err);
  });

  test('a consumer that stops early leaves no inflater behind', async () => {
    const big = Buffer.alloc(8 << 20, 'a');
    for await (const chunk of gunzip(pieces(gzipSync(big), 65536))) {
      expect(chunk.length).toBeGreaterThan(0);
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
    const leftover = spawnSync('pgrep', ['-P', String(process.pid), '-x', 'igzip']);
    expect(leftover.status).toBe(1); // no child named igzip
  });

  test('applyLayer gives the same tree and diffID as with the other inflater', async () => {
    const root = mkdtempSync(join(tmpdir(), 'stowage-gunzip-'));
    try {
      const tar = makeTar([
        { path: 'usr/', type: 'Directory' },
        { path: 'usr/lib/', type: 'Directory' },
        { path: 'lib', type: 'SymbolicLink', linkpath: 'usr/lib' },
        { path: 'lib/libx.so', body: 'elf' },
        { path: 'usr/lib/liby.so', body: 'elf2' },
      ]);
      const r = await applyLayer(root, Readable.from([gzipSync(tar)]));
      expect(r.diffID).toBe(sha256(tar));
      expect(readFileSync(join(root, 'usr/lib/libx.so'), 'utf8')).toBe('elf');
      expect(readlinkSync(join(root, 'lib'))).toBe('usr/lib');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('applyLayer: what it remembers about the tree it writes', () => {
  test('a directory made only as the parent of a skipped entry is still known to exist', async () => {
    const root = mkdtempSync(join(tmpdir(), 'stowage-fresh-'));
    try {
      const tar = makeTar([
        { path: 'dev/null', type: 'CharacterDevice' }, // skipped, but dev/ was made for it
        { path: 'dev/', type: 'Directory', mode: 0o750 },
        { path: 'dev/shm/', type: 'Directory' },
        { path: 'x', body: 'one' },
        { path: 'x', body: 'two' }, // the same name twice in one layer: the second replaces the first
      ]);
      const r = await applyLayer(root, Readable.from([tar]));
      expect(r.warnings.join('\n')).toMatch(/dev\/null: CharacterDevice skipped/);
      expect(readFileSync(join(root, 'x'), 'utf8')).toBe('two');
      expect(existsSync(join(root, 'dev/shm'))).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });


  test('a dir replaced by a symlink mid-layer: later entries follow the symlink, scoped to the root', async () => {
    const root = mkdtempSync(join(tmpdir(), 'stowage-dircache-'));
    try {
      const tar = makeTar([
        { path: 'a/', type: 'Directory' },
        { path: 'a/b/', type: 'Directory' },
        { path: 'a/b/one', body: '1' }, // resolves (and remembers) a/b
        { path: 'target/', type: 'Directory' },
        { path: 'a', type: 'SymbolicLink', linkpath: '/target' }, // replaces the dir a
        { path: 'a/b/two', body: '2' }, // must land in target/b, not in the removed a/b
      ]);
      await applyLayer(root, Readable.from([tar]));
      expect(readlinkSync(join(root, 'a'))).toBe('/target');
      expect(readFileSync(join(root, 'target/b/two'), 'utf8')).toBe('2');
      expect(existsSync(join(root, 'target/b/one'))).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
