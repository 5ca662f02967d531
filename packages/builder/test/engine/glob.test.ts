import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expandGlob, hasGlob, segmentRegExp } from '../../src/engine/glob.js';

const matches = (pattern: string, name: string) => segmentRegExp(pattern).test(name);

describe('segmentRegExp (Go filepath.Match syntax)', () => {
  test.each([
    ['*', 'abc', true],
    ['*', '', true],
    ['*', '.hidden', true],
    ['*.txt', 'a.txt', true],
    ['*.txt', 'a.txt.bak', false],
    ['*.txt', 'atxt', false],
    ['a?c', 'abc', true],
    ['a?c', 'ac', false],
    ['a?c', 'abbc', false],
    ['[a-c]x', 'bx', true],
    ['[a-c]x', 'dx', false],
    // Go's filepath.Match: `!` is an ordinary class member, not a negation (BuildKit, checked with the oracle).
    ['[!x]y', 'ay', false],
    ['[!x]y', 'xy', true],
    ['[!x]y', '!y', true],
    ['[^x]y', 'xy', false],
    ['[^x]y', 'zy', true],
    ['[abc]', 'b', true],
    ['[abc]', 'd', false],
    ['[a-cx-z]', 'y', true],
    ['[a-cx-z]', 'm', false],
    ['\\*', '*', true],
    ['\\*', 'a', false],
    ['a\\?', 'a?', true],
    ['a\\?', 'ab', false],
    ['[\\*]', '*', true],
    ['[\\*]', '\\', false],
    ['[\\]]', ']', true],
    ['[\\-]', '-', true],
    ['[\\-]', 'a', false],
    ['a.b', 'a.b', true],
    ['a.b', 'axb', false],
    ['a+(b)', 'a+(b)', true],
    ['$x^', '$x^', true],
    ['é?', 'éü', true],
  ])('%s vs %s → %s', (pattern, name, expected) => {
    expect(matches(pattern, name)).toBe(expected);
  });
});

describe('hasGlob', () => {
  test('detects *, ? and [', () => {
    expect(hasGlob('a/*.txt')).toBe(true);
    expect(hasGlob('a?')).toBe(true);
    expect(hasGlob('[ab]')).toBe(true);
    expect(hasGlob('plain/path.txt')).toBe(false);
  });
});

describe('expandGlob', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'stowage-glob-'));
    for (const rel of ['a.txt', 'b.txt', '.hidden.txt', 'c.md', 'src/x.c', 'src/yy.c', 'lib/z.c', 'lib/sub/w.c']) {
      await mkdir(join(root, rel, '..'), { recursive: true });
      await writeFile(join(root, rel), rel);
    }
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('sorted matches, dot files included as in Go', async () => {
    expect(await expandGlob(root, '*.txt')).toEqual(['.hidden.txt', 'a.txt', 'b.txt']);
  });

  test('wildcards in several segments', async () => {
    expect(await expandGlob(root, '*/?.c')).toEqual(['lib/z.c', 'src/x.c']);
    expect(await expandGlob(root, '/src/*.c')).toEqual(['src/x.c', 'src/yy.c']);
  });

  test('no match gives an empty list, also under a missing directory', async () => {
    expect(await expandGlob(root, '*.rs')).toEqual([]);
    expect(await expandGlob(root, 'missing/*.c')).toEqual([]);
  });

  test('leading .. does not leave the root', async () => {
    expect(await expandGlob(root, '../../*.txt')).toEqual(['.hidden.txt', 'a.txt', 'b.txt']);
  });
});
