import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ContentStore, DigestMismatchError, sha256Digest } from '../src/index.js';

let root: string;
let store: ContentStore;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-cs-'));
  store = await ContentStore.open(join(root, 'content'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function* chunks(data: Buffer, size = 7): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.byteLength; i += size) yield data.subarray(i, i + size);
}

const blobsDir = (): string => join(root, 'content', 'blobs', 'sha256');
const ingestDir = (): string => join(root, 'content', 'ingest');

test('ingest streams, verifies and publishes under blobs/sha256/<hex>', async () => {
  const data = Buffer.from('hello content store '.repeat(100));
  const digest = sha256Digest(data);
  await store.ingest(chunks(data), { digest, size: data.byteLength });
  expect(store.blobPath(digest)).toBe(join(blobsDir(), digest.slice(7)));
  expect(await store.has(digest)).toBe(true);
  expect((await store.readBlob(digest)).equals(data)).toBe(true);
  expect(await store.size(digest)).toBe(data.byteLength);
  expect(await readdir(ingestDir())).toEqual([]);
  const back: Buffer[] = [];
  for await (const c of store.openRead(digest)) back.push(c as Buffer);
  expect(Buffer.concat(back).equals(data)).toBe(true);
});

test('node Readable sources work', async () => {
  const data = Buffer.from('readable');
  await store.ingest(Readable.from([data]), { digest: sha256Digest(data) });
  expect(await store.has(sha256Digest(data))).toBe(true);
});

test('digest mismatch leaves nothing in blobs/ or ingest/', async () => {
  const data = Buffer.from('the real bytes');
  const wrong = sha256Digest('other bytes');
  await expect(store.ingest(chunks(data), { digest: wrong, size: data.byteLength })).rejects.toBeInstanceOf(DigestMismatchError);
  expect(await readdir(blobsDir())).toEqual([]);
  expect(await readdir(ingestDir())).toEqual([]);
  expect(await store.has(wrong)).toBe(false);
});

test('size mismatch (short and long) is rejected', async () => {
  const data = Buffer.from('0123456789');
  const digest = sha256Digest(data);
  await expect(store.ingest(chunks(data), { digest, size: 11 })).rejects.toThrow(/size mismatch/);
  await expect(store.ingest(chunks(data), { digest, size: 5 })).rejects.toThrow(/more than the expected 5 bytes/);
  await expect(store.ingest(chunks(data), { digest, size: 5 })).rejects.toMatchObject({ code: 'E_DIGEST_MISMATCH' });
  expect(await readdir(blobsDir())).toEqual([]);
  expect(await readdir(ingestDir())).toEqual([]);
});

test('a source that fails midway leaves nothing behind', async () => {
  const data = Buffer.from('partial');
  async function* broken(): AsyncGenerator<Uint8Array> {
    yield data;
    throw new Error('connection reset');
  }
  await expect(store.ingest(broken(), { digest: sha256Digest(data) })).rejects.toThrow('connection reset');
  expect(await readdir(blobsDir())).toEqual([]);
  expect(await readdir(ingestDir())).toEqual([]);
});

test('concurrent ingests of the same blob all succeed with identical content', async () => {
  const data = Buffer.alloc(256 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) % 251;
  const digest = sha256Digest(data);
  await Promise.all(Array.from({ length: 8 }, () => store.ingest(chunks(data, 4096), { digest, size: data.byteLength })));
  expect((await store.readBlob(digest)).equals(data)).toBe(true);
  expect(await readdir(blobsDir())).toEqual([digest.slice(7)]);
  expect(await readdir(ingestDir())).toEqual([]);
});

test('writeBlob returns digest and size and is idempotent', async () => {
  const a = await store.writeBlob('{"a":1}');
  expect(a).toEqual({ digest: sha256Digest('{"a":1}'), size: 7 });
  expect(await store.writeBlob(Buffer.from('{"a":1}'))).toEqual(a);
  expect((await store.readBlob(a.digest)).toString()).toBe('{"a":1}');
});

test('importFile renames into place; verify catches a wrong digest', async () => {
  const p = store.tempPath();
  expect(p.startsWith(ingestDir())).toBe(true);
  await writeFile(p, 'layer bytes');
  await store.importFile(p, sha256Digest('layer bytes'));
  expect(await store.has(sha256Digest('layer bytes'))).toBe(true);

  const q = store.tempPath();
  await writeFile(q, 'something else');
  await expect(store.importFile(q, sha256Digest('not it'), { verify: true })).rejects.toBeInstanceOf(DigestMismatchError);
  expect(await store.has(sha256Digest('not it'))).toBe(false);
  await expect(stat(q)).rejects.toMatchObject({ code: 'ENOENT' });

  const r = store.tempPath();
  await writeFile(r, 'verified');
  await store.importFile(r, sha256Digest('verified'), { verify: true });
  expect(await store.has(sha256Digest('verified'))).toBe(true);
});

test('cleanupIngest removes the partial files of dead processes at once, never a live one\'s', async () => {
  const mine = store.tempPath();
  expect(mine.slice(ingestDir().length + 1)).toMatch(new RegExp(`^in-${process.pid}-\\d+-[0-9a-f]+$`));
  // A process that has exited: its pid is free (and if reused, its start time differs).
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
  const deadFile = join(ingestDir(), `in-${dead}-12345-abcdef`);
  const reused = join(ingestDir(), `in-${process.pid}-1-abcdef`); // our pid, another start time
  // Files named by older versions (no pid) go by age only.
  const oldUnnamed = join(ingestDir(), '0b5c7e4e-1b7a-4f7e-9d51-3a4f0f6d1c2e');
  const freshUnnamed = join(ingestDir(), '7d1e2f3a-0000-4000-8000-000000000000');
  for (const p of [mine, deadFile, reused, oldUnnamed, freshUnnamed]) await writeFile(p, 'partial');
  const old = new Date(Date.now() - 2 * 60 * 60 * 1000);
  await utimes(oldUnnamed, old, old);
  await store.cleanupIngest(60 * 60 * 1000);
  const left = (await readdir(ingestDir())).sort();
  expect(left).toEqual([mine, freshUnnamed].map((p) => p.slice(ingestDir().length + 1)).sort());
});

test('discardOwnIngest() (an interrupted build) removes this process\'s partial downloads only', async () => {
  const data = Buffer.from('interrupted download '.repeat(50));
  const w = await store.begin({ digest: sha256Digest(data), size: data.byteLength });
  await w.write(data.subarray(0, 100));
  // Another live process's download (the parent's pid) is not ours to drop.
  const other = join(ingestDir(), `in-${process.ppid}-1-abcdef`);
  await writeFile(other, 'partial');
  await store.discardOwnIngest();
  expect(await readdir(ingestDir())).toEqual([other.slice(ingestDir().length + 1)]);
  await w.abort();
  await rm(other);
});

test('lock(): one holder per digest across the store; the next one gets it on release', async () => {
  const digest = sha256Digest('x');
  const first = await store.lock(digest, { what: 'downloading x' });
  const waits: string[] = [];
  await expect(store.lock(digest, { what: 'downloading x again', timeoutMs: 150, onWait: (h) => waits.push(h) })).rejects.toMatchObject({
    code: 'E_LOCK_TIMEOUT',
    message: expect.stringContaining(`pid ${process.pid}: downloading x`),
  });
  expect(waits).toEqual([`pid ${process.pid}: downloading x`]);
  const other = await store.lock(sha256Digest('y'), { what: 'y', timeoutMs: 150 }); // another digest: free
  const pending = store.lock(digest, { what: 'second', timeoutMs: 5000 });
  await first.release();
  await (await pending).release();
  await other.release();
});

test('cleanupIngest reports what it removed; a dry run removes nothing; a live writer keeps its file', async () => {
  // Partial files of a writer that is gone (pid 2^22 + 1 never runs: above pid_max's limit).
  await writeFile(join(ingestDir(), 'in-4194305-1-abc'), 'abc');
  await writeFile(join(ingestDir(), 'in-4194305-1-def'), 'defgh');
  await writeFile(store.tempPath(), 'mine');
  expect(await store.cleanupIngest(0, { dryRun: true })).toEqual({ count: 2, bytes: 8 });
  expect(await readdir(ingestDir())).toHaveLength(3);
  expect(await store.cleanupIngest(0)).toEqual({ count: 2, bytes: 8 });
  expect(await readdir(ingestDir())).toHaveLength(1);
});

test('list() gives every blob with its size; delete() removes one, once', async () => {
  const a = await store.writeBlob('first');
  const b = await store.writeBlob('second blob');
  await writeFile(join(blobsDir(), 'not-a-digest'), 'x');
  const listed = (await store.list()).sort((x, y) => (x.digest < y.digest ? -1 : 1));
  expect(listed).toEqual([a, b].sort((x, y) => (x.digest < y.digest ? -1 : 1)));
  expect(await store.delete(a.digest)).toBe(true);
  expect(await store.has(a.digest)).toBe(false);
  expect(await store.delete(a.digest)).toBe(false);
  expect((await store.list()).map((x) => x.digest)).toEqual([b.digest]);
});

test('missing blobs and invalid digests give typed errors', async () => {
  await expect(store.readBlob(sha256Digest('nope'))).rejects.toMatchObject({ code: 'E_BLOB_UNKNOWN' });
  await expect(store.size(sha256Digest('nope'))).rejects.toMatchObject({ code: 'E_BLOB_UNKNOWN' });
  expect(() => store.blobPath('sha256:../../etc/passwd')).toThrow(/invalid digest/);
  await expect(store.ingest(chunks(Buffer.from('x')), { digest: 'md5:abc' })).rejects.toThrow(/unsupported algorithm/);
});

test('begin(): a partial blob written in pieces, reset to start over, verified on commit', async () => {
  const data = Buffer.from('resumable download '.repeat(50));
  const digest = sha256Digest(data);
  const w = await store.begin({ digest, size: data.byteLength });
  await w.write(data.subarray(0, 100));
  expect(w.offset).toBe(100);
  // Wrong bytes, then a reset: the file and the hash start again from zero.
  await w.write(Buffer.alloc(50, 0x78));
  await expect(w.commit()).rejects.toThrow(/size mismatch/);
  await w.reset();
  expect(w.offset).toBe(0);
  expect((await stat(w.path)).size).toBe(0);
  await w.write(data.subarray(0, 400));
  await w.write(data.subarray(400));
  await w.commit();
  await w.abort(); // no-op after commit
  expect((await store.readBlob(digest)).equals(data)).toBe(true);
  expect(await readdir(ingestDir())).toEqual([]);
});

test('begin(): a digest mismatch on commit keeps the writer open until abort() removes it', async () => {
  const w = await store.begin({ digest: sha256Digest('expected'), size: 5 });
  await w.write(Buffer.from('wrong'));
  await expect(w.commit()).rejects.toBeInstanceOf(DigestMismatchError);
  expect(await readdir(ingestDir())).toHaveLength(1);
  await w.abort();
  expect(await readdir(ingestDir())).toEqual([]);
  expect(await readdir(blobsDir())).toEqual([]);
  await expect(w.write(Buffer.from('x'))).rejects.toThrow(/aborted/);
});

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of it) out.push(c);
  return Buffer.concat(out);
}

test('follow(): a reader gets exactly the written bytes as they reach the file, and ends once the blob is verified', async () => {
  const data = Buffer.alloc(3 * 1024 * 1024 + 12345);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
  const digest = sha256Digest(data);
  const w = await store.begin({ digest, size: data.byteLength });
  const reading = collect(w.follow());
  let seenEarly = false;
  const follower = w.follow();
  for (let i = 0; i < data.length; i += 64 * 1024) {
    await w.write(data.subarray(i, i + 64 * 1024));
    // The second reader takes one chunk as soon as the first MiB is on disk, before the download ends.
    if (!seenEarly && w.offset > 1024 * 1024) {
      const first = await follower.next();
      expect(first.done).toBe(false);
      expect((first.value as Buffer).equals(data.subarray(0, (first.value as Buffer).length))).toBe(true);
      seenEarly = true;
      await follower.return(undefined);
    }
  }
  expect(w.finished).toBe(false);
  await w.commit();
  expect(w.finished).toBe(true);
  expect((await reading).equals(data)).toBe(true);
  expect(seenEarly).toBe(true);
});

test('follow(): a download that starts over or is abandoned interrupts its readers', async () => {
  const data = Buffer.alloc(2 * 1024 * 1024 + 5, 0x61);
  const digest = sha256Digest(data);
  const w = await store.begin({ digest, size: data.byteLength });
  const first = collect(w.follow());
  await w.write(data.subarray(0, 1536 * 1024));
  await w.reset();
  await expect(first).rejects.toMatchObject({ code: 'E_INGEST_INTERRUPTED' });
  const second = collect(w.follow());
  await w.write(data.subarray(0, 1100 * 1024));
  await w.abort();
  await expect(second).rejects.toMatchObject({ code: 'E_INGEST_INTERRUPTED' });
  expect(await readdir(ingestDir())).toEqual([]);
});

test('follow(): a reader that comes after the commit is told to read the store', async () => {
  const data = Buffer.from('small blob');
  const w = await store.begin({ digest: sha256Digest(data), size: data.byteLength });
  await w.write(data);
  await w.commit();
  await expect(collect(w.follow())).rejects.toMatchObject({ code: 'E_INGEST_INTERRUPTED' });
});
