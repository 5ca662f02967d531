import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContentStore } from '@stowage/registry-client';
import { Snapshotter } from '@stowage/snapshotter';
import { processStartTime } from '@stowage/registry-client';
import { BuildCache } from '../../src/engine/cache.js';
import { ImageStore, type ImageRecord } from '../../src/engine/images.js';
import { acquireLease, acquirePruneLock, LEASES_DIR, PRUNE_LOCK } from '../../src/engine/leases.js';
import { prune } from '../../src/engine/prune.js';

const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const T = 60_000;

let root: string;
let store: ContentStore;
const desc = (digest: string, size = 10) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size });

/** A pid that is certainly not running: a child that has exited. */
async function deadPid(): Promise<number> {
  const c = spawn('true');
  await new Promise((r) => c.on('exit', r));
  return c.pid!;
}

function sleeper(seconds: number): { child: ChildProcess; done: Promise<void> } {
  const child = spawn('sleep', [String(seconds)]);
  return { child, done: new Promise((r) => child.on('exit', () => r())) };
}

async function commitTree(snap: Snapshotter, name: string, parent: string | undefined, file: string, bytes: number): Promise<void> {
  const key = `k-${name}`;
  const dir = await snap.prepare(key, parent);
  await writeFile(join(dir, file), Buffer.alloc(bytes, 1));
  await snap.commit(name, key);
}

/**
 * A root as builds leave it: base image chain `base`, two cache records on it
 * (a → snapshot a, layer la; b → snapshot b, layer lb), a dead record, an
 * orphan snapshot, garbage blobs, a dead build's scratch dir, a partial download.
 */
async function populate(): Promise<{ blobs: Record<string, string> }> {
  store = await ContentStore.open(join(root, 'content'));
  const blob = async (text: string) => (await store.writeBlob(text)).digest;
  const blobs = {
    base: await blob('base layer'), cfg: await blob('base config'), man: await blob('base manifest'), idx: await blob('base index'),
    la: await blob('a'.repeat(50_000)), lb: await blob('b'.repeat(20_000)), exported: await blob('exported manifest'), stray: await blob('stray'),
  };
  const snap = await Snapshotter.open(join(root, 'snapshots'), { backend: 'native' });
  await commitTree(snap, 'base', undefined, 'base', 1000);
  await commitTree(snap, 'a', 'base', 'a', 300_000);
  await commitTree(snap, 'b', 'base', 'b', 100_000);
  await commitTree(snap, 'orphan', 'base', 'o', 10_000);
  await snap.close();
  const cache = new BuildCache(join(root, 'cache'));
  await cache.put('ka', { snapshot: 'a', layer: { descriptor: desc(blobs.la), diffID: sha('da') }, created: 'x' });
  await cache.put('kb', { snapshot: 'b', layer: { descriptor: desc(blobs.lb), diffID: sha('db') }, created: 'x' });
  await cache.put('kempty', { snapshot: null, created: 'x' });
  await cache.put('kdead', { snapshot: 'gone', layer: { descriptor: desc(blobs.la), diffID: sha('da') }, created: 'x' });
  const image: ImageRecord = {
    version: 1, name: 'docker.io/library/base:1', platform: 'linux/amd64', digest: blobs.idx, index: { digest: blobs.idx }, manifest: { digest: blobs.man },
    config: desc(blobs.cfg), layers: [desc(blobs.base)], diffIDs: [sha('dbase')], chainId: 'base', source: 'build', pulled: 'x',
  };
  await new ImageStore(join(root, 'images')).put(image);
  const scratch = join(root, 'tmp', `build-${await deadPid()}-abc`, 'runc');
  await mkdir(scratch, { recursive: true });
  await writeFile(join(scratch, 'state'), 'x'.repeat(5000));
  await writeFile(join(root, 'content', 'ingest', 'partial'), 'p'.repeat(3000));
  return { blobs };
}

const snapshots = async () => (await (await Snapshotter.open(join(root, 'snapshots'))).list()).map((s) => s.name).sort();
const blobList = async () => (await store.list()).map((b) => b.digest).sort();
const cacheKeys = async () => (await readdir(join(root, 'cache'))).filter((n) => n.endsWith('.json')).sort();

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-prune-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('prune', () => {
  test('default: dead records, unreachable snapshots and blobs, and leftovers of dead processes go; the rest stays', async () => {
    const { blobs } = await populate();
    const r = await prune({ root });
    expect(await cacheKeys()).toEqual(['ka.json', 'kb.json', 'kempty.json']);
    expect(await snapshots()).toEqual(['a', 'b', 'base']);
    expect(await blobList()).toEqual([blobs.base, blobs.cfg, blobs.man, blobs.idx, blobs.la, blobs.lb].sort());
    expect(await readdir(join(root, 'tmp'))).toEqual([]);
    expect(await readdir(join(root, 'content', 'ingest'))).toEqual([]);
    expect(r).toMatchObject({ dryRun: false, cacheRecords: 1, imageRecords: 0, snapshots: { count: 1 }, blobs: { count: 2, bytes: 'exported manifest'.length + 'stray'.length }, temporary: { count: 2 } });
    expect(r.snapshots.bytes).toBeGreaterThanOrEqual(10_000);
    expect(r.temporary.bytes).toBeGreaterThanOrEqual(8000);
    expect(r.reclaimed).toBe(r.snapshots.bytes + r.blobs.bytes + r.temporary.bytes);
    expect(r.remaining).toBeGreaterThan(400_000);
    // Nothing left to do the second time.
    expect(await prune({ root })).toMatchObject({ cacheRecords: 0, snapshots: { count: 0 }, blobs: { count: 0 }, temporary: { count: 0 }, reclaimed: 0, remaining: r.remaining });
  }, T);

  test('--dry-run reports the same and removes nothing', async () => {
    await populate();
    const before = { s: await snapshots(), b: await blobList(), c: await cacheKeys() };
    const dry = await prune({ root, dryRun: true });
    expect({ s: await snapshots(), b: await blobList(), c: await cacheKeys() }).toEqual(before);
    expect(existsSync(join(root, 'content', 'ingest', 'partial'))).toBe(true);
    const real = await prune({ root });
    expect({ ...dry, dryRun: false }).toEqual(real);
  }, T);

  test('--keep-storage drops least recently used records first; a parent of a kept snapshot stays', async () => {
    const { blobs } = await populate();
    const old = new Date(Date.now() - 3600_000);
    await utimes(join(root, 'cache', 'ka.json'), old, old); // a: least recently used
    const all = await prune({ root, dryRun: true });
    // Room for all but a's 300 kB snapshot and 50 kB layer.
    const r = await prune({ root, keepStorage: all.remaining - 200_000 });
    expect(await cacheKeys()).toEqual(['kb.json', 'kempty.json']);
    expect(await snapshots()).toEqual(['b', 'base']);
    expect(await blobList()).not.toContain(blobs.la);
    expect(await blobList()).toContain(blobs.lb);
    expect(r.remaining).toBeLessThanOrEqual(all.remaining - 200_000);
    // Nothing is needed less than everything: keep-storage 0 empties it all, parents last.
    const zero = await prune({ root, keepStorage: 0 });
    expect(zero.remaining).toBe(0);
    expect(await snapshots()).toEqual([]);
  }, T);

  test('--all removes every record, snapshot and blob', async () => {
    await populate();
    const r = await prune({ root, all: true });
    expect(await cacheKeys()).toEqual([]);
    expect(await readdir(join(root, 'images'))).toEqual([]);
    expect(await snapshots()).toEqual([]);
    expect(await blobList()).toEqual([]);
    expect(r).toMatchObject({ cacheRecords: 4, imageRecords: 1, snapshots: { count: 4 }, blobs: { count: 8 }, remaining: 0 });
  }, T);

  test('a root that does not exist has nothing to prune', async () => {
    expect(await prune({ root: join(root, 'nope') })).toMatchObject({ reclaimed: 0, cacheRecords: 0 });
    expect(existsSync(join(root, 'nope'))).toBe(false);
  });
});

describe('leases and the prune lock', () => {
  test('prune waits for a live lease and ignores (and removes) dead ones', async () => {
    await populate();
    const s = sleeper(1.5);
    await mkdir(join(root, LEASES_DIR), { recursive: true });
    await writeFile(join(root, LEASES_DIR, String(s.child.pid)), `${s.child.pid} ${processStartTime(s.child.pid!)}\n`);
    const dead = await deadPid();
    await writeFile(join(root, LEASES_DIR, String(dead)), `${dead} 1\n`);
    const log: string[] = [];
    const started = Date.now();
    const r = await prune({ root, log: (line) => log.push(line) });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(log).toEqual([`waiting for a running build to finish (pid ${s.child.pid})`]);
    expect(r.blobs.count).toBe(2);
    await s.done;
    expect(existsSync(join(root, LEASES_DIR, String(dead)))).toBe(false);
    expect(existsSync(join(root, PRUNE_LOCK))).toBe(false);
  }, T);

  test('a lease whose pid was reused by another process (other start time) counts as dead', async () => {
    await mkdir(join(root, LEASES_DIR), { recursive: true });
    await writeFile(join(root, LEASES_DIR, String(process.ppid)), `${process.ppid} 1\n`);
    const started = Date.now();
    const release = await acquirePruneLock(root);
    await release();
    expect(Date.now() - started).toBeLessThan(1000);
  });

  test('a build waits while a live prune holds the lock; a second prune fails with E_PRUNE_RUNNING', async () => {
    const s = sleeper(1.5);
    await writeFile(join(root, PRUNE_LOCK), `${s.child.pid} ${processStartTime(s.child.pid!)}\n`);
    await expect(acquirePruneLock(root)).rejects.toMatchObject({ code: 'E_PRUNE_RUNNING', message: expect.stringContaining(`pid ${s.child.pid}`) });
    const told: number[] = [];
    const started = Date.now();
    const release = await acquireLease(root, (pid) => told.push(pid));
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(told).toEqual([s.child.pid]);
    expect(existsSync(join(root, LEASES_DIR, String(process.pid)))).toBe(true);
    await release();
    expect(existsSync(join(root, LEASES_DIR, String(process.pid)))).toBe(false);
    await s.done;
    // The dead prune's lock is taken over.
    const r = await acquirePruneLock(root);
    await r();
  }, T);

  test('taking a lease removes those of killed builds, and keeps a live one and a reused pid\'s', async () => {
    await mkdir(join(root, LEASES_DIR), { recursive: true });
    const dead = await deadPid();
    const s = sleeper(30);
    await writeFile(join(root, LEASES_DIR, String(dead)), `${dead} 1\n`);
    await writeFile(join(root, LEASES_DIR, String(s.child.pid)), `${s.child.pid} ${processStartTime(s.child.pid!)}\n`);
    // Reused pid (other start time): may be a new build about to write its lease under that name.
    await writeFile(join(root, LEASES_DIR, String(process.ppid)), `${process.ppid} 1\n`);
    const release = await acquireLease(root);
    expect((await readdir(join(root, LEASES_DIR))).sort()).toEqual([String(process.pid), String(process.ppid), String(s.child.pid)].sort());
    await release();
    s.child.kill();
    await s.done;
  }, T);

  test('while this process holds a lease, a prune in another process waits for it', async () => {
    const release = await acquireLease(root);
    const script = `import('${join(process.cwd(), 'packages/builder/dist/src/engine/leases.js')}').then(async (m) => { const t = Date.now(); const r = await m.acquirePruneLock(process.argv[1], (p) => console.log('waiting', p.join(','))); console.log('got', Date.now() - t); await r(); })`;
    const child = spawn(process.execPath, ['-e', script, root], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => setTimeout(r, 1000));
    expect(out).toBe(`waiting ${process.pid}\n`);
    await release();
    await new Promise((r) => child.on('exit', r));
    expect(out).toMatch(/^waiting \d+\ngot \d+\n$/);
  }, T);
});

test('a cache hit marks its record as used (mtime), for --keep-storage', async () => {
  const cache = new BuildCache(join(root, 'cache'));
  await cache.put('k', { snapshot: null, created: 'x' });
  const old = new Date(Date.now() - 3600_000);
  await utimes(join(root, 'cache', 'k.json'), old, old);
  await cache.get('k');
  expect(Date.now() - (await stat(join(root, 'cache', 'k.json'))).mtimeMs).toBeLessThan(60_000);
});
