// COPY/ADD and the build context: .dockerignore, --exclude, --parents,
// symbolic --chmod, and context symlinks.
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseChmod } from '../../src/engine/chmod.js';
import { copyInto, CopyError, type CopySpec } from '../../src/engine/copy.js';
import { IgnoreMatcher, parseIgnoreFile } from '../../src/engine/dockerignore.js';

let base: string;
let ctx: string;
let root: string;
const warn = () => undefined;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'stowage-copyctx-'));
  ctx = join(base, 'ctx');
  root = join(base, 'root');
  await mkdir(ctx);
  await mkdir(root);
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

function spec(sources: string[], dest: string, extra: Partial<CopySpec> = {}): CopySpec {
  return { sourceRoot: ctx, sourceKind: 'context', sources, inline: [], dest, owner: { uid: 0, gid: 0 }, inlineMtime: 1_700_000_000, ...extra };
}

async function put(rel: string, content = rel, mode?: number): Promise<void> {
  await mkdir(join(ctx, rel, '..'), { recursive: true });
  await writeFile(join(ctx, rel), content);
  if (mode !== undefined) await chmod(join(ctx, rel), mode);
}

const ignore = (...lines: string[]) => new IgnoreMatcher(parseIgnoreFile(lines.join('\n')));
const exists = (rel: string) => lstat(join(root, rel)).then(() => true, () => false);

/** Every path under DIR of the target root, sorted, directories with a trailing /. */
async function tree(dir = ''): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const child = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(root, child));
      out.push(st.isDirectory() ? `${child}/` : child);
      if (st.isDirectory()) await walk(child);
    }
  };
  await walk(dir);
  return out;
}

describe('.dockerignore', () => {
  beforeEach(async () => {
    await put('Dockerfile');
    await put('.dockerignore');
    await put('app/main.go');
    await put('app/main_test.go');
    await put('app/vendor/lib.go');
    await put('docs/guide.md');
    await put('docs/keep.md');
    await put('build/out.bin');
    await put('notes.md');
    await put('README.md');
  });

  const patterns = () => ignore('# comment', '**/*_test.go', 'docs', '!docs/keep.md', 'build/', '*.md', '!README.md', 'Dockerfile');

  test('COPY . leaves out what is excluded, keeps exceptions and the directories they need', async () => {
    await copyInto(root, spec(['.'], '/ctx/', { ignore: patterns() }), warn);
    expect(await tree('ctx')).toEqual([
      'ctx/.dockerignore',
      'ctx/README.md',
      'ctx/app/',
      'ctx/app/main.go',
      'ctx/app/vendor/',
      'ctx/app/vendor/lib.go',
      'ctx/docs/',
      'ctx/docs/keep.md',
    ]);
  });

  test('a directory re-created for an exception keeps its source mode', async () => {
    await chmod(join(ctx, 'docs'), 0o750);
    await copyInto(root, spec(['.'], '/ctx/', { ignore: patterns() }), warn);
    expect((await stat(join(root, 'ctx/docs'))).mode & 0o7777).toBe(0o750);
  });

  test('naming an excluded file is "not found", also the Dockerfile', async () => {
    await expect(copyInto(root, spec(['notes.md'], '/n'), warn)).resolves.toBeUndefined();
    await expect(copyInto(root, spec(['notes.md'], '/n2', { ignore: patterns() }), warn)).rejects.toThrow(/not found/);
    await expect(copyInto(root, spec(['Dockerfile'], '/d', { ignore: patterns() }), warn)).rejects.toThrow(CopyError);
    await expect(copyInto(root, spec(['build/out.bin'], '/b', { ignore: patterns() }), warn)).rejects.toThrow(/not found/);
  });

  test('an excluded directory with an exception inside can be named; only the exception is copied', async () => {
    await copyInto(root, spec(['docs'], '/d/', { ignore: patterns() }), warn);
    expect(await tree('d')).toEqual(['d/keep.md']);
  });

  test('wildcards do not see excluded paths', async () => {
    await copyInto(root, spec(['*.md'], '/m/', { ignore: patterns() }), warn);
    expect(await tree('m')).toEqual(['m/README.md']);
    // Only excluded files match: an empty wildcard, so nothing is copied (BuildKit allows empty wildcards).
    await copyInto(root, spec(['b*'], '/x/', { ignore: patterns() }), warn);
    await expect(lstat(join(root, 'x'))).rejects.toThrow(/ENOENT/);
  });

  test('a symlink cannot reach an excluded path', async () => {
    await symlink('build', join(ctx, 'link'));
    await expect(copyInto(root, spec(['link/out.bin'], '/o', { ignore: patterns() }), warn)).rejects.toThrow(/not found/);
  });

  test('does not apply to a --from source', async () => {
    await copyInto(root, spec(['notes.md'], '/n', { ignore: patterns(), sourceKind: 'rootfs' }), warn);
    expect(await readFile(join(root, 'n'), 'utf8')).toBe('notes.md');
  });
});

describe('--exclude', () => {
  test('patterns match entries relative to the directory source', async () => {
    await put('dir1/a.1');
    await put('dir1/a.2');
    await put('dir1/dir2/a.1');
    await put('dir1/dir2/a.2');
    await copyInto(root, spec(['dir1'], '/one/', { exclude: ['*.1'] }), warn);
    // BuildKit #5509: *.1 is the top level only, as in .dockerignore
    expect(await tree('one')).toEqual(['one/a.2', 'one/dir2/', 'one/dir2/a.1', 'one/dir2/a.2']);
    await copyInto(root, spec(['dir1'], '/all/', { exclude: ['**/*.1'] }), warn);
    expect(await tree('all')).toEqual(['all/a.2', 'all/dir2/', 'all/dir2/a.2']);
  });

  test('repeatable, with exceptions and excluded directories', async () => {
    await put('src/a.txt');
    await put('src/b.md');
    await put('src/c.js');
    await put('src/logs/x.log');
    await put('src/logs/keep.log');
    await copyInto(root, spec(['src'], '/s/', { exclude: ['*.txt', '*.md', 'logs', '!logs/keep.log'] }), warn);
    expect(await tree('s')).toEqual(['s/c.js', 's/logs/', 's/logs/keep.log']);
  });

  test('the Dockerfile reference example: COPY --exclude=*.txt hom* /mydir/', async () => {
    await put('home.txt');
    await put('homer.md');
    await put('homedir/inner.txt');
    await put('homedir/inner.md');
    await copyInto(root, spec(['hom*'], '/mydir/', { exclude: ['*.txt'] }), warn);
    expect(await tree('mydir')).toEqual(['mydir/homer.md', 'mydir/inner.md']);
  });

  test('applies to --from sources too', async () => {
    await put('d/x.log');
    await put('d/y');
    await copyInto(root, spec(['/d'], '/d/', { sourceKind: 'rootfs', exclude: ['*.log'] }), warn);
    expect(await tree('d')).toEqual(['d/y']);
  });

  test('a bad pattern is a copy error', async () => {
    await put('a');
    await expect(copyInto(root, spec(['a'], '/a', { exclude: ['[x'] }), warn)).rejects.toThrow(/--exclude: syntax error/);
  });
});

describe('--parents', () => {
  test('the Dockerfile reference example keeps x/ and y/', async () => {
    await put('x/a.txt', 'xa');
    await put('y/a.txt', 'ya');
    await copyInto(root, spec(['./x/a.txt', './y/a.txt'], '/no_parents/'), warn);
    expect(await tree('no_parents')).toEqual(['no_parents/a.txt']);
    await copyInto(root, spec(['./x/a.txt', './y/a.txt'], '/parents/', { parents: true }), warn);
    expect(await tree('parents')).toEqual(['parents/x/', 'parents/x/a.txt', 'parents/y/', 'parents/y/a.txt']);
    expect(await readFile(join(root, 'parents/y/a.txt'), 'utf8')).toBe('ya');
  });

  test('a /./ pivot keeps only what follows it', async () => {
    await put('x/y/a.txt');
    await put('x/y/b.txt');
    await put('x/y/c.md');
    await copyInto(root, spec(['./x/./y/*.txt'], '/parents/', { parents: true }), warn);
    expect(await tree('parents')).toEqual(['parents/y/', 'parents/y/a.txt', 'parents/y/b.txt']);
  });

  test('** matches any number of directories', async () => {
    await put('src/a.txt');
    await put('src/x/b.txt');
    await put('src/x/y/c.txt');
    await put('src/x/y/d.md');
    await copyInto(root, spec(['./src/**/*.txt'], '/parents/', { parents: true }), warn);
    expect(await tree('parents')).toEqual([
      'parents/src/', 'parents/src/a.txt', 'parents/src/x/', 'parents/src/x/b.txt', 'parents/src/x/y/', 'parents/src/x/y/c.txt',
    ]);
  });

  test('a directory source keeps its path; the destination need not end in /', async () => {
    await put('lib/one/f');
    await chmod(join(ctx, 'lib'), 0o750);
    await copyInto(root, spec(['lib/one'], '/out', { parents: true }), warn);
    expect(await tree('out')).toEqual(['out/lib/', 'out/lib/one/', 'out/lib/one/f']);
    expect((await stat(join(root, 'out/lib'))).mode & 0o7777).toBe(0o750);
  });

  test('a missing path without wildcards is not found; a wildcard may match nothing', async () => {
    await expect(copyInto(root, spec(['nope/x'], '/p/', { parents: true }), warn)).rejects.toThrow(/not found/);
    await copyInto(root, spec(['nope/*.x'], '/q/', { parents: true }), warn);
    expect(await tree('q')).toEqual([]);
  });

  test('with --exclude (relative to the pivot) and .dockerignore', async () => {
    await put('p/a/keep.txt');
    await put('p/a/skip.log');
    await put('p/a/secret.txt');
    await copyInto(root, spec(['p/./a'], '/o/', { parents: true, exclude: ['**/*.log'], ignore: ignore('p/a/secret.txt') }), warn);
    expect(await tree('o')).toEqual(['o/a/', 'o/a/keep.txt']);
  });
});

describe('--chmod', () => {
  test('symbolic modes apply to each file and nested directory, not to the destination', async () => {
    await put('t/run.sh', 'x', 0o755);
    await put('t/data.txt', 'x', 0o666);
    await put('t/sub/f', 'x', 0o600);
    await chmod(join(ctx, 't/sub'), 0o700);
    await copyInto(root, spec(['t'], '/app', { chmod: parseChmod('u+x,go-w') }), warn);
    expect((await stat(join(root, 'app/run.sh'))).mode & 0o7777).toBe(0o755);
    expect((await stat(join(root, 'app/data.txt'))).mode & 0o7777).toBe(0o744);
    expect((await stat(join(root, 'app/sub/f'))).mode & 0o7777).toBe(0o700);
    expect((await stat(join(root, 'app/sub'))).mode & 0o7777).toBe(0o700);
    expect((await stat(join(root, 'app'))).mode & 0o7777).toBe(0o755);
    await copyInto(root, spec(['t'], '/rx', { chmod: parseChmod('a+rX') }), warn);
    expect((await stat(join(root, 'rx/sub'))).mode & 0o7777).toBe(0o755);
    expect((await stat(join(root, 'rx/sub/f'))).mode & 0o7777).toBe(0o644);
    expect((await stat(join(root, 'rx/run.sh'))).mode & 0o7777).toBe(0o755);
  });

  test('octal from parseChmod and heredoc files', async () => {
    await put('f', 'x', 0o600);
    await copyInto(root, spec(['f'], '/f', { chmod: parseChmod('0750') }), warn);
    expect((await stat(join(root, 'f'))).mode & 0o7777).toBe(0o750);
    await copyInto(root, spec([], '/h', { inline: [{ name: 'EOF', content: 'x' }], chmod: parseChmod('u+x') }), warn);
    expect((await stat(join(root, 'h'))).mode & 0o7777).toBe(0o744);
  });
});

describe('symlinks in the context', () => {
  test('x -> /etc is copied as a symlink by COPY . and never followed out of the context', async () => {
    await symlink('/etc', join(ctx, 'x'));
    await copyInto(root, spec(['.'], '/ctx/'), warn);
    expect((await lstat(join(root, 'ctx/x'))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(root, 'ctx/x'))).toBe('/etc');
  });

  test('COPY x/passwd does not read the host /etc/passwd', async () => {
    await symlink('/etc', join(ctx, 'x'));
    await expect(copyInto(root, spec(['x/passwd'], '/p'), warn)).rejects.toThrow(/not found/);
    expect(await exists('p')).toBe(false);
  });

  test('COPY x follows the link inside the context (BuildKit FollowSymlinks): /etc is <context>/etc', async () => {
    await symlink('/etc', join(ctx, 'x'));
    await expect(copyInto(root, spec(['x'], '/x'), warn)).rejects.toThrow(/not found/);
    await put('etc/passwd', 'context passwd');
    await copyInto(root, spec(['x/passwd'], '/p'), warn);
    expect(await readFile(join(root, 'p'), 'utf8')).toBe('context passwd');
    await copyInto(root, spec(['x'], '/xdir/'), warn);
    expect(await tree('xdir')).toEqual(['xdir/passwd']);
  });

  test('a symlink inside a copied directory stays a symlink', async () => {
    await put('d/real');
    await symlink('/etc/passwd', join(ctx, 'd/abs'));
    await copyInto(root, spec(['d'], '/d/', { exclude: ['real'] }), warn);
    expect(await tree('d')).toEqual(['d/abs']);
    expect(await readlink(join(root, 'd/abs'))).toBe('/etc/passwd');
  });
});

describe('wildcards in sources without --parents (Go filepath.Match: no **)', () => {
  test('** is * within one path segment, not any number of directories', async () => {
    await put('top.txt');
    await put('a/one.txt');
    await put('a/b/two.txt');
    await copyInto(root, spec(['**/*.txt'], '/w/'), warn);
    expect(await tree('w')).toEqual(['w/one.txt']);
  });
});
