import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { ContentStore, MediaTypes, type Descriptor } from '@stowage/registry-client';
import { commitAll, prepareSmallFile, type PendingOutput } from '../../src/export/atomic.js';
import { prepareLocal } from '../../src/export/local.js';
import { applyImageLayers } from '../../src/export/rootfs.js';
import { prepareRootfsTar } from '../../src/export/tar-rootfs.js';

interface E {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link';
  body?: string;
  linkpath?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

/** A layer tar built header by header (owners, whiteouts, links exactly as given). */
function layer(entries: E[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? (e.path.endsWith('/') ? 'Directory' : 'File');
    const body = Buffer.from(e.body ?? '');
    const h = new tar.Header({
      path: e.path,
      type,
      mode: e.mode ?? (type === 'Directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      size: type === 'File' ? body.length : 0,
      mtime: new Date(1_700_000_000_000),
      ...(e.linkpath ? { linkpath: e.linkpath } : {}),
    });
    h.encode();
    parts.push(h.block!);
    if (type === 'File' && body.length > 0) parts.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

const LAYER1 = layer([
  { path: 'bin/' },
  { path: 'bin/x', body: '#!/bin/sh\n', mode: 0o755 },
  { path: 'bin/y', type: 'Link', linkpath: 'bin/x' },
  { path: 'bin/z', type: 'SymbolicLink', linkpath: 'x' },
  { path: 'etc/' },
  { path: 'etc/a', body: 'a' },
  { path: 'etc/b', body: 'b' },
  { path: 'home/', uid: 1000, gid: 1000 },
  { path: 'home/u', body: 'mine', uid: 1000, gid: 1001, mode: 0o600 },
  { path: 'var/' },
  { path: 'var/old', body: 'old' },
]);
const LAYER2 = layer([
  { path: 'etc/.wh.a' },
  { path: 'etc/c', body: 'c' },
  { path: 'var/.wh..wh..opq' },
  { path: 'var/new', body: 'new' },
]);

async function listTar(file: string): Promise<{ path: string; type: string; uid: number; gid: number; mode: number; linkpath?: string }[]> {
  const out: { path: string; type: string; uid: number; gid: number; mode: number; linkpath?: string }[] = [];
  await tar.t({ file, onReadEntry: (e) => out.push({ path: e.path, type: e.type, uid: e.uid ?? -1, gid: e.gid ?? -1, mode: (e.mode ?? 0) & 0o7777, ...(e.linkpath ? { linkpath: e.linkpath } : {}) }) });
  return out;
}

describe('root filesystem outputs', () => {
  let dir: string;
  let store: ContentStore;
  let layers: { descriptor: Descriptor }[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-rootfs-'));
    store = await ContentStore.open(join(dir, 'content'));
    const b1 = await store.writeBlob(gzipSync(LAYER1));
    const b2 = await store.writeBlob(LAYER2);
    layers = [{ descriptor: { mediaType: MediaTypes.OCI_LAYER_GZIP, ...b1 } }, { descriptor: { mediaType: 'application/vnd.oci.image.layer.v1.tar', ...b2 } }];
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('type=local: layers applied in order, whiteouts honoured and never written, nothing at DIR before commit', async () => {
    const dest = join(dir, 'rootfs');
    const out = await prepareLocal(store, layers, dest, true);
    await expect(lstat(dest)).rejects.toThrow(/ENOENT/);
    await out.commit();
    expect((await readdir(dest)).sort()).toEqual(['bin', 'etc', 'home', 'var']);
    expect((await readdir(join(dest, 'etc'))).sort()).toEqual(['b', 'c']);
    expect(await readdir(join(dest, 'var'))).toEqual(['new']);
    expect((await lstat(join(dest, 'bin/x'))).ino).toBe((await lstat(join(dest, 'bin/y'))).ino);
    expect(await readlink(join(dest, 'bin/z'))).toBe('x');
    expect((await lstat(dest)).mode & 0o777).toBe(0o755);
    // No temporaries left next to it.
    expect((await readdir(dir)).filter((n) => n.startsWith('.rootfs'))).toEqual([]);
  });

  test('type=local into an existing empty directory fills it; a non-empty one is refused', async () => {
    const dest = join(dir, 'empty');
    await mkdir(dest);
    const out = await prepareLocal(store, layers, dest, true);
    expect(await readdir(dest)).toEqual([]);
    await out.commit();
    expect((await readdir(dest)).sort()).toEqual(['bin', 'etc', 'home', 'var']);
    await expect(prepareLocal(store, layers, dest, true)).rejects.toThrow(/exists and is not empty/);
    expect((await readdir(dir)).filter((n) => n.startsWith('.empty'))).toEqual([]);
  });

  test('type=local abort leaves nothing', async () => {
    const dest = join(dir, 'aborted');
    const out = await prepareLocal(store, layers, dest, true);
    await out.abort();
    expect((await readdir(dir)).filter((n) => n.includes('aborted'))).toEqual([]);
  });

  test('type=local drops setuid/setgid bits of files (not of directories, not sticky bits) unless preserveSpecial, with one note', async () => {
    const special = layer([
      { path: 'bin/' },
      { path: 'bin/su', body: 'su', mode: 0o4755 },
      { path: 'bin/su-link', type: 'Link', linkpath: 'bin/su' }, // the same file: counted once
      { path: 'bin/wall', body: 'wall', mode: 0o2755 },
      { path: 'bin/both', body: 'both', mode: 0o6711 },
      { path: 'bin/ln', type: 'SymbolicLink', linkpath: 'su' },
      { path: 'srv/', mode: 0o2775 },
      { path: 'tmp/', mode: 0o1777 },
    ]);
    const b = await store.writeBlob(special);
    const specialLayers = [{ descriptor: { mediaType: 'application/vnd.oci.image.layer.v1.tar', ...b } }];
    const mode = async (root: string, p: string) => (await lstat(join(root, p))).mode & 0o7777;

    const dest = join(dir, 'setid');
    const out = await prepareLocal(store, specialLayers, dest, true);
    expect(out.dropped).toBe(4); // su: setuid; wall: setgid; both: setuid and setgid
    expect(out.note).toBe(`note: 4 setuid/setgid bits dropped from ${dest} (add preserve-special=true to keep them)`);
    // Dropped while staging: the staged tree never has them, and sits in a 0700 directory meanwhile.
    const staging = (await readdir(dir)).find((n) => n.startsWith('.setid.stowage-'))!;
    expect((await lstat(join(dir, staging))).mode & 0o777).toBe(0o700);
    expect(await mode(join(dir, staging, 'rootfs'), 'bin/su')).toBe(0o755);
    await out.commit();
    expect(await mode(dest, 'bin/su')).toBe(0o755);
    expect(await mode(dest, 'bin/su-link')).toBe(0o755);
    expect(await mode(dest, 'bin/wall')).toBe(0o755);
    expect(await mode(dest, 'bin/both')).toBe(0o711);
    expect(await mode(dest, 'srv')).toBe(0o2775);
    expect(await mode(dest, 'tmp')).toBe(0o1777);
    expect((await readdir(dir)).filter((n) => n.startsWith('.setid'))).toEqual([]);

    const kept = join(dir, 'setid-kept');
    const out2 = await prepareLocal(store, specialLayers, kept, true, { preserveSpecial: true });
    expect(out2.dropped).toBe(0);
    expect(out2.note).toBeUndefined();
    await out2.commit();
    expect(await mode(kept, 'bin/su')).toBe(0o4755);
    expect(await mode(kept, 'bin/wall')).toBe(0o2755);
    expect(await mode(kept, 'bin/both')).toBe(0o6711);

    // Nothing to drop: no note.
    const plain = await prepareLocal(store, layers, join(dir, 'plain'), true);
    expect(plain.dropped).toBe(0);
    expect(plain.note).toBeUndefined();
    await plain.abort();
  });

  test('type=tar: sorted entries, no whiteouts, owners from the layers when they could not be set', async () => {
    const treeDir = await mkdtemp(join(dir, 'tree-'));
    const tree = await applyImageLayers(store, layers, treeDir, true);
    const dest = join(dir, 'fs.tar');
    const out = await prepareRootfsTar(tree, dest);
    await out.commit();
    const entries = await listTar(dest);
    expect(entries.map((e) => e.path)).toEqual(['bin/', 'bin/x', 'bin/y', 'bin/z', 'etc/', 'etc/b', 'etc/c', 'home/', 'home/u', 'var/', 'var/new']);
    expect(entries.some((e) => e.path.includes('.wh.'))).toBe(false);
    const by = Object.fromEntries(entries.map((e) => [e.path, e]));
    expect(by['bin/y']).toMatchObject({ type: 'Link', linkpath: 'bin/x' });
    expect(by['bin/z']).toMatchObject({ type: 'SymbolicLink', linkpath: 'x' });
    expect(by['bin/x']).toMatchObject({ type: 'File', mode: 0o755 });
    expect(by['home/']).toMatchObject({ uid: 1000, gid: 1000 });
    expect(by['home/u']).toMatchObject({ uid: 1000, gid: 1001, mode: 0o600 });
    expect(by['etc/c']).toMatchObject({ uid: 0, gid: 0 });
    const x = await mkdtemp(join(dir, 'x-'));
    await tar.x({ file: dest, cwd: x, preserveOwner: false });
    expect(await readFile(join(x, 'home/u'), 'utf8')).toBe('mine');
    expect(await readFile(join(x, 'bin/x'), 'utf8')).toBe('#!/bin/sh\n');
  });

  test('type=tar: xattrs of the tree are PAX records, as in the layers and BuildKit\'s tar export', async () => {
    const { execFileSync } = await import('node:child_process');
    const treeDir = await mkdtemp(join(dir, 'tree-'));
    const tree = await applyImageLayers(store, layers, treeDir, false);
    // A filesystem without user xattrs fails here, loudly.
    execFileSync('setfattr', ['-n', 'user.color', '-v', 'blue', join(treeDir, 'etc/b')]);
    execFileSync('setfattr', ['-n', 'user.dir', '-v', 'yes', join(treeDir, 'etc')]);
    const dest = join(dir, 'xattrs.tar');
    const out = await prepareRootfsTar(tree, dest);
    await out.commit();
    // Read back by GNU tar, which understands SCHILY.xattr records.
    const x = await mkdtemp(join(dir, 'xattrs-'));
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-C', x, '-xf', dest]);
    const get = (p: string) => execFileSync('getfattr', ['-d', '--absolute-names', join(x, p)], { encoding: 'utf8' });
    expect(get('etc/b')).toContain('user.color="blue"');
    expect(get('etc')).toContain('user.dir="yes"');
    expect(get('etc/c')).not.toContain('user.');
  });

  test('commitAll: a failing commit reverts the committed outputs and aborts the rest', async () => {
    const a = await prepareSmallFile(join(dir, 'one'), 'x', '1');
    const bad: PendingOutput = { dest: join(dir, 'two'), kind: 'x', commit: () => Promise.reject(new Error('boom')), abort: async () => undefined, revert: async () => undefined };
    const c = await prepareSmallFile(join(dir, 'three'), 'x', '3');
    await expect(commitAll([a, bad, c])).rejects.toThrow('boom');
    expect((await readdir(dir)).filter((n) => /one|two|three/.test(n))).toEqual([]);
  });
});
