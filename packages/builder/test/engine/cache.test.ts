import { mkdir, mkdtemp, readdir, rm, symlink, writeFile, chmod, readFile, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuildCache, changedInputs } from '../../src/engine/cache.js';
import { indexContext, sourcePrefix } from '../../src/engine/context-index.js';
import { IgnoreMatcher } from '../../src/engine/dockerignore.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-cache-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('keys ignore object key order and undefined fields, but not values or array order', () => {
  const cache = new BuildCache(dir);
  expect(cache.key({ a: 1, b: [1, 2], c: undefined })).toBe(cache.key({ b: [1, 2], a: 1 }));
  expect(cache.key({ a: 1, b: [1, 2] })).not.toBe(cache.key({ a: 1, b: [2, 1] }));
  expect(cache.key({ a: '1' })).not.toBe(cache.key({ a: 1 }));
});

test('records round-trip, and a hit marks the record as recently used', async () => {
  const cache = new BuildCache(join(dir, 'cache'));
  const record = { snapshot: 'sha256:abc', created: '2026-01-01T00:00:00.000Z' };
  await cache.put('k', record);
  const file = join(dir, 'cache', 'k.json');
  await utimes(file, new Date(1000), new Date(1000));
  expect(await cache.get('k')).toEqual(record);
  expect((await stat(file)).mtimeMs).toBeGreaterThan(Date.now() - 60_000);
  expect(await cache.get('missing')).toBeUndefined();
});

test('step traces are found by instruction, or by position when the instruction changed', async () => {
  const cache = new BuildCache(join(dir, 'cache'));
  const id = { dockerfile: '/c/Dockerfile', stage: 'build', position: 2, platform: 'linux/amd64', createdBy: 'RUN make' };
  expect(await cache.lastTrace(id)).toBeUndefined();
  await cache.saveTrace(id, { createdBy: 'RUN make', parent: 'p', inputs: { env: ['A=1'] } });
  expect(await cache.lastTrace(id)).toMatchObject({ samePosition: false, trace: { parent: 'p' } });
  const edited = { ...id, createdBy: 'RUN make all' };
  expect(await cache.lastTrace(edited)).toMatchObject({ samePosition: true, trace: { createdBy: 'RUN make' } });
  expect(await cache.lastTrace({ ...id, stage: 'other' })).toBeUndefined();
});

test('changed inputs are named, environment variables one by one', () => {
  expect(changedInputs({ env: ['A=1', 'B=2'], user: '' }, { env: ['A=1', 'B=3', 'C=4'], user: '' })).toEqual(['env:B', 'env:C']);
  expect(changedInputs({ context: 'x', dest: '/a' }, { context: 'y', dest: '/a' })).toEqual(['context']);
  expect(changedInputs({ a: [1] }, { a: [1] })).toEqual([]);
});

test('source prefixes stop at the first wildcard and stay inside the context', () => {
  expect(sourcePrefix('src/app.c')).toBe('src/app.c');
  expect(sourcePrefix('./src/*.c')).toBe('src');
  expect(sourcePrefix('*.go')).toBe('');
  expect(sourcePrefix('../../etc')).toBe('etc');
  expect(sourcePrefix('.')).toBe('');
  expect(sourcePrefix('web/./assets/**/*.css')).toBe('web/assets');
});

describe('context index', () => {
  const ctx = () => join(dir, 'ctx');
  const idx = () => join(dir, 'index');
  beforeEach(async () => {
    await mkdir(join(ctx(), 'src'), { recursive: true });
    await mkdir(join(ctx(), 'docs'), { recursive: true });
    await writeFile(join(ctx(), 'src', 'app.c'), 'int main;');
    await writeFile(join(ctx(), 'src', 'util.c'), 'int util;');
    await writeFile(join(ctx(), 'docs', 'README'), 'read me');
    await writeFile(join(ctx(), 'secret.key'), 'k');
  });

  test('a digest covers only the paths a step reads, and .dockerignore removes paths', async () => {
    const ignore = new IgnoreMatcher(['*.key']);
    const a = await indexContext(ctx(), ignore, idx());
    expect(a.entries.has('secret.key')).toBe(false);
    await writeFile(join(ctx(), 'docs', 'README'), 'changed');
    await writeFile(join(ctx(), 'secret.key'), 'changed');
    const b = await indexContext(ctx(), ignore, idx());
    expect(b.digestFor(['src'])).toBe(a.digestFor(['src']));
    expect(b.digestFor(['docs'])).not.toBe(a.digestFor(['docs']));
    expect(b.digestFor([''])).not.toBe(a.digestFor(['']));
    await chmod(join(ctx(), 'src', 'util.c'), 0o600);
    const c = await indexContext(ctx(), ignore, idx());
    expect(c.digestFor(['src'])).not.toBe(b.digestFor(['src']));
    expect(c.digestFor(['src/app.c'])).toBe(b.digestFor(['src/app.c']));
  });

  test('describes what changed since the previous build', async () => {
    const ignore = new IgnoreMatcher([]);
    await indexContext(ctx(), ignore, idx());
    await writeFile(join(ctx(), 'src', 'app.c'), 'int main(void);');
    await writeFile(join(ctx(), 'src', 'new.c'), '');
    await rm(join(ctx(), 'src', 'util.c'));
    const next = await indexContext(ctx(), ignore, idx());
    expect(next.describeChange(['src'])).toBe('src/app.c changed, src/new.c added, src/util.c removed');
    expect(next.describeChange(['docs'])).toBeUndefined();
  });

  test('a path through a symlink counts the whole context; link targets are part of the digest', async () => {
    await symlink('src', join(ctx(), 'code'));
    const ignore = new IgnoreMatcher([]);
    const a = await indexContext(ctx(), ignore, idx());
    await writeFile(join(ctx(), 'docs', 'README'), 'other');
    const b = await indexContext(ctx(), ignore, idx());
    expect(b.digestFor(['code'])).not.toBe(a.digestFor(['code']));
    await rm(join(ctx(), 'code'));
    await symlink('docs', join(ctx(), 'code'));
    const c = await indexContext(ctx(), ignore, idx());
    expect(c.digestFor([''])).not.toBe(b.digestFor(['']));
  });

  test('unchanged files are not read again: their digest comes from the saved index', async () => {
    const ignore = new IgnoreMatcher([]);
    const first = await indexContext(ctx(), ignore, idx());
    const real = first.entries.get('src/app.c')!.digest;
    // Doctor the saved index: a reused digest shows that the file was not read.
    const [name] = await readdir(idx());
    const file = join(idx(), name!);
    await writeFile(file, (await readFile(file, 'utf8')).replace(real, 'f'.repeat(64)));
    expect((await indexContext(ctx(), ignore, idx())).entries.get('src/app.c')!.digest).toBe('f'.repeat(64));
    // A changed mtime (or size, inode, ctime) means the file is read again.
    await utimes(join(ctx(), 'src', 'app.c'), new Date(5000), new Date(5000));
    expect((await indexContext(ctx(), ignore, idx())).entries.get('src/app.c')!.digest).toBe(real);
  });

  test('a missing source path still shapes the digest', async () => {
    const index = await indexContext(ctx(), new IgnoreMatcher([]), idx());
    expect(index.digestFor(['nope'])).not.toBe(index.digestFor(['nope2']));
  });
});
