import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { CacheMounts } from '../../src/engine/cache-mounts.js';
import { lockFile } from '../../src/engine/file-lock.js';
import type { CacheMountSpec } from '../../src/engine/mount-spec.js';

let base: string;
let caches: CacheMounts;

const spec = (over: Partial<CacheMountSpec> = {}): CacheMountSpec => ({
  type: 'cache', target: '/cache', id: 'the-id', sharing: 'shared', source: '/', mode: 0o755, uid: 0, gid: 0, readonly: false, ...over,
});

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'stowage-cachemounts-'));
  await mkdir(join(base, 'scratch'));
  caches = new CacheMounts(join(base, 'cache-mounts'), join(base, 'scratch'));
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('CacheMounts', () => {
  test('one directory per id, kept across leases; mode and owner set when it is made', async () => {
    const a = await caches.acquire(spec({ mode: 0o700, uid: 12, gid: 34 }), {});
    await writeFile(join(a.path, 'kept'), 'yes');
    await a.release();
    const st = await stat(a.path);
    expect(st.mode & 0o7777).toBe(0o700);
    expect([st.uid, st.gid]).toEqual([12, 34]);
    const b = await caches.acquire(spec({ mode: 0o755 }), {});
    expect(b.path).toBe(a.path);
    expect(await readFile(join(b.path, 'kept'), 'utf8')).toBe('yes');
    expect((await stat(b.path)).mode & 0o7777).toBe(0o700); // not changed for an existing cache
    await b.release();
    const other = await caches.acquire(spec({ id: 'other' }), {});
    expect(other.path).not.toBe(a.path);
    expect(await readdir(other.path)).toEqual([]);
    await other.release();
    expect(await readFile(join(a.path, '..', 'id'), 'utf8')).toBe('the-id');
  });

  test('a new cache is seeded from `from`', async () => {
    const seed = join(base, 'seed');
    await mkdir(join(seed, 'sub'), { recursive: true });
    await writeFile(join(seed, 'sub', 'f'), 'seeded');
    const lease = await caches.acquire(spec({ id: 'seeded' }), { seed: async () => seed });
    expect(await readFile(join(lease.path, 'sub', 'f'), 'utf8')).toBe('seeded');
    await lease.release();
  });

  test('locked: the second lease waits until the first is released', async () => {
    const first = await caches.acquire(spec({ sharing: 'locked' }), {});
    let waited = false;
    let secondGranted = false;
    const second = caches.acquire(spec({ sharing: 'locked' }), { onWait: () => { waited = true; } }).then((l) => {
      secondGranted = true;
      return l;
    });
    await sleep(600);
    expect(secondGranted).toBe(false);
    expect(waited).toBe(true);
    await first.release();
    const lease = await second;
    expect(lease.path).toBe(first.path);
    await lease.release();
  });

  test('private: a busy cache gives a fresh empty directory, dropped on release', async () => {
    const first = await caches.acquire(spec({ sharing: 'private' }), {});
    await writeFile(join(first.path, 'mine'), '1');
    const second = await caches.acquire(spec({ sharing: 'private' }), {});
    expect(second.path).not.toBe(first.path);
    expect(await readdir(second.path)).toEqual([]);
    await second.release();
    await expect(stat(second.path)).rejects.toThrow(/ENOENT/);
    await first.release();
    const third = await caches.acquire(spec({ sharing: 'private' }), {});
    expect(third.path).toBe(first.path);
    await third.release();
  });
});

describe('lockFile', () => {
  test('a lock held by a process that is killed is free again (no stale lock)', async () => {
    const path = join(base, 'lock');
    // Another holder: a flock process we kill with SIGKILL, as a crashed build would be.
    const holder = spawn('flock', ['-x', path, 'sh', '-c', 'echo held; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    expect(await lockFile(path, { wait: false })).toBeUndefined();
    process.kill(-holder.pid!, 'SIGKILL');
    await new Promise((r) => holder.once('close', r));
    const lock = await lockFile(path, { wait: false });
    expect(lock).toBeDefined();
    await lock!.release();
  });
});
