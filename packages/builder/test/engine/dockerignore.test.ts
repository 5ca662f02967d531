import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { goClean, IgnoreMatcher, IgnorePatternError, loadDockerignore, parseIgnoreFile } from '../../src/engine/dockerignore.js';

/** Whether a walk of the context leaves PATH out, for the lines of a .dockerignore. */
const excluded = (lines: string[], path: string) => new IgnoreMatcher(parseIgnoreFile(lines.join('\n'))).excludes(path);

// Each row: .dockerignore lines, a path in the context, whether it is left out.
// From the .dockerignore section of the Docker docs (build context page) and
// moby/patternmatcher's documented behaviour.
describe('.dockerignore patterns (Docker docs examples)', () => {
  test.each<[string, string[], string, boolean]>([
    ['# comment is ignored', ['# comment'], '# comment', false],
    ['*/temp* excludes temp* in an immediate subdirectory', ['*/temp*'], 'somedir/temporary.txt', true],
    ['*/temp* excludes a directory named temp there', ['*/temp*'], 'somedir/temp', true],
    ['*/temp* excludes what is inside that directory', ['*/temp*'], 'somedir/temp/file', true],
    ['*/temp* does not reach the root', ['*/temp*'], 'temporary.txt', false],
    ['*/temp* does not reach two levels down', ['*/temp*'], 'a/b/temporary.txt', false],
    ['*/*/temp* excludes two levels down', ['*/*/temp*'], 'somedir/subdir/temporary.txt', true],
    ['*/*/temp* not one level down', ['*/*/temp*'], 'somedir/temporary.txt', false],
    ['temp? excludes tempa at the root', ['temp?'], 'tempa', true],
    ['temp? excludes tempb at the root', ['temp?'], 'tempb', true],
    ['temp? needs exactly one more character', ['temp?'], 'temp', false],
    ['temp? is anchored at the root', ['temp?'], 'sub/tempa', false],
    ['**/*.go excludes .go files at the root', ['**/*.go'], 'main.go', true],
    ['**/*.go excludes .go files at any depth', ['**/*.go'], 'a/b/c/x.go', true],
    ['**/*.go does not match another extension', ['**/*.go'], 'a/x.gox', false],
    ['*.md then !README.md: markdown is out', ['*.md', '!README.md'], 'notes.md', true],
    ['*.md then !README.md: README.md is in', ['*.md', '!README.md'], 'README.md', false],
    ['*.md only matches at the root', ['*.md'], 'docs/notes.md', false],
    ['last match wins: README-secret.md after the exception is out', ['*.md', '!README*.md', 'README-secret.md'], 'README-secret.md', true],
    ['last match wins: other README files are in', ['*.md', '!README*.md', 'README-secret.md'], 'README-a.md', false],
    ['last match wins: the exception last re-includes README-secret.md', ['*.md', 'README-secret.md', '!README*.md'], 'README-secret.md', false],
    ['/foo/bar excludes foo/bar', ['/foo/bar'], 'foo/bar', true],
    ['foo/bar excludes foo/bar', ['foo/bar'], 'foo/bar', true],
    ['foo/bar excludes what is inside foo/bar', ['foo/bar'], 'foo/bar/x', true],
    ['foo/bar does not exclude bar', ['foo/bar'], 'bar', false],
    ['foo/bar does not exclude foo', ['foo/bar'], 'foo', false],
    ['patterns are cleaned: ./a/ is a', ['./a/'], 'a/x', true],
    ['patterns are cleaned: a/../b is b', ['a/../b'], 'b', true],
    ['surrounding spaces are trimmed', ['   spaced   '], 'spaced', true],
    ['** alone excludes everything', ['**'], 'any/thing', true],
    ['dir/** excludes what is in dir', ['dir/**'], 'dir/x/y', true],
    ['dir/** does not exclude dir itself', ['dir/**'], 'dir', false],
    ['a/**/b matches zero directories between', ['a/**/b'], 'a/b', true],
    ['a/**/b matches several directories between', ['a/**/b'], 'a/x/y/b', true],
    ['**/foo matches foo at the root', ['**/foo'], 'foo', true],
    ['**/foo matches foo below', ['**/foo'], 'x/y/foo', true],
    ['**/foo does not match xfoo', ['**/foo'], 'xfoo', false],
    ['an excluded directory excludes its contents', ['docs'], 'docs/a/b.md', true],
    ['an exception re-includes a file in an excluded directory', ['docs', '!docs/keep.md'], 'docs/keep.md', false],
    ['the rest of that directory stays out', ['docs', '!docs/keep.md'], 'docs/other.md', true],
    ['a wildcard exception reaches into excluded directories', ['*', '!**/*.py'], 'sub/deep/x.py', false],
    ['and only what it matches', ['*', '!**/*.py'], 'sub/deep/x.txt', true],
    ['? does not match /', ['a?b'], 'a/b', false],
    ['* does not cross /', ['a*'], 'ab/c', true],
    ['a character class', ['[ab].txt'], 'b.txt', true],
    ['a negated character class', ['[^ab].txt'], 'b.txt', false],
    ['a range', ['file[0-9]'], 'file7', true],
    ['a backslash escapes a wildcard', ['\\*.txt'], '*.txt', true],
    ['an escaped wildcard is literal', ['\\*.txt'], 'a.txt', false],
    ['dots are literal', ['a.b'], 'axb', false],
    ['regexp characters are literal', ['a+(b)|{c}$'], 'a+(b)|{c}$', true],
    ['the Dockerfile can be excluded like any file', ['Dockerfile', '.dockerignore'], 'Dockerfile', true],
  ])('%s', (_name, lines, path, expected) => {
    expect(excluded(lines, path)).toBe(expected);
  });

  test('a directory with no exception inside it is skipped whole; one with an exception inside is walked', () => {
    expect(new IgnoreMatcher(['docs']).skipsDir('docs')).toBe(true);
    expect(new IgnoreMatcher(['docs', '!other/x']).skipsDir('docs')).toBe(true);
    expect(new IgnoreMatcher(['docs', '!docs/keep.md']).skipsDir('docs')).toBe(false);
    expect(new IgnoreMatcher(['*', '!**/*.py']).skipsDir('sub')).toBe(false);
    expect(new IgnoreMatcher(['*', '!src/**']).skipsDir('src')).toBe(false);
  });

  test('bad patterns are rejected, like patternmatcher.New', () => {
    expect(() => new IgnoreMatcher(['!'])).toThrow(IgnorePatternError);
    expect(() => new IgnoreMatcher(['[abc'])).toThrow(/syntax error in pattern/);
    expect(() => new IgnoreMatcher(['[]a]'])).toThrow(/syntax error/);
    expect(() => new IgnoreMatcher(['a\\'])).toThrow(/syntax error/);
    expect(() => new IgnoreMatcher(['[a-]'])).toThrow(/syntax error/);
  });

  test('Go filepath.Clean', () => {
    expect(goClean('')).toBe('.');
    expect(goClean('a//b/')).toBe('a/b');
    expect(goClean('./a/./b/..')).toBe('a');
    expect(goClean('/')).toBe('/');
    expect(goClean('../x')).toBe('../x');
  });
});

describe('parseIgnoreFile (ignorefile.ReadAll)', () => {
  test('comments, blank lines, BOM, CRLF, leading slash, spaced exceptions', () => {
    const text = '\uFEFF# a comment\r\n\r\n   \n/abs/path\n!  kept \n  # not a comment\nsub/dir/\n';
    expect(parseIgnoreFile(text)).toEqual(['abs/path', '!kept', '# not a comment', 'sub/dir']);
  });

  test('a lone / stays /', () => {
    expect(parseIgnoreFile('/\n')).toEqual(['/']);
  });
});

describe('loadDockerignore', () => {
  let base: string;
  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'stowage-ignore-'));
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  test('no file: nothing is excluded', async () => {
    const m = await loadDockerignore(base, join(base, 'Dockerfile'));
    expect(m.empty).toBe(true);
    expect(m.excludes('anything')).toBe(false);
  });

  test('.dockerignore at the context root', async () => {
    await writeFile(join(base, '.dockerignore'), '*.log\n');
    const m = await loadDockerignore(base, join(base, 'Dockerfile'));
    expect(m.excludes('a.log')).toBe(true);
  });

  test('<Dockerfile>.dockerignore beside a named Dockerfile takes precedence', async () => {
    await writeFile(join(base, '.dockerignore'), '*.log\n');
    await mkdir(join(base, 'build'));
    await writeFile(join(base, 'build/app.Dockerfile.dockerignore'), '*.tmp\n');
    const m = await loadDockerignore(base, join(base, 'build/app.Dockerfile'));
    expect(m.excludes('a.tmp')).toBe(true);
    expect(m.excludes('a.log')).toBe(false);
    // another Dockerfile name does not pick it up
    const other = await loadDockerignore(base, join(base, 'build/other.Dockerfile'));
    expect(other.excludes('a.log')).toBe(true);
  });

  test('a FIFO, a link to /dev/zero or a huge file is refused at once, not read', async () => {
    const { execFileSync } = await import('node:child_process');
    const { symlink } = await import('node:fs/promises');
    execFileSync('mkfifo', [join(base, '.dockerignore')]);
    await expect(loadDockerignore(base, join(base, 'Dockerfile'))).rejects.toThrow(/\.dockerignore is a FIFO, not a regular file/);
    await rm(join(base, '.dockerignore'));
    await symlink('/dev/zero', join(base, '.dockerignore'));
    // Refused before it is opened: it leads out of the context.
    await expect(loadDockerignore(base, join(base, 'Dockerfile'))).rejects.toThrow(/\.dockerignore is a symbolic link that leads out of/);
    await rm(join(base, '.dockerignore'));
    await writeFile(join(base, '.dockerignore'), '#'.repeat(4 * 1024 * 1024 + 1));
    await expect(loadDockerignore(base, join(base, 'Dockerfile'))).rejects.toBeInstanceOf(IgnorePatternError);
  });

  test('a bad pattern names the file', async () => {
    await writeFile(join(base, '.dockerignore'), '[oops\n');
    await expect(loadDockerignore(base, join(base, 'Dockerfile'))).rejects.toThrow(/\.dockerignore: syntax error in pattern/);
  });
});
