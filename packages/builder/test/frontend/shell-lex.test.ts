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

describe('bounds (hostile words end fast, with ShellExpansionError)', () => {
  const lex = new ShellLex();

  test('wildcard patterns take linear time, not exponential (a RegExp took 30 s for k=3 on 300 characters)', () => {
    const long = { a: 'a'.repeat(20_000) };
    const started = Date.now();
    expect(lex.processWord(`\${a#${'*a'.repeat(30)}*b}`, long)).toBe(long.a);
    expect(lex.processWord(`\${a%%${'a*'.repeat(30)}b*}`, long)).toBe(long.a);
    expect(lex.processWord(`\${a//${'*a'.repeat(30)}*b/x}`, long)).toBe(long.a);
    expect(lex.processWord('${a##*a}', long)).toBe('');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  test('a pattern too costly for its value is refused', () => {
    const big = { a: 'ab'.repeat(500_000) };
    expect(() => lex.processWord(`\${a//${'*a'.repeat(200)}*c/x}`, big)).toThrow(/pattern too complex/);
  });

  test('substitutions nested more than 100 deep are refused; 100 are fine', () => {
    const nest = (n: number) => '${a:-'.repeat(n) + 'x' + '}'.repeat(n);
    expect(lex.processWord(nest(100), {})).toBe('x');
    expect(() => lex.processWord(nest(101), {})).toThrow(ShellExpansionError);
    expect(() => lex.processWord(nest(101), {})).toThrow(/nested more than 100 deep/);
  });

  test('expansions and words over 1 MiB are refused, and the message quotes only the start', () => {
    const env2 = { a: 'x'.repeat(300_000) };
    expect(lex.processWord('$a$a$a', env2)).toHaveLength(900_000);
    expect(() => lex.processWord('$a$a$a$a', env2)).toThrow(/expansion longer than 1048576 characters/);
    let err: unknown;
    try {
      lex.processWord('y'.repeat(2_000_000), {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShellExpansionError);
    expect((err as Error).message).toMatch(/word longer than 1048576 characters/);
    expect((err as Error).message.length).toBeLessThan(400);
  });
});
