import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReadStream } from 'node:fs';
import { applyLayer, Snapshotter, SnapshotInUseError, SnapshotNotFoundError, type SnapshotterBackend } from '../src/index.js';
import { describeTree, listLayer, makeTar, stream } from './fixtures.js';

const isRoot = process.getuid?.() === 0;

describe.each<SnapshotterBackend>(['overlay', 'native'])('Snapshotter (%s)', (backend) => {
  let dir: string;
  let snap: Snapshotter;
  const work = (): string => mkdtempSync(join(dir, 'w-'));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `stowage-snap-${backend}-`));
    if (backend === 'overlay' && !isRoot) console.warn('overlay tests need root (or a user namespace)');
    snap = await Snapshotter.open(join(dir, 'snapshots'), { backend });
  });
  afterAll(async () => {
    await snap.close();
    // never rm -rf across a live mount
    const mounted = readFileSync('/proc/self/mountinfo', 'utf8').includes(dir);
    expect(mounted).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });

  test('backend is as requested', () => {
    expect(snap.backend).toBe(backend);
  });

  test('chain of 3: diff contents, no-change diff, round trip via applyLayer, view', async () => {
    // 1: base from a layer
    const p1 = await snap.prepare('k1');
    await applyLayer(
      p1,
      stream(
        makeTar([
          { path: 'etc/', type: 'Directory' },
          { path: 'etc/keep', body: 'keep' },
          { path: 'etc/mod', body: 'v1' },
          { path: 'etc/del', body: 'bye' },
          { path: 'cache/', type: 'Directory' },
          { path: 'cache/a', body: 'a' },
          { path: 'cache/b/', type: 'Directory' },
          { path: 'cache/b/c', body: 'c' },
          { path: 'swap', body: 'file' },
        ]),
      ),
    );
    const l1 = join(work(), 'l1.tgz');
    const d1 = await snap.diff('k1', l1);
    expect(d1.empty).toBe(false);
    const names1 = (await listLayer(l1)).map((e) => e.path);
    expect(names1).toEqual(['cache/', 'cache/a', 'cache/b/', 'cache/b/c', 'etc/', 'etc/del', 'etc/keep', 'etc/mod', 'swap']);
    await snap.commit('sha256:one', 'k1');
    expect(await snap.exists('sha256:one')).toBe(true);

    // 2: modify, delete, add, opaque dir, file→dir, hardlink
    const p2 = await snap.prepare('k2', 'sha256:one');
    writeFileSync(join(p2, 'etc/mod'), 'v2-longer');
    rmSync(join(p2, 'etc/del'));
    writeFileSync(join(p2, 'etc/new'), 'new');
    rmSync(join(p2, 'cache'), { recursive: true });
    mkdirSync(join(p2, 'cache'));
    writeFileSync(join(p2, 'cache/fresh'), 'fresh');
    rmSync(join(p2, 'swap'));
    mkdirSync(join(p2, 'swap'));
    writeFileSync(join(p2, 'swap/in'), 'in');
    spawnSync('ln', [join(p2, 'etc/new'), join(p2, 'etc/new-link')]);
    const l2 = join(work(), 'l2.tgz');
    const d2 = await snap.diff('k2', l2);
    const e2 = await listLayer(l2);
    const byPath = new Map(e2.map((e) => [e.path, e]));
    expect(byPath.get('etc/mod')?.size).toBe(9);
    expect(byPath.has('etc/.wh.del')).toBe(true);
    expect(byPath.has('etc/new')).toBe(true);
    expect(byPath.get('etc/new-link')).toMatchObject({ type: 'Link', linkpath: 'etc/new' });
    expect(byPath.has('etc/keep')).toBe(false);
    expect(byPath.get('swap/')?.type).toBe('Directory');
    if (backend === 'overlay') expect(byPath.has('cache/.wh..wh..opq')).toBe(true);
    else expect(byPath.has('cache/.wh.a') && byPath.has('cache/.wh.b')).toBe(true);

    // Same tree → same bytes, twice.
    const again = await snap.diff('k2', join(work(), 'l2b.tgz'));
    expect(again.digest).toBe(d2.digest);
    expect(again.diffID).toBe(d2.diffID);
    const c1 = join(work(), 'c1.tgz');
    const clamped1 = await snap.diff('k2', c1, { sourceDateEpoch: 100 });
    expect((await listLayer(c1)).every((e) => (e.mtime?.getTime() ?? 0) <= 100_000)).toBe(true);
    expect(clamped1.digest).not.toBe(d2.digest);

    await snap.commit('sha256:two', 'k2');

    // 3: no change
    await snap.prepare('k3', 'sha256:two');
    const l3 = join(work(), 'l3.tgz');
    const d3 = await snap.diff('k3', l3);
    expect(d3.empty).toBe(true);
    expect(await listLayer(l3)).toEqual([]);
    await snap.commit('sha256:three', 'k3');

    // Full view of the top equals applying l1 then l2 to an empty dir.
    const v = await snap.view('sha256:three');
    const replay = join(work(), 'replay');
    mkdirSync(replay);
    await applyLayer(replay, createReadStream(l1));
    await applyLayer(replay, createReadStream(l2));
    const viewTree = describeTree(v);
    expect(viewTree).toEqual(describeTree(replay));
    expect(viewTree['etc/mod']).toMatch(/v2-longer$/);
    expect(viewTree['cache/fresh']).toBeDefined();
    expect(viewTree['cache/a']).toBeUndefined();
    expect(viewTree['etc/del']).toBeUndefined();
    await snap.release(v);
  });

  test('applying a layer with whiteouts onto a prepared parent, then commit', async () => {
    const p = await snap.prepare('base');
    await applyLayer(p, stream(makeTar([{ path: 'd/x', body: 'x' }, { path: 'd/y', body: 'y' }, { path: 'z', body: 'z' }])));
    await snap.commit('base', 'base');
    const q = await snap.prepare('top', 'base');
    await applyLayer(q, stream(makeTar([{ path: 'd/.wh..wh..opq' }, { path: 'd/n', body: 'n' }, { path: '.wh.z' }])));
    await snap.commit('top', 'top');
    const v = await snap.view('top');
    expect(describeTree(v)).toEqual({ d: 'dir 755 0:0', 'd/n': 'file 644 0:0 n' });
    await snap.release(v);
  });

  test('PAX for long names and large ids survives diff → apply', async () => {
    const p = await snap.prepare('pax');
    const long = `${'n'.repeat(90)}/${'m'.repeat(120)}`;
    mkdirSync(join(p, 'n'.repeat(90)));
    writeFileSync(join(p, long), 'deep');
    spawnSync('chown', ['3000000:3000001', join(p, long)]);
    const l = join(work(), 'pax.tgz');
    await snap.diff('pax', l);
    const e = (await listLayer(l)).find((x) => x.path === long);
    expect(e).toMatchObject({ uid: 3000000, gid: 3000001, size: 4 });
    const out = join(work(), 'out');
    mkdirSync(out);
    await applyLayer(out, createReadStream(l));
    expect(describeTree(out)[long]).toBe('file 644 3000000:3000001 deep');
    await snap.release('pax');
  });

  test('commit race: the first committed snapshot wins', async () => {
    const a = await snap.prepare('ra');
    writeFileSync(join(a, 'who'), 'a');
    const b = await snap.prepare('rb');
    writeFileSync(join(b, 'who'), 'b');
    await snap.commit('same', 'ra');
    await snap.commit('same', 'rb');
    const v = await snap.view('same');
    expect(readFileSync(join(v, 'who'), 'utf8')).toBe('a');
    await snap.release(v);
    await expect(snap.release('rb')).rejects.toBeInstanceOf(SnapshotNotFoundError);
  });

  test('prepare of an existing key fails; release discards; unknown parent is not found', async () => {
    await snap.prepare('dup');
    await expect(snap.prepare('dup')).rejects.toMatchObject({ code: 'E_SNAPSHOT_EXISTS' });
    await snap.release('dup');
    await expect(snap.prepare('x', 'no-such')).rejects.toMatchObject({ code: 'E_SNAPSHOT_NOT_FOUND' });
  });

  test('remove; overlay refuses to remove a parent', async () => {
    await snap.prepare('rm1');
    await snap.commit('rm-parent', 'rm1');
    await snap.prepare('rm2', 'rm-parent');
    await snap.commit('rm-child', 'rm2');
    if (backend === 'overlay') await expect(snap.remove('rm-parent')).rejects.toBeInstanceOf(SnapshotInUseError);
    await snap.remove('rm-child');
    await snap.remove('rm-parent');
    expect(await snap.exists('rm-parent')).toBe(false);
    await expect(snap.remove('rm-parent')).rejects.toMatchObject({ code: 'E_SNAPSHOT_NOT_FOUND' });
  });

  test('discardActive() (an interrupted build) releases every active snapshot it prepared, mounted ones too; committed ones stay', async () => {
    const root = join(dir, 'snapshots');
    await snap.prepare('da-base');
    await snap.commit('da-parent', 'da-base');
    const before = readdirSync(join(root, 'active')).length;
    const child = await snap.prepare('da-child', 'da-parent');
    writeFileSync(join(child, 'f'), 'x');
    await snap.prepare('da-unpack');
    expect(readdirSync(join(root, 'active')).length).toBe(before + 2);
    await snap.discardActive();
    expect(readdirSync(join(root, 'active')).length).toBe(before);
    expect(readFileSync('/proc/self/mountinfo', 'utf8').includes(join(root, 'active'))).toBe(false);
    expect(await snap.exists('da-parent')).toBe(true);
    await snap.remove('da-parent');
  });

  test('open() removes leftovers of dead processes but not live ones', async () => {
    const root = join(dir, 'snapshots');
    const dead = join(root, 'active', 'deadbeef');
    mkdirSync(join(dead, 'fs'), { recursive: true });
    writeFileSync(join(dead, 'meta.json'), JSON.stringify({ kind: 'active', key: 'k', pid: 2 ** 22 + 7, pidStart: '1' }));
    mkdirSync(join(root, 'tmp', `commit-${2 ** 22 + 7}-abcdef`));
    const live = await snap.prepare('still-alive');
    const other = await Snapshotter.open(root, { backend });
    expect(existsSync(dead)).toBe(false);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    expect(existsSync(live)).toBe(true);
    await other.close();
    await snap.release('still-alive');
  });
});

test('auto backend picks overlay as root with attr tools, and records it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stowage-auto-'));
  try {
    const s = await Snapshotter.open(join(dir, 's'));
    expect(['overlay', 'native']).toContain(s.backend);
    expect(readFileSync(join(dir, 's', 'backend'), 'utf8').trim()).toBe(s.backend);
    await expect(Snapshotter.open(join(dir, 's'), { backend: s.backend === 'overlay' ? 'native' : 'overlay' })).rejects.toMatchObject({ code: 'E_SNAPSHOT' });
    await s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
