import { ShellExpansionError, ShellLex } from '../../src/frontend/index.js';

const env = { v: 'abcabc', p: '/usr/local/bin/app', e: '', s: 'a b  c' };

describe('ShellLex pattern operations (not covered by the upstream tables)', () => {
  const cases: [string, string][] = [
    ['${v#a*}', 'bcabc'],
    ['${v##a*}', ''],
    ['${v%b*}', 'abca'],
    ['${v%%b*}', 'a'],
    ['${p##*/}', 'app'],
    ['${p%/*}', '/usr/local/bin'],
    ['${v#?b}', 'cabc'],
    ['${v#\\*}', 'abcabc'],
    ['${v/b/X}', 'aXcabc'],
    ['${v//b/X}', 'aXcaXc'],
    ['${v//*/X}', 'X'],
    ['${p/\\//:}', ':usr/local/bin/app'],
    ['${u/a/b}', ''],
  ];
  for (const [word, expected] of cases) {
    test(word, () => expect(new ShellLex().processWord(word, env)).toBe(expected));
  }

  test.each(['${v:#a}', '${v:%a}', '${v/a', '${v#\\x}'])('%s is an error', (word) => {
    expect(() => new ShellLex().processWord(word, env)).toThrow(ShellExpansionError);
  });
});

describe('ShellLex behaviour', () => {
  test('accepts a Map as environment', () => {
    expect(new ShellLex().processWord('$v-${e:-d}', new Map(Object.entries(env)))).toBe('abcabc-d');
  });

  test('${VAR?message} error text', () => {
    expect(() => new ShellLex().processWord('${u?must be set}', env)).toThrow(/u: must be set/);
    expect(() => new ShellLex().processWord('${e:?}', env)).toThrow(/e: is not allowed to be empty/);
  });

  test('reports matched and unmatched variables', () => {
    const r = new ShellLex().process('$v ${u:-x} $e', env);
    expect(r.result).toBe('abcabc x ');
    expect([...r.matched].sort()).toEqual(['e', 'v']);
    expect([...r.unmatched]).toEqual(['u']);
  });

  test('backtick escape token', () => {
    const lex = new ShellLex('`');
    expect(lex.processWord('C:\\dir `$v "a`"b"', env)).toBe('C:\\dir $v a"b');
  });

  test('word splitting keeps a heredoc marker with its delimiter', () => {
    expect(new ShellLex().processWords('cat << EOF $s', env)).toEqual(['cat', '<< EOF', 'a', 'b', 'c']);
  });

  test('variable names are case-sensitive', () => {
    expect(new ShellLex().processWord('$V$v', env)).toBe('abcabc');
  });

  test('options: raw quotes, raw escapes, skip unset', () => {
    const lex = new ShellLex('\\', { rawQuotes: true, rawEscapes: true, skipUnsetEnv: true });
    expect(lex.processWord(`'a' "b" \\c $u \${u:-x} $v`, env)).toBe(`'a' "b" \\c $u \${u:-x} abcabc`);
  });
});
