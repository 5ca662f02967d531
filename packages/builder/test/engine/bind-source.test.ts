import { lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BindSourceError, resolveContextSource, stageContextSource } from '../../src/engine/bind-source.js';
import { IgnoreMatcher } from '../../src/engine/dockerignore.js';

let base: string;
let ctx: string;
let n = 0;
const dest = () => join(base, `staged-${++n}`);

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'stowage-bind-'));
  ctx = join(base, 'ctx');
  await mkdir(join(ctx, 'src/lib'), { recursive: true });
  await writeFile(join(ctx, 'src/main.c'), 'int main;\n');
  await writeFile(join(ctx, 'src/lib/util.c'), 'util\n');
  await writeFile(join(ctx, 'src/secret.key'), 'key\n');
  await mkdir(join(ctx, 'node_modules/pkg'), { recursive: true });
  await writeFile(join(ctx, 'node_modules/pkg/index.js'), 'x\n');
  await writeFile(join(base, 'outside.txt'), 'outside\n');
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

async function tree(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(join(dir, rel))).sort()) {
    const p = rel ? `${rel}/${name}` : name;
    out.push(p);
    if ((await lstat(join(dir, p))).isDirectory()) out.push(...(await tree(dir, p)));
  }
  return out;
}

describe('resolveContextSource', () => {
  test('paths and links inside the context resolve', async () => {
    await symlink('src/lib', join(ctx, 'lib'));
    expect(await resolveContextSource(ctx, '/')).toBe('');
    expect(await resolveContextSource(ctx, 'src/./lib/../main.c')).toBe('src/main.c');
    expect(await resolveContextSource(ctx, '/lib/util.c')).toBe('src/lib/util.c');
  });

  test('.. out of the context, absolute links and links climbing out fail', async () => {
    await expect(resolveContextSource(ctx, '../outside.txt')).rejects.toThrow(/outside the build context/);
    await expect(resolveContextSource(ctx, 'src/../../outside.txt')).rejects.toThrow(BindSourceError);
    await symlink(join(base, 'outside.txt'), join(ctx, 'abs'));
    await expect(resolveContextSource(ctx, 'abs')).rejects.toThrow(/abs -> .* leads outside the build context/);
    await symlink('../../outside.txt', join(ctx, 'src/up'));
    await expect(resolveContextSource(ctx, 'src/up')).rejects.toThrow(/leads outside the build context/);
    await expect(resolveContextSource(ctx, 'missing')).rejects.toThrow(/not found in the build context/);
  });
});

describe('stageContextSource', () => {
  test('stages a directory without what .dockerignore excludes; the digest follows the content', async () => {
    const ignore = new IgnoreMatcher(['node_modules', '**/*.key']);
    const d1 = dest();
    const digest1 = await stageContextSource(ctx, '', ignore, d1, false);
    expect(await tree(d1)).toEqual(['src', 'src/lib', 'src/lib/util.c', 'src/main.c']);
    expect(digest1).toMatch(/^sha256:[0-9a-f]{64}$/);
    // Same content: same digest. An ignored file changing: same digest. A kept file changing: another.
    expect(await stageContextSource(ctx, '', ignore, dest(), false)).toBe(digest1);
    await writeFile(join(ctx, 'src/secret.key'), 'other\n');
    expect(await stageContextSource(ctx, '', ignore, dest(), false)).toBe(digest1);
    await writeFile(join(ctx, 'src/main.c'), 'int main(void);\n');
    expect(await stageContextSource(ctx, '', ignore, dest(), false)).not.toBe(digest1);
  });

  test('a subdirectory or a single file; an excluded source is refused', async () => {
    const ignore = new IgnoreMatcher(['**/*.key']);
    const d = dest();
    await stageContextSource(ctx, 'src/lib', ignore, d, false);
    expect(await tree(d)).toEqual(['util.c']);
    const f = dest();
    await stageContextSource(ctx, 'src/main.c', ignore, f, false);
    expect(await readFile(f, 'utf8')).toBe('int main;\n');
    await expect(stageContextSource(ctx, 'src/secret.key', ignore, dest(), false)).rejects.toThrow(/excluded by .dockerignore/);
  });

  test('an exception re-includes a file inside an excluded directory', async () => {
    const ignore = new IgnoreMatcher(['node_modules', '!node_modules/pkg/index.js']);
    const d = dest();
    await stageContextSource(ctx, '', ignore, d, false);
    expect(await tree(d)).toContain('node_modules/pkg/index.js');
  });

  test('read-only staging hard-links; writable staging copies, so writes never reach the context', async () => {
    const ro = dest();
    await stageContextSource(ctx, 'src', undefined, ro, false);
    expect((await stat(join(ro, 'main.c'))).ino).toBe((await stat(join(ctx, 'src/main.c'))).ino);
    const rw = dest();
    await stageContextSource(ctx, 'src', undefined, rw, true);
    expect((await stat(join(rw, 'main.c'))).ino).not.toBe((await stat(join(ctx, 'src/main.c'))).ino);
    await writeFile(join(rw, 'main.c'), 'changed\n');
    expect(await readFile(join(ctx, 'src/main.c'), 'utf8')).toBe('int main;\n');
  });
});
