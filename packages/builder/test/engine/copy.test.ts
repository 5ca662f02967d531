import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyInto, CopyError, type CopySpec } from '../../src/engine/copy.js';

let base: string;
let ctx: string;
let root: string;
const warnings: string[] = [];
const warn = (m: string) => warnings.push(m);
const isRoot = process.getuid?.() === 0;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'stowage-copy-'));
  ctx = join(base, 'ctx');
  root = join(base, 'root');
  await mkdir(ctx);
  await mkdir(root);
  warnings.length = 0;
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

function spec(sources: string[], dest: string, extra: Partial<CopySpec> = {}): CopySpec {
  return { sourceRoot: ctx, sourceKind: 'context', sources, inline: [], dest, owner: { uid: 0, gid: 0 }, inlineMtime: 1_700_000_000, ...extra };
}

async function put(dir: string, rel: string, content = rel): Promise<void> {
  await mkdir(join(dir, rel, '..'), { recursive: true });
  await writeFile(join(dir, rel), content);
}

const text = (rel: string) => readFile(join(root, rel), 'utf8');
const exists = (path: string) => lstat(path).then(() => true, () => false);

describe('copyInto', () => {
  test('file to a new file path', async () => {
    await put(ctx, 'a.txt', 'hello');
    await copyInto(root, spec(['a.txt'], '/opt/b.txt'), warn);
    expect(await text('opt/b.txt')).toBe('hello');
    expect((await lstat(join(root, 'opt'))).isDirectory()).toBe(true);
  });

  test('file to an existing directory without a trailing slash lands inside it', async () => {
    await put(ctx, 'a.txt', 'hello');
    await mkdir(join(root, 'etc'));
    await copyInto(root, spec(['a.txt'], '/etc'), warn);
    expect(await text('etc/a.txt')).toBe('hello');
  });

  test('file to a path ending in / creates that directory', async () => {
    await put(ctx, 'a.txt', 'hello');
    await copyInto(root, spec(['a.txt'], '/new/dir/'), warn);
    expect(await text('new/dir/a.txt')).toBe('hello');
  });

  test('a directory source copies its contents, not the directory', async () => {
    await put(ctx, 'src/one', '1');
    await put(ctx, 'src/sub/two', '2');
    await copyInto(root, spec(['src'], '/app'), warn);
    expect(await text('app/one')).toBe('1');
    expect(await text('app/sub/two')).toBe('2');
    expect(await exists(join(root, 'app/src'))).toBe(false);
  });

  test('several sources onto a destination without / are copied onto it in turn, the last winning (BuildKit)', async () => {
    await put(ctx, 'a');
    await put(ctx, 'b');
    await copyInto(root, spec(['a', 'b'], '/dst'), warn);
    expect(await text('dst')).toBe('b');
    await copyInto(root, spec(['a', 'b'], '/dir/'), warn);
    expect(await text('dir/a')).toBe('a');
    expect(await text('dir/b')).toBe('b');
  });

  test('several sources onto an existing directory without / land inside it', async () => {
    await put(ctx, 'a');
    await put(ctx, 'b');
    await mkdir(join(root, 'existing'));
    await copyInto(root, spec(['a', 'b'], '/existing'), warn);
    expect(await text('existing/a')).toBe('a');
    expect(await text('existing/b')).toBe('b');
  });

  test('a wildcard matching several files onto a path without /: each in turn, the last winning', async () => {
    await put(ctx, 'x.txt');
    await put(ctx, 'y.txt');
    await copyInto(root, spec(['*.txt'], '/out'), warn);
    expect(await text('out')).toBe('y.txt');
  });

  test('a wildcard matching one file to a path without / writes that file (Docker semantics)', async () => {
    await put(ctx, 'only.txt', 'solo');
    await copyInto(root, spec(['*.txt'], '/renamed'), warn);
    expect((await lstat(join(root, 'renamed'))).isFile()).toBe(true);
    expect(await text('renamed')).toBe('solo');
  });

  test('a wildcard with no match copies nothing, not even the destination (BuildKit allows empty wildcards)', async () => {
    await put(ctx, 'a.md');
    await copyInto(root, spec(['*.txt'], '/out/'), warn);
    await expect(lstat(join(root, 'out'))).rejects.toThrow(/ENOENT/);
  });

  test('an empty wildcard next to a matching source: the match is copied', async () => {
    await put(ctx, 'f', 'x');
    await copyInto(root, spec(['nomatch*', 'f'], '/w4/'), warn);
    expect(await text('w4/f')).toBe('x');
  });

  test('a missing source is an error naming it', async () => {
    await expect(copyInto(root, spec(['nope.txt'], '/out/'), warn)).rejects.toThrow(/"nope.txt": not found in the build context/);
  });

  (isRoot ? test : test.skip)('owner is applied to files, directories and created parents', async () => {
    await put(ctx, 'src/f', 'f');
    await copyInto(root, spec(['src'], '/home/app/', { owner: { uid: 1000, gid: 1000 } }), warn);
    for (const rel of ['home', 'home/app', 'home/app/f']) {
      const st = await lstat(join(root, rel));
      expect([rel, st.uid, st.gid]).toEqual([rel, 1000, 1000]);
    }
  });

  test('--chmod sets the mode; without it the source mode is kept', async () => {
    await put(ctx, 'run.sh', '#!/bin/sh');
    const { chmod } = await import('node:fs/promises');
    await chmod(join(ctx, 'run.sh'), 0o750);
    await copyInto(root, spec(['run.sh'], '/kept'), warn);
    expect((await stat(join(root, 'kept'))).mode & 0o7777).toBe(0o750);
    await copyInto(root, spec(['run.sh'], '/changed', { chmod: 0o4711 }), warn);
    expect((await stat(join(root, 'changed'))).mode & 0o7777).toBe(0o4711);
  });

  test('mtime of files and directories is preserved', async () => {
    await put(ctx, 'd/f', 'x');
    const when = new Date('2001-02-03T04:05:06Z');
    await utimes(join(ctx, 'd/f'), when, when);
    await utimes(join(ctx, 'd'), when, when);
    await copyInto(root, spec(['d/f'], '/f'), warn);
    expect((await stat(join(root, 'f'))).mtime.getTime()).toBe(when.getTime());
    await copyInto(root, spec(['d'], '/dir'), warn);
    expect((await stat(join(root, 'dir/f'))).mtime.getTime()).toBe(when.getTime());
    expect((await stat(join(root, 'dir'))).mtime.getTime()).toBe(when.getTime());
  });

  test('copying a directory into an existing destination keeps that directory as it was', async () => {
    await put(ctx, 'tree/a', 'A');
    const { chmod } = await import('node:fs/promises');
    await chmod(join(ctx, 'tree'), 0o700);
    const when = new Date('2001-02-03T04:05:06Z');
    await utimes(join(ctx, 'tree'), when, when);
    await chmod(root, 0o755);
    await mkdir(join(root, 'usr/local'), { recursive: true, mode: 0o755 });
    // COPY . / and COPY dir /usr/local/ must not change / or /usr/local (BuildKit: only a created destination gets metadata)
    await copyInto(root, spec(['tree'], '/', { owner: { uid: isRoot ? 1000 : 0, gid: isRoot ? 1000 : 0 } }), warn);
    await copyInto(root, spec(['tree'], '/usr/local/', { owner: { uid: isRoot ? 1000 : 0, gid: isRoot ? 1000 : 0 } }), warn);
    for (const dir of [root, join(root, 'usr/local')]) {
      const st = await stat(dir);
      expect([dir, st.mode & 0o7777, st.uid]).toEqual([dir, 0o755, process.getuid?.() ?? 0]);
    }
    expect(await text('a')).toBe('A');
    expect(await text('usr/local/a')).toBe('A');
  });

  test('a nested directory that already exists takes the source metadata', async () => {
    await put(ctx, 'tree/sub/f', 'f');
    const { chmod } = await import('node:fs/promises');
    await chmod(join(ctx, 'tree/sub'), 0o750);
    await mkdir(join(root, 'app/sub'), { recursive: true, mode: 0o755 });
    await copyInto(root, spec(['tree'], '/app'), warn);
    expect((await stat(join(root, 'app/sub'))).mode & 0o7777).toBe(0o750);
    expect((await stat(join(root, 'app'))).mode & 0o7777).toBe(0o755);
  });

  test('created directories are 0755 whatever the umask', async () => {
    await put(ctx, 'f', 'f');
    const old = process.umask(0o077);
    try {
      await copyInto(root, spec(['f'], '/a/b/f'), warn);
      await copyInto(root, spec([], '/c/d/', { inline: [{ name: 'x', content: 'x' }] }), warn);
    } finally {
      process.umask(old);
    }
    for (const rel of ['a', 'a/b', 'c', 'c/d']) expect([rel, (await stat(join(root, rel))).mode & 0o7777]).toEqual([rel, 0o755]);
  });

  test('COPY . copies the whole context', async () => {
    await put(ctx, 'a', 'A');
    await put(ctx, 'd/b', 'B');
    await copyInto(root, spec(['.'], '/app/'), warn);
    expect(await text('app/a')).toBe('A');
    expect(await text('app/d/b')).toBe('B');
  });

  test('FIFOs are recreated, never opened (named or inside a directory); sockets are skipped with a warning', async () => {
    const { execFileSync } = await import('node:child_process');
    const { createServer } = await import('node:net');
    await put(ctx, 'd/file', 'x');
    execFileSync('mkfifo', ['-m', '640', join(ctx, 'd/pipe')]);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(join(ctx, 'd/sock'), resolve));
    try {
      await copyInto(root, spec(['d'], '/d'), warn);
      await copyInto(root, spec(['d/pipe'], '/p'), warn);
    } finally {
      server.close();
    }
    expect(await text('d/file')).toBe('x');
    for (const p of ['d/pipe', 'p']) {
      const st = await lstat(join(root, p));
      expect(st.isFIFO()).toBe(true);
      expect(st.mode & 0o777).toBe(0o640);
    }
    expect(await exists(join(root, 'd/sock'))).toBe(false);
    expect(warnings).toEqual([expect.stringMatching(/skipping \/d\/sock: sockets are not copied/)]);
  });

  test('a file replaces an existing file', async () => {
    await put(ctx, 'new', 'new');
    await put(root, 'etc/conf', 'old');
    await copyInto(root, spec(['new'], '/etc/conf'), warn);
    expect(await text('etc/conf')).toBe('new');
  });

  test('symlinks inside a copied directory are copied as symlinks, not followed', async () => {
    await put(ctx, 'd/real', 'content');
    await symlink('real', join(ctx, 'd/rel-link'));
    await symlink('/etc/passwd', join(ctx, 'd/abs-link'));
    await copyInto(root, spec(['d'], '/x/'), warn);
    expect((await lstat(join(root, 'x/rel-link'))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(root, 'x/rel-link'))).toBe('real');
    expect((await lstat(join(root, 'x/abs-link'))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(root, 'x/abs-link'))).toBe('/etc/passwd');
  });

  test('inline (heredoc) files: into a directory and to a file path, with the given mtime', async () => {
    await copyInto(root, spec([], '/etc/conf/', { inline: [{ name: 'a.conf', content: 'A\n' }, { name: 'b.conf', content: 'B\n' }] }), warn);
    expect(await text('etc/conf/a.conf')).toBe('A\n');
    expect(await text('etc/conf/b.conf')).toBe('B\n');
    await copyInto(root, spec([], '/single', { inline: [{ name: 'EOF', content: 'one\n' }] }), warn);
    expect(await text('single')).toBe('one\n');
    const st = await stat(join(root, 'single'));
    expect(st.mtime.getTime()).toBe(1_700_000_000 * 1000);
    expect(st.mode & 0o777).toBe(0o644);
  });

  test('a sources from a rootfs follow links inside that rootfs only', async () => {
    const stage = join(base, 'stage');
    await put(stage, 'usr/bin/tool', 'stage tool');
    await symlink('/usr/bin', join(stage, 'bin'));
    await copyInto(root, spec(['/bin/tool'], '/tool', { sourceRoot: stage, sourceKind: 'rootfs' }), warn);
    expect(await text('tool')).toBe('stage tool');
  });

  test('wildcards in a rootfs source resolve links inside that rootfs', async () => {
    const stage = join(base, 'stage');
    await put(stage, 'usr/bin/aa.sh', 'aa');
    await put(stage, 'usr/bin/bb.sh', 'bb');
    await symlink('/usr/bin', join(stage, 'bin'));
    await copyInto(root, spec(['/bin/*.sh'], '/scripts/', { sourceRoot: stage, sourceKind: 'rootfs' }), warn);
    expect((await readdir(join(root, 'scripts'))).sort()).toEqual(['aa.sh', 'bb.sh']);
  });

  describe('safety', () => {
    let sentinel: string;
    beforeEach(async () => {
      sentinel = join(base, 'outside-sentinel-dir');
      await mkdir(sentinel);
    });

    test('an absolute symlink in the target root does not redirect the copy outside it', async () => {
      await put(ctx, 'payload', 'evil');
      await symlink(sentinel, join(root, 'bin'));
      await copyInto(root, spec(['payload'], '/bin/sh'), warn);
      expect(await readdir(sentinel)).toEqual([]);
      // the link is resolved as inside the image: <root><sentinel>/sh
      expect(await readFile(join(root, sentinel, 'sh'), 'utf8')).toBe('evil');
    });

    test('an absolute symlink to an existing directory inside root is followed inside root', async () => {
      await put(ctx, 'payload', 'evil');
      await mkdir(join(root, sentinel), { recursive: true });
      await symlink(sentinel, join(root, 'bin'));
      await copyInto(root, spec(['payload'], '/bin/'), warn);
      expect(await readdir(sentinel)).toEqual([]);
      expect(await readFile(join(root, sentinel, 'payload'), 'utf8')).toBe('evil');
    });

    test('a relative ../../.. symlink cannot climb out of the root', async () => {
      await put(ctx, 'payload', 'evil');
      await symlink('../../..', join(root, 'x'));
      await copyInto(root, spec(['payload'], `/x${sentinel}/`), warn);
      expect(await readdir(sentinel)).toEqual([]);
      expect(await readFile(join(root, sentinel, 'payload'), 'utf8')).toBe('evil');
      await copyInto(root, spec(['payload'], '/x/escaped'), warn);
      expect(await text('escaped')).toBe('evil');
    });

    test('a directory copy through a symlinked destination stays inside root', async () => {
      await put(ctx, 'tree/a', 'A');
      await put(ctx, 'tree/sub/b', 'B');
      await symlink(sentinel, join(root, 'target'));
      await copyInto(root, spec(['tree'], '/target'), warn);
      expect(await readdir(sentinel)).toEqual([]);
      expect(await readFile(join(root, sentinel, 'sub/b'), 'utf8')).toBe('B');
    });

    test('a context source ../../etc/passwd resolves inside the context', async () => {
      await put(ctx, 'etc/passwd', 'context passwd');
      await copyInto(root, spec(['../../etc/passwd'], '/p'), warn);
      expect(await text('p')).toBe('context passwd');
    });

    test('a context source ../../etc/passwd that is not in the context is not found', async () => {
      await expect(copyInto(root, spec(['../../etc/passwd'], '/p'), warn)).rejects.toThrow(/not found/);
      expect(await exists(join(root, 'p'))).toBe(false);
    });

    test('a context symlink pointing outside does not read the host file', async () => {
      await symlink('/etc/hostname', join(ctx, 'leak'));
      await expect(copyInto(root, spec(['leak'], '/leak'), warn)).rejects.toThrow(/not found/);
      await symlink('../../../../../../etc', join(ctx, 'up'));
      await expect(copyInto(root, spec(['up/hostname'], '/h'), warn)).rejects.toThrow(/not found/);
    });
  });
});

describe('COPY --from owners and hard links (BuildKit answers, moby#38599)', () => {
  const fromStage = (sources: string[], dest: string, extra: Partial<CopySpec> = {}): CopySpec =>
    spec(sources, dest, { sourceKind: 'rootfs', sourceOwner: (_p, st) => ({ uid: st.uid, gid: st.gid }), ...extra });
  const owner = async (rel: string) => {
    const st = await lstat(join(root, rel));
    return `${st.uid}:${st.gid}`;
  };

  // Runs as root (scripts/test): chown needs it.
  test('without --chown each entry keeps its source owner; a created destination is 0:0; an existing one is untouched', async () => {
    const { chown } = await import('node:fs/promises');
    await put(ctx, 'file');
    await chown(join(ctx, 'file'), 100, 200);
    await put(ctx, 'dir/subdir/nested');
    await chown(join(ctx, 'dir'), 100, 200);
    await chown(join(ctx, 'dir/subdir'), 101, 201);
    await chown(join(ctx, 'dir/subdir/nested'), 102, 202);
    await mkdir(join(root, 'existing'));
    await chown(join(root, 'existing'), 500, 600);
    await copyInto(root, fromStage(['/file'], '/file'), warn);
    await copyInto(root, fromStage(['/dir'], '/dir'), warn);
    await copyInto(root, fromStage(['/dir/.'], '/existing'), warn);
    await copyInto(root, fromStage(['/file'], '/chowned', { sourceOwner: undefined, owner: { uid: 7, gid: 8 } }), warn);
    expect(await owner('file')).toBe('100:200');
    expect(await owner('dir')).toBe('0:0');
    expect(await owner('dir/subdir')).toBe('101:201');
    expect(await owner('dir/subdir/nested')).toBe('102:202');
    expect(await owner('existing')).toBe('500:600');
    expect(await owner('existing/subdir')).toBe('101:201');
    expect(await owner('chowned')).toBe('7:8');
  });

  test('files of one source that share an inode stay linked; separate sources do not', async () => {
    const { link } = await import('node:fs/promises');
    await put(ctx, 'd/a', 'same');
    await link(join(ctx, 'd/a'), join(ctx, 'd/b'));
    await copyInto(root, fromStage(['/d'], '/out/'), warn);
    await copyInto(root, fromStage(['/d/a', '/d/b'], '/two/'), warn);
    const [a, b] = [await lstat(join(root, 'out/a')), await lstat(join(root, 'out/b'))];
    expect(a.ino).toBe(b.ino);
    expect(a.nlink).toBe(2);
    expect((await lstat(join(root, 'two/a'))).ino).not.toBe((await lstat(join(root, 'two/b'))).ino);
  });
});

describe('xattrs are copied with the files (BuildKit\'s copier keeps them)', () => {
  test('user.* xattrs of a file and of a nested directory reach the destination', async () => {
    const { execFileSync } = await import('node:child_process');
    await put(ctx, 'd/sub/f', 'x');
    await put(ctx, 'top', 't');
    // A filesystem without user xattrs fails here, loudly: the test would prove nothing there.
    execFileSync('setfattr', ['-n', 'user.color', '-v', 'blue', join(ctx, 'top')]);
    execFileSync('setfattr', ['-n', 'user.inner', '-v', '1', join(ctx, 'd/sub/f')]);
    execFileSync('setfattr', ['-n', 'user.dir', '-v', 'yes', join(ctx, 'd/sub')]);
    await copyInto(root, spec(['top', 'd'], '/out/'), warn);
    const get = (p: string, n: string) => execFileSync('getfattr', ['--only-values', '-n', n, join(root, p)], { encoding: 'utf8' });
    expect(get('out/top', 'user.color')).toBe('blue');
    expect(get('out/sub/f', 'user.inner')).toBe('1');
    expect(get('out/sub', 'user.dir')).toBe('yes');
  });
});
