import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { link, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, Header, type HeaderData } from 'tar';
import { ArchiveError, detectArchive, extractArchive, isTarHeader, type ArchiveFormat } from '../../src/engine/archive.js';

let base: string;
let src: string;
let root: string;
let sentinel: string;
const warnings: string[] = [];
const warn = (m: string) => warnings.push(m);
const isRoot = process.getuid?.() === 0;
const T = 1_600_000_000;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'stowage-archive-'));
  src = join(base, 'src');
  root = join(base, 'root');
  sentinel = join(base, 'sentinel');
  await mkdir(src);
  await mkdir(root);
  await mkdir(sentinel);
  warnings.length = 0;
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

const exists = (path: string) => lstat(path).then(() => true, () => false);
const sentinelIsEmpty = async () => expect(await readdir(sentinel)).toEqual([]);

/** A tar of `src` made with node-tar (keeps uid/gid, modes, mtimes, links). */
async function tarOf(dir: string, out: string): Promise<string> {
  await create({ file: out, cwd: dir }, (await readdir(dir)).sort());
  return out;
}

/** Compresses `file` with the Debian CLI; the result keeps no telling extension. */
function compress(file: string, format: ArchiveFormat, out: string): string {
  const tool = { gzip: 'gzip -c', bzip2: 'bzip2 -c', xz: 'xz -c', zstd: 'zstd -q -c', tar: 'cat' }[format];
  execFileSync('sh', ['-c', `${tool} < "$1" > "$2"`, 'sh', file, out]);
  return out;
}

type RawEntry = HeaderData & { body?: string | Buffer };

/** A hand-made archive: 512-byte headers from node-tar's Header, nothing sanitised. */
function rawTar(entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const { body, ...data } of entries) {
    const content = body === undefined ? Buffer.alloc(0) : Buffer.from(body);
    const header = new Header({ mode: 0o644, uid: 0, gid: 0, mtime: new Date(T * 1000), type: 'File', ...data, size: content.length });
    header.encode();
    blocks.push(header.block!);
    if (content.length) blocks.push(content, Buffer.alloc((512 - (content.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

async function writeRaw(entries: RawEntry[], name = 'raw.tar'): Promise<string> {
  const file = join(base, name);
  await writeFile(file, rawTar(entries));
  return file;
}

async function extractRaw(entries: RawEntry[], dest = root): Promise<void> {
  const file = await writeRaw(entries);
  expect(await detectArchive(file)).toBe('tar');
  await extractArchive(file, 'tar', root, dest, {}, warn);
}

describe('detectArchive', () => {
  const formats: ArchiveFormat[] = ['tar', 'gzip', 'bzip2', 'xz', 'zstd'];

  test.each(formats)('%s is detected by content, whatever the name', async (format) => {
    await writeFile(join(src, 'hello'), 'hi');
    const plain = await tarOf(src, join(base, 'plain.bin'));
    const file = compress(plain, format, join(base, 'x.txt'));
    expect(await detectArchive(file)).toBe(format);
  });

  test.each(['gzip', 'bzip2', 'xz', 'zstd'] as ArchiveFormat[])('a %s of a file that is not a tar is not an archive', async (format) => {
    const text = join(base, 'notes.tar');
    await writeFile(text, 'just some text\n'.repeat(100));
    expect(await detectArchive(compress(text, format, join(base, 'notes.tar.gz')))).toBeUndefined();
  });

  test('plain text, an empty file, zeros, a directory and a missing file are not archives', async () => {
    await writeFile(join(base, 'a.tar'), 'hello world\n'.repeat(100));
    await writeFile(join(base, 'empty.tar'), '');
    await writeFile(join(base, 'zeros.tar'), Buffer.alloc(10240));
    expect(await detectArchive(join(base, 'a.tar'))).toBeUndefined();
    expect(await detectArchive(join(base, 'empty.tar'))).toBeUndefined();
    expect(await detectArchive(join(base, 'zeros.tar'))).toBeUndefined();
    expect(await detectArchive(src)).toBeUndefined();
    expect(await detectArchive(join(base, 'missing.tar'))).toBeUndefined();
  });

  test('compression magic without a valid stream behind it is not an archive', async () => {
    await writeFile(join(base, 'bz'), 'BZh is how this text starts\n');
    await writeFile(join(base, 'gz'), Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08]), randomBytes(600)]));
    await writeFile(join(base, 'xz'), Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), randomBytes(600)]));
    expect(await detectArchive(join(base, 'bz'))).toBeUndefined();
    expect(await detectArchive(join(base, 'gz'))).toBeUndefined();
    expect(await detectArchive(join(base, 'xz'))).toBeUndefined();
  });

  test('a ustar magic with a wrong checksum is not a tar header; a right one is', async () => {
    const block = rawTar([{ path: 'f', body: 'x' }]).subarray(0, 512);
    expect(block.subarray(257, 262).toString()).toBe('ustar');
    expect(isTarHeader(block)).toBe(true);
    const broken = Buffer.from(block);
    broken[0] = broken[0]! ^ 0xff;
    expect(isTarHeader(broken)).toBe(false);
    // An old-style (v7) header without the ustar magic is still a tar header.
    const v7 = Buffer.from(block);
    v7.fill(0, 257, 265);
    const sum = [...v7].reduce((acc, b, i) => acc + (i >= 148 && i < 156 ? 0x20 : b), 0);
    v7.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    expect(isTarHeader(v7)).toBe(true);
  });

  test('a missing decompressor is a clear error naming the Debian package', async () => {
    await writeFile(join(src, 'hello'), 'hi');
    const xz = compress(await tarOf(src, join(base, 'p.tar')), 'xz', join(base, 'p.bin'));
    const saved = process.env.PATH;
    process.env.PATH = join(base, 'empty-bin');
    try {
      await expect(detectArchive(xz)).rejects.toThrow(/xz-utils/);
      await expect(extractArchive(xz, 'xz', root, root)).rejects.toThrow(ArchiveError);
    } finally {
      process.env.PATH = saved;
    }
  });
});

describe('extractArchive', () => {
  test.each(['tar', 'gzip', 'bzip2', 'xz', 'zstd'] as ArchiveFormat[])('%s: nested directories merge into an existing destination, files are overwritten', async (format) => {
    await mkdir(join(src, 'etc/app/conf.d'), { recursive: true });
    await writeFile(join(src, 'etc/app/main.conf'), 'new main');
    await writeFile(join(src, 'etc/app/conf.d/10.conf'), 'ten');
    await writeFile(join(src, 'top'), 'top');
    const file = compress(await tarOf(src, join(base, 'a.tar')), format, join(base, 'archive.dat'));
    await mkdir(join(root, 'opt/etc/app'), { recursive: true });
    await writeFile(join(root, 'opt/etc/app/main.conf'), 'old main');
    await writeFile(join(root, 'opt/etc/app/keep.conf'), 'kept');
    await writeFile(join(root, 'opt/top'), 'old top');

    expect(await detectArchive(file)).toBe(format);
    await extractArchive(file, format, root, join(root, 'opt'), {}, warn);

    expect(await readFile(join(root, 'opt/etc/app/main.conf'), 'utf8')).toBe('new main');
    expect(await readFile(join(root, 'opt/etc/app/keep.conf'), 'utf8')).toBe('kept');
    expect(await readFile(join(root, 'opt/etc/app/conf.d/10.conf'), 'utf8')).toBe('ten');
    expect(await readFile(join(root, 'opt/top'), 'utf8')).toBe('top');
    expect(warnings).toEqual([]);
  });

  test('modes (setuid included), mtimes, symlinks and hardlinks are kept', async () => {
    await mkdir(join(src, 'bin'));
    await mkdir(join(src, 'private'), { mode: 0o700 });
    await writeFile(join(src, 'bin/tool'), '#!/bin/sh\n');
    await writeFile(join(src, 'private/secret'), 's', { mode: 0o600 });
    execFileSync('chmod', ['4755', join(src, 'bin/tool')]);
    execFileSync('chmod', ['0750', join(src, 'private')]);
    await symlink('bin/tool', join(src, 'link'));
    await link(join(src, 'bin/tool'), join(src, 'hard'));
    for (const p of ['bin/tool', 'private/secret', 'private', 'bin']) await utimes(join(src, p), T, T + 1);
    const file = await tarOf(src, join(base, 'a.tar'));

    await extractArchive(file, 'tar', root, root, {}, warn);

    const tool = await stat(join(root, 'bin/tool'));
    expect(tool.mode & 0o7777).toBe(0o4755);
    expect(Math.floor(tool.mtimeMs / 1000)).toBe(T + 1);
    expect((await stat(join(root, 'private/secret'))).mode & 0o7777).toBe(0o600);
    const priv = await stat(join(root, 'private'));
    expect(priv.mode & 0o7777).toBe(0o750);
    expect(Math.floor(priv.mtimeMs / 1000)).toBe(T + 1);
    expect(Math.floor((await stat(join(root, 'bin'))).mtimeMs / 1000)).toBe(T + 1);
    expect(await readlink(join(root, 'link'))).toBe('bin/tool');
    const hard = await stat(join(root, 'hard'));
    expect(hard.ino).toBe(tool.ino);
    expect(hard.nlink).toBe(2);
  });

  test('a read-only directory does not stop its own contents from being extracted', async () => {
    await extractRaw([
      { path: 'ro/', type: 'Directory', mode: 0o555 },
      { path: 'ro/f', body: 'in' },
    ]);
    expect(await readFile(join(root, 'ro/f'), 'utf8')).toBe('in');
    expect((await stat(join(root, 'ro'))).mode & 0o7777).toBe(0o555);
  });

  (isRoot ? describe : describe.skip)('ownership', () => {
    const entries: RawEntry[] = [
      { path: 'implied/dir/', type: 'Directory', mode: 0o755, uid: 1234, gid: 2345 },
      { path: 'implied/dir/f', body: 'x', uid: 1234, gid: 2345, mode: 0o2755 },
      { path: 'implied/dir/l', type: 'SymbolicLink', linkpath: 'f', uid: 1234, gid: 2345 },
    ];
    const owners = async () => Promise.all(['implied', 'implied/dir', 'implied/dir/f', 'implied/dir/l'].map(async (p) => {
      const st = await lstat(join(root, p));
      return `${st.uid}:${st.gid}`;
    }));

    test('without --chown the archive owners are kept; implied parents are root', async () => {
      await extractRaw(entries);
      expect(await owners()).toEqual(['0:0', '1234:2345', '1234:2345', '1234:2345']);
      // setgid survives the chown.
      expect((await stat(join(root, 'implied/dir/f'))).mode & 0o7777).toBe(0o2755);
    });

    test('--chown replaces the owner of every extracted entry (BuildKit), not of implied parents', async () => {
      const file = await writeRaw(entries);
      await extractArchive(file, 'tar', root, root, { owner: { uid: 100, gid: 200 } }, warn);
      expect(await owners()).toEqual(['0:0', '100:200', '100:200', '100:200']);
      expect((await stat(join(root, 'implied/dir/f'))).mode & 0o7777).toBe(0o2755);
    });

    test('ignoreOwnership chowns nothing', async () => {
      const file = await writeRaw(entries);
      await extractArchive(file, 'tar', root, root, { ignoreOwnership: true, owner: { uid: 100, gid: 200 } }, warn);
      const me = `${process.getuid!()}:${process.getgid!()}`;
      expect(await owners()).toEqual([me, me, me, me]);
    });
  });

  test('a "." entry does not change the destination directory', async () => {
    const rootMode = (await stat(root)).mode;
    await mkdir(join(root, 'dst'), { mode: 0o711 });
    execFileSync('chmod', ['0711', join(root, 'dst')]);
    await extractRaw([
      { path: './', type: 'Directory', mode: 0o777 },
      { path: './a', body: 'a' },
      { path: 'self', type: 'SymbolicLink', linkpath: '.' },
      { path: 'self/', type: 'Directory', mode: 0o777 },
      { path: 'top', type: 'SymbolicLink', linkpath: '/' },
      { path: 'top/', type: 'Directory', mode: 0o777 },
    ], join(root, 'dst'));
    expect((await stat(join(root, 'dst'))).mode & 0o7777).toBe(0o711);
    expect((await stat(root)).mode).toBe(rootMode);
    expect(await readFile(join(root, 'dst/a'), 'utf8')).toBe('a');
  });

  test('a directory entry replaces a symlink at its path, one to a directory too (BuildKit: moby archive.Untar)', async () => {
    await mkdir(join(root, 'usr/lib'), { recursive: true });
    await symlink('usr/lib', join(root, 'lib'));
    await extractRaw([{ path: 'lib/', type: 'Directory', mode: 0o755 }, { path: 'lib/libx.so', body: 'so' }]);
    expect((await lstat(join(root, 'lib'))).isDirectory()).toBe(true);
    expect(await readFile(join(root, 'lib/libx.so'), 'utf8')).toBe('so');
    expect(await exists(join(root, 'usr/lib/libx.so'))).toBe(false);
  });

  test('a file entry below a symlinked directory with no entry of its own goes through the link, inside the root', async () => {
    await mkdir(join(root, 'usr/lib'), { recursive: true });
    await symlink('/usr/lib', join(root, 'lib'));
    await extractRaw([{ path: 'lib/liby.so', body: 'y' }]);
    expect(await readlink(join(root, 'lib'))).toBe('/usr/lib');
    expect(await readFile(join(root, 'usr/lib/liby.so'), 'utf8')).toBe('y');
  });

  test('a file replaces a directory and a directory replaces a file', async () => {
    await mkdir(join(root, 'was-dir/sub'), { recursive: true });
    await writeFile(join(root, 'was-file'), 'f');
    await extractRaw([{ path: 'was-dir', body: 'now a file' }, { path: 'was-file/', type: 'Directory', mode: 0o755 }]);
    expect(await readFile(join(root, 'was-dir'), 'utf8')).toBe('now a file');
    expect((await lstat(join(root, 'was-file'))).isDirectory()).toBe(true);
  });

  test('device nodes are skipped with a warning; FIFOs are made with their mode (BuildKit extracts them)', async () => {
    await extractRaw([
      { path: 'dev/null', type: 'CharacterDevice', devmaj: 1, devmin: 3 },
      { path: 'dev/sda', type: 'BlockDevice', devmaj: 8, devmin: 0 },
      { path: 'fifo', type: 'FIFO', mode: 0o640 },
      { path: 'ok', body: 'ok' },
    ]);
    expect(await exists(join(root, 'dev/null'))).toBe(false);
    expect(await exists(join(root, 'dev/sda'))).toBe(false);
    const fifo = await lstat(join(root, 'fifo'));
    expect(fifo.isFIFO()).toBe(true);
    expect(fifo.mode & 0o7777).toBe(0o640);
    expect(await readFile(join(root, 'ok'), 'utf8')).toBe('ok');
    expect(warnings.join('\n')).toMatch(/dev\/null.*device/);
    expect(warnings).toHaveLength(2);
  });

  test('a large file streams through intact', async () => {
    const big = randomBytes(4 * 1024 * 1024 + 123);
    await writeFile(join(src, 'big'), big);
    const file = compress(await tarOf(src, join(base, 'a.tar')), 'xz', join(base, 'a.xz'));
    await extractArchive(file, 'xz', root, root, {}, warn);
    expect((await readFile(join(root, 'big'))).equals(big)).toBe(true);
  }, 60_000);

  test('extraction streams: memory stays far below the size of the archive', async () => {
    const size = 128 * 1024 * 1024;
    await writeFile(join(src, 'zeros'), '');
    await truncate(join(src, 'zeros'), size);
    const file = join(base, 'zeros.bin');
    await create({ file, cwd: src, gzip: { level: 1 } }, ['zeros']);
    expect(await detectArchive(file)).toBe('gzip');
    let peak = 0;
    const sample = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }, 2);
    try {
      await extractArchive(file, 'gzip', root, root, {}, warn);
    } finally {
      clearInterval(sample);
    }
    expect((await stat(join(root, 'zeros'))).size).toBe(size);
    expect(peak).toBeLessThan(size / 2);
  }, 60_000);

  test('a truncated archive is an error', async () => {
    const whole = rawTar([{ path: 'f', body: 'x'.repeat(5000) }, { path: 'g', body: 'y' }]);
    await writeFile(join(base, 'cut.tar'), whole.subarray(0, 2048));
    await expect(extractArchive(join(base, 'cut.tar'), 'tar', root, root, {}, warn)).rejects.toThrow();
    const gz = compress(join(base, 'cut.tar'), 'gzip', join(base, 'cut.gz'));
    const data = await readFile(gz);
    await writeFile(gz, data.subarray(0, data.length - 10));
    await expect(extractArchive(gz, 'gzip', root, root, {}, warn)).rejects.toThrow();
    await writeFile(join(base, 'whole.tar'), whole);
    const xz = compress(join(base, 'whole.tar'), 'xz', join(base, 'whole.xz'));
    const xzData = await readFile(xz);
    await writeFile(xz, xzData.subarray(0, xzData.length - 20));
    await expect(extractArchive(xz, 'xz', root, root, {}, warn)).rejects.toThrow(/xz/);
  });

  test('a destination outside the target root is refused', async () => {
    const file = await writeRaw([{ path: 'f', body: 'x' }]);
    await expect(extractArchive(file, 'tar', root, sentinel, {}, warn)).rejects.toThrow(ArchiveError);
    await sentinelIsEmpty();
  });
});

describe('extractArchive against hostile archives', () => {
  test('"../evil" is refused and writes nothing outside', async () => {
    await mkdir(join(root, 'dst'));
    const file = await writeRaw([{ path: '../evil', body: 'x' }]);
    await expect(extractArchive(file, 'tar', root, join(root, 'dst'), {}, warn)).rejects.toThrow(/outside/);
    const deep = await writeRaw([{ path: `a/../../../../../../../../..${sentinel}/evil`, body: 'x' }], 'deep.tar');
    await expect(extractArchive(deep, 'tar', root, join(root, 'dst'), {}, warn)).rejects.toThrow(/outside/);
    await sentinelIsEmpty();
    expect(await exists(join(root, 'evil'))).toBe(false);
  });

  test('"/abs/evil" lands inside the destination', async () => {
    await mkdir(join(root, 'dst'));
    await extractRaw([{ path: `${sentinel}/evil`, body: 'x' }, { path: '/abs/evil', body: 'y' }], join(root, 'dst'));
    await sentinelIsEmpty();
    expect(await readFile(join(root, 'dst/abs/evil'), 'utf8')).toBe('y');
    expect(await readFile(join(root, 'dst', sentinel, 'evil'), 'utf8')).toBe('x');
  });

  test('symlink "a -> /" then "a/..." resolves inside the target root', async () => {
    await mkdir(join(root, 'dst'));
    await extractRaw([
      { path: 'a', type: 'SymbolicLink', linkpath: '/' },
      { path: `a${sentinel}/x`, body: 'x' },
      { path: 'a/etc/x', body: 'etc' },
    ], join(root, 'dst'));
    await sentinelIsEmpty();
    expect(await readlink(join(root, 'dst/a'))).toBe('/');
    expect(await readFile(join(root, sentinel, 'x'), 'utf8')).toBe('x');
    expect(await readFile(join(root, 'etc/x'), 'utf8')).toBe('etc');
    expect(await exists('/etc/x')).toBe(false);
  });

  test('symlink "a -> ../../.." then "a/x" stops at the target root', async () => {
    await mkdir(join(root, 'opt/app'), { recursive: true });
    await extractRaw([
      { path: 'a', type: 'SymbolicLink', linkpath: '../../../../../../../../..' },
      { path: 'a/x', body: 'x' },
      { path: 'b', type: 'SymbolicLink', linkpath: `../../../../../../../../..${sentinel}` },
      { path: 'b/y', body: 'y' },
    ], join(root, 'opt/app'));
    await sentinelIsEmpty();
    expect(await readFile(join(root, 'x'), 'utf8')).toBe('x');
    expect(await readFile(join(root, sentinel, 'y'), 'utf8')).toBe('y');
    expect(await exists(join(base, 'x'))).toBe(false);
  });

  test('a symlink already in the target root cannot lead outside', async () => {
    await symlink(sentinel, join(root, 'lib'));
    await extractRaw([{ path: 'lib/x', body: 'x' }, { path: 'lib/sub/', type: 'Directory', mode: 0o777 }, { path: 'lib/sub/y', body: 'y' }]);
    await sentinelIsEmpty();
    expect(await readFile(join(root, sentinel, 'x'), 'utf8')).toBe('x');
    expect(await readFile(join(root, sentinel, 'sub/y'), 'utf8')).toBe('y');
  });

  test('a symlink replacing an extracted directory does not redirect its deferred chmod', async () => {
    const before = (await stat(sentinel)).mode;
    await extractRaw([
      { path: 'd/', type: 'Directory', mode: 0o777 },
      { path: 'd', type: 'SymbolicLink', linkpath: sentinel },
      { path: 'p/q/', type: 'Directory', mode: 0o777 },
      { path: 'p', type: 'SymbolicLink', linkpath: base },
    ]);
    expect((await stat(sentinel)).mode).toBe(before);
    await sentinelIsEmpty();
  });

  test('a hardlink to /etc/passwd (or any file not extracted from the archive) is refused', async () => {
    const passwd = await stat('/etc/passwd');
    await writeFile(join(root, 'preexisting'), 'image file');
    for (const linkpath of ['/etc/passwd', '../../../../../../../../etc/passwd', 'preexisting', 'later']) {
      const file = await writeRaw([{ path: 'h', type: 'Link', linkpath, mode: 0o777 }, { path: 'later', body: 'l' }]);
      await expect(extractArchive(file, 'tar', root, root, {}, warn)).rejects.toThrow(ArchiveError);
    }
    const after = await stat('/etc/passwd');
    expect([after.nlink, after.mode, after.uid]).toEqual([passwd.nlink, passwd.mode, passwd.uid]);
    expect((await stat(join(root, 'preexisting'))).nlink).toBe(1);
    expect(await exists(join(root, 'h'))).toBe(false);
    await sentinelIsEmpty();
  });

  test('a hardlink through an archive symlink to a file outside is refused', async () => {
    await writeFile(join(sentinel, 'target'), 'outside');
    const file = await writeRaw([
      { path: 's', type: 'SymbolicLink', linkpath: sentinel },
      { path: 'h', type: 'Link', linkpath: 's/target' },
    ]);
    await expect(extractArchive(file, 'tar', root, root, {}, warn)).rejects.toThrow(ArchiveError);
    expect((await stat(join(sentinel, 'target'))).nlink).toBe(1);
    expect(await readdir(sentinel)).toEqual(['target']);
  });

  test('a hardlink to a file extracted earlier is fine', async () => {
    await extractRaw([{ path: 'dir/f', body: 'data', mode: 0o640 }, { path: 'g', type: 'Link', linkpath: 'dir/f', mode: 0o640 }]);
    expect((await stat(join(root, 'g'))).ino).toBe((await stat(join(root, 'dir/f'))).ino);
  });
});
