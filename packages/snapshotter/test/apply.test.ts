import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer, UnsafeLayerPathError, UnsupportedLayerError } from '../src/index.js';
import { makeTar, sha256, stream, type FixtureEntry } from './fixtures.js';

let sandbox: string;
let root: string;
let sentinel: string;
const passwdBefore = readFileSync('/etc/passwd');

beforeEach(() => {
  sandbox = mkdtempSync(join(tmpdir(), 'stowage-apply-'));
  root = join(sandbox, 'root');
  sentinel = join(sandbox, 'sentinel');
  mkdirSync(root);
  mkdirSync(sentinel);
  writeFileSync(join(sentinel, 'keep'), 'keep');
});
afterEach(() => rmSync(sandbox, { recursive: true, force: true }));

const apply = (entries: FixtureEntry[], gzip = false) => applyLayer(root, stream(makeTar(entries), gzip));

function assertNothingEscaped(): void {
  expect(readdirSync(sentinel)).toEqual(['keep']);
  expect(readFileSync(join(sentinel, 'keep'), 'utf8')).toBe('keep');
  expect(readdirSync(sandbox).sort()).toEqual(['root', 'sentinel']);
  expect(readFileSync('/etc/passwd')).toEqual(passwdBefore);
  expect(existsSync('/etc/x-stowage-test')).toBe(false);
}

describe('applyLayer: content and metadata', () => {
  test('files, dirs, symlinks, hardlinks, setuid, ownership, mtimes; diffID matches plain and gzip', async () => {
    const entries: FixtureEntry[] = [
      { path: 'bin/', type: 'Directory', mode: 0o755, mtime: 1_500_000_000 },
      { path: 'bin/tool', body: '#!/bin/sh\n', mode: 0o4755, uid: 1000, gid: 1000 },
      { path: 'bin/alias', type: 'Link', linkpath: 'bin/tool' },
      { path: 'bin/sym', type: 'SymbolicLink', linkpath: 'tool', uid: 7, gid: 8 },
      { path: 'tmp/', type: 'Directory', mode: 0o1777 },
      { path: './etc/conf', body: 'x=1', uid: 33, gid: 44, mode: 0o640 },
    ];
    const tar = makeTar(entries);
    const r1 = await applyLayer(root, stream(tar));
    expect(r1.diffID).toBe(sha256(tar));
    expect(r1.warnings).toEqual([]);
    const tool = lstatSync(join(root, 'bin/tool'));
    expect(tool.mode & 0o7777).toBe(0o4755); // setuid survives chown
    expect([tool.uid, tool.gid]).toEqual([1000, 1000]);
    expect(tool.nlink).toBe(2);
    expect(lstatSync(join(root, 'bin/alias')).ino).toBe(tool.ino);
    expect(readlinkSync(join(root, 'bin/sym'))).toBe('tool');
    expect(lstatSync(join(root, 'bin/sym')).uid).toBe(7);
    expect(lstatSync(join(root, 'tmp')).mode & 0o7777).toBe(0o1777);
    expect(lstatSync(join(root, 'bin')).mtimeMs).toBe(1_500_000_000_000); // set after children
    expect(lstatSync(join(root, 'etc/conf')).mtimeMs).toBe(1_600_000_000_000);
    expect([lstatSync(join(root, 'etc/conf')).uid, lstatSync(join(root, 'etc/conf')).gid]).toEqual([33, 44]);

    rmSync(root, { recursive: true });
    mkdirSync(root);
    const r2 = await applyLayer(root, stream(tar, true));
    expect(r2.diffID).toBe(r1.diffID);
  });

  test('ignoreOwnership skips chown', async () => {
    await applyLayer(root, stream(makeTar([{ path: 'f', body: 'x', uid: 1234, gid: 1234 }])), { ignoreOwnership: true });
    expect(lstatSync(join(root, 'f')).uid).toBe(process.getuid?.());
  });

  test('whiteout deletes, opaque keeps only same-layer entries (marker after siblings)', async () => {
    await apply([
      { path: 'a', body: 'a' },
      { path: 'gone/', type: 'Directory' },
      { path: 'gone/deep', body: 'd' },
      { path: 'opq/', type: 'Directory' },
      { path: 'opq/old1', body: '1' },
      { path: 'opq/sub/', type: 'Directory' },
      { path: 'opq/sub/old2', body: '2' },
    ]);
    await apply([
      { path: '.wh.a', body: '' },
      { path: '.wh.gone', body: '' },
      { path: '.wh.never-existed', body: '' },
      { path: 'opq/', type: 'Directory' },
      { path: 'opq/new', body: 'n' },
      { path: 'opq/sub/', type: 'Directory' },
      { path: 'opq/sub/new2', body: 'n2' },
      { path: 'opq/.wh..wh..opq', body: '' },
      { path: 'opq/after', body: 'after' },
    ]);
    expect(readdirSync(root).sort()).toEqual(['opq']);
    expect(readdirSync(join(root, 'opq')).sort()).toEqual(['after', 'new', 'sub']);
    expect(readdirSync(join(root, 'opq/sub'))).toEqual(['new2']);
  });

  test('file→dir and dir→file replacement', async () => {
    await apply([
      { path: 'x', body: 'file' },
      { path: 'y/', type: 'Directory' },
      { path: 'y/child', body: 'c' },
    ]);
    await apply([
      { path: 'x/', type: 'Directory' },
      { path: 'x/inside', body: 'i' },
      { path: 'y', body: 'now a file' },
    ]);
    expect(readFileSync(join(root, 'x/inside'), 'utf8')).toBe('i');
    expect(readFileSync(join(root, 'y'), 'utf8')).toBe('now a file');
  });

  test('symlinks inside the root are followed scoped (merged /usr)', async () => {
    await apply([
      { path: 'usr/lib/', type: 'Directory' },
      { path: 'lib', type: 'SymbolicLink', linkpath: 'usr/lib' },
    ]);
    await apply([{ path: 'lib/libc.so', body: 'elf' }]);
    expect(readFileSync(join(root, 'usr/lib/libc.so'), 'utf8')).toBe('elf');
  });

  test('device nodes are skipped with a warning; FIFOs are created', async () => {
    const r = await apply([
      { path: 'dev/null', type: 'CharacterDevice' },
      { path: 'pipe', type: 'FIFO', mode: 0o620 },
    ]);
    expect(existsSync(join(root, 'dev/null'))).toBe(false);
    expect(r.warnings.join('\n')).toMatch(/dev\/null: CharacterDevice skipped/);
    expect(lstatSync(join(root, 'pipe')).isFIFO()).toBe(true);
    expect(lstatSync(join(root, 'pipe')).mode & 0o777).toBe(0o620);
  });

  test('PAX xattrs are applied where possible', async () => {
    const r = await apply([{ path: 'f', body: 'x', xattrs: { 'user.stowage': 'hello' } }]);
    let out = '';
    try {
      out = execFileSync('getfattr', ['--absolute-names', '-n', 'user.stowage', '--only-values', join(root, 'f')], { encoding: 'utf8' });
    } catch {
      console.warn('getfattr unavailable or fs without user xattrs; warnings:', r.warnings);
      return;
    }
    expect(out).toBe('hello');
  });

  test('long names via PAX path', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(150)}`;
    // Build with node-tar Header needing PAX: emulate by a GNU-free PAX record.
    const rec = ` path=${long}\n`;
    let len = Buffer.byteLength(rec) + 3;
    if (String(len).length !== 3) len = Buffer.byteLength(rec) + String(len).length;
    const body = Buffer.from(`${len}${rec}`);
    const { Header } = await import('tar');
    const h1 = Buffer.alloc(512);
    new Header({ path: 'PaxHeader', type: 'ExtendedHeader', size: body.length, mtime: new Date(0) }).encode(h1);
    const h2 = Buffer.alloc(512);
    new Header({ path: 'short', type: 'File', size: 2, mode: 0o644, mtime: new Date(0) }).encode(h2);
    const content = Buffer.alloc(512);
    content.write('ok');
    const tar = Buffer.concat([h1, body, Buffer.alloc(512 - body.length), h2, content, Buffer.alloc(1024)]);
    await applyLayer(root, stream(tar));
    expect(readFileSync(join(root, long), 'utf8')).toBe('ok');
  });
});

describe('applyLayer: escape attempts write nothing outside root', () => {
  test('../x is rejected', async () => {
    await expect(apply([{ path: '../sentinel/x', body: 'pwn' }])).rejects.toBeInstanceOf(UnsafeLayerPathError);
    await expect(apply([{ path: 'a/../../x', body: 'pwn' }])).rejects.toMatchObject({ code: 'E_LAYER_UNSAFE_PATH' });
    assertNothingEscaped();
  });

  test('absolute /etc/x lands inside root', async () => {
    await apply([{ path: '/etc/x-stowage-test', body: 'inside' }]);
    expect(readFileSync(join(root, 'etc/x-stowage-test'), 'utf8')).toBe('inside');
    assertNothingEscaped();
  });

  test('symlink a -> / then a/etc/passwd stays in root', async () => {
    await apply([
      { path: 'a', type: 'SymbolicLink', linkpath: '/' },
      { path: 'a/etc/passwd', body: 'root::0:0::/:/bin/sh\n' },
    ]);
    expect(readFileSync(join(root, 'etc/passwd'), 'utf8')).toMatch(/^root::0/);
    expect(readlinkSync(join(root, 'a'))).toBe('/');
    assertNothingEscaped();
  });

  test('symlink to a ../.. chain then writing through it stays in root', async () => {
    await apply([
      { path: 'b', type: 'SymbolicLink', linkpath: '../../../../..' },
      { path: 'c', type: 'SymbolicLink', linkpath: 'b/../sentinel' },
      { path: 'b/sentinel/pwn', body: 'x' },
      { path: 'c/pwn2', body: 'y' },
    ]);
    expect(readFileSync(join(root, 'sentinel/pwn'), 'utf8')).toBe('x');
    expect(readFileSync(join(root, 'sentinel/pwn2'), 'utf8')).toBe('y');
    assertNothingEscaped();
  });

  test('a file entry replacing a symlink does not write through it', async () => {
    await apply([{ path: 'evil', type: 'SymbolicLink', linkpath: join(sentinel, 'keep') }]);
    await apply([{ path: 'evil', body: 'replaced' }]);
    expect(lstatSync(join(root, 'evil')).isFile()).toBe(true);
    assertNothingEscaped();
  });

  test('hardlink to /etc/passwd or outside root is rejected', async () => {
    await expect(apply([{ path: 'h', type: 'Link', linkpath: '/etc/passwd' }])).rejects.toBeInstanceOf(UnsafeLayerPathError);
    await expect(apply([{ path: 'h', type: 'Link', linkpath: '../sentinel/keep' }])).rejects.toBeInstanceOf(UnsafeLayerPathError);
    // …even through a symlink to the host root
    await expect(
      apply([
        { path: 's', type: 'SymbolicLink', linkpath: '/' },
        { path: 'h', type: 'Link', linkpath: 's/etc/passwd' },
      ]),
    ).rejects.toBeInstanceOf(UnsafeLayerPathError);
    expect(existsSync(join(root, 'h'))).toBe(false);
    assertNothingEscaped();
  });

  test('whiteouts naming .. or . are rejected; whiteouts through symlinks stay in root', async () => {
    await expect(apply([{ path: '.wh...', body: '' }])).rejects.toBeInstanceOf(UnsafeLayerPathError);
    await expect(apply([{ path: 'd/.wh..', body: '' }])).rejects.toBeInstanceOf(UnsafeLayerPathError);
    await apply([
      { path: 'c', type: 'SymbolicLink', linkpath: '../sentinel' },
      { path: 'c/.wh.keep', body: '' },
      { path: 'r', type: 'SymbolicLink', linkpath: '/' },
      { path: 'r/.wh.etc', body: '' },
      { path: 'c/.wh..wh..opq', body: '' },
    ]);
    assertNothingEscaped();
  });
});

describe('applyLayer: stream formats', () => {
  test('zstd is reported as unsupported', async () => {
    const zstd = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]);
    await expect(applyLayer(root, Readable.from([zstd]))).rejects.toBeInstanceOf(UnsupportedLayerError);
    await expect(applyLayer(root, Readable.from([zstd]))).rejects.toMatchObject({ code: 'E_LAYER_UNSUPPORTED' });
  });

  test('garbage is an invalid layer', async () => {
    await expect(applyLayer(root, Readable.from([Buffer.alloc(512, 7)]))).rejects.toMatchObject({ code: 'E_LAYER_INVALID' });
  });

  test('empty tar yields the diffID of two zero blocks', async () => {
    const tar = makeTar([]);
    expect((await applyLayer(root, stream(tar))).diffID).toBe(sha256(tar));
  });
});
