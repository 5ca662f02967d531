import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OwnerView, emptyOwnerRecords, mergeOwnerRecords, readOwnerRecords, writeOwnerRecords, type OwnerRecords } from '../src/owners.js';

const rec = (set: Record<string, [number, number]>, removed: string[] = []): OwnerRecords => ({
  set: new Map(Object.entries(set).map(([p, [uid, gid]]) => [p, { uid, gid }])),
  removed,
});

describe('recorded owners along a chain', () => {
  const base = rec({ home: [0, 0], 'home/app': [1000, 1000], 'home/app/.profile': [1000, 1000], srv: [33, 33], 'srv/www/index.html': [33, 33] });

  test('the nearest snapshot that wrote a path decides', () => {
    const view = new OwnerView([rec({ 'home/app/.profile': [0, 0] }), base]);
    expect(view.lookup('home/app/.profile')).toEqual({ uid: 0, gid: 0 });
    expect(view.lookup('home/app')).toEqual({ uid: 1000, gid: 1000 });
    expect(view.lookup('nowhere')).toBeUndefined();
  });

  test('a deletion hides the path and everything below it from deeper snapshots', () => {
    const view = new OwnerView([rec({}, ['srv']), base]);
    expect(view.lookup('srv')).toBeUndefined();
    expect(view.lookup('srv/www/index.html')).toBeUndefined();
    expect(view.lookup('home/app')).toEqual({ uid: 1000, gid: 1000 });
  });

  test('an opaque directory hides what is below it, not the directory', () => {
    const view = new OwnerView([rec({}, ['home/']), base]);
    expect(view.lookup('home')).toEqual({ uid: 0, gid: 0 });
    expect(view.lookup('home/app')).toBeUndefined();
    expect(new OwnerView([rec({}, ['/']), base]).lookup('srv')).toBeUndefined();
  });

  test('a path written again after a deletion in the same snapshot keeps its new owner', () => {
    const view = new OwnerView([rec({ 'srv/new': [5, 5] }, ['srv/']), base]);
    expect(view.lookup('srv/new')).toEqual({ uid: 5, gid: 5 });
    expect(view.lookup('srv/www/index.html')).toBeUndefined();
  });

  test('merging applies deletions to earlier records, then the new owners', () => {
    const merged = mergeOwnerRecords(base, rec({ 'srv/www': [7, 7] }, ['srv']));
    expect([...merged.set.keys()].sort()).toEqual(['home', 'home/app', 'home/app/.profile', 'srv/www']);
    expect(new OwnerView([emptyOwnerRecords()]).empty).toBe(true);
  });

  test('records survive a write and read', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-owners-'));
    try {
      await writeOwnerRecords(dir, base);
      expect(await readOwnerRecords(dir)).toEqual(base);
      expect(await readOwnerRecords(join(dir, 'missing'))).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
