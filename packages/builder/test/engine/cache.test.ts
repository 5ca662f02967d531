import { mkdtemp, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuildCache, contextDigest } from '../../src/engine/cache.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-cache-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('keys ignore object key order and undefined fields, but not values or array order', () => {
  const cache = new BuildCache(dir, true);
  expect(cache.key({ a: 1, b: [1, 2], c: undefined })).toBe(cache.key({ b: [1, 2], a: 1 }));
  expect(cache.key({ a: 1, b: [1, 2] })).not.toBe(cache.key({ a: 1, b: [2, 1] }));
  expect(cache.key({ a: '1' })).not.toBe(cache.key({ a: 1 }));
});

test('records round-trip; a disabled cache never hits', async () => {
  const cache = new BuildCache(join(dir, 'cache'), true);
  const record = { snapshot: 'sha256:abc', created: '2026-01-01T00:00:00.000Z' };
  await cache.put('k', record);
  expect(await cache.get('k')).toEqual(record);
  expect(await cache.get('missing')).toBeUndefined();
  expect(await new BuildCache(join(dir, 'cache'), false).get('k')).toBeUndefined();
});

test('the context digest changes with content, mode, names and link targets, and only then', async () => {
  await writeFile(join(dir, 'a'), 'one');
  await symlink('a', join(dir, 'l'));
  const d1 = await contextDigest(dir);
  expect(await contextDigest(dir)).toBe(d1);
  await writeFile(join(dir, 'a'), 'two');
  const d2 = await contextDigest(dir);
  expect(d2).not.toBe(d1);
  await chmod(join(dir, 'a'), 0o600);
  const d3 = await contextDigest(dir);
  expect(d3).not.toBe(d2);
  await rm(join(dir, 'l'));
  await symlink('elsewhere', join(dir, 'l'));
  expect(await contextDigest(dir)).not.toBe(d3);
});
