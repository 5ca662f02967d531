/**
 * BuildKit conformance: runs the upstream parser and shell-lexer fixtures
 * (read in place from the shared folder, never copied) against our frontend.
 * The rules for reading them are in the fixtures' own README.md.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dumpNode, parse, ShellLex } from '../../src/frontend/index.js';

/** Walks up from this file to the workspace root (works from src and from dist). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot locate the repository root (no pnpm-workspace.yaml above the test)');
    dir = parent;
  }
}

const FIXTURES = process.env['STOWAGE_CONFORMANCE_DIR'] ?? resolve(repoRoot(), '..', 'shared', 'conformance', 'buildkit');

const utf8 = new TextDecoder('utf-8');
const readText = (path: string): string => utf8.decode(readFileSync(path));
const subdirs = (path: string): string[] =>
  readdirSync(path, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();

if (!existsSync(FIXTURES)) {
  test('BuildKit conformance fixtures are present', () => {
    throw new Error(
      `BuildKit conformance fixtures not found at ${FIXTURES}; set STOWAGE_CONFORMANCE_DIR or check out shared/ next to the repository`,
    );
  });
} else {
  const parserDir = join(FIXTURES, 'parser');
  const shellDir = join(FIXTURES, 'shell');

  describe('parser/testfiles', () => {
    const cases = subdirs(join(parserDir, 'testfiles'));
    test('fixture count', () => expect(cases).toHaveLength(33));
    for (const name of cases) {
      test(name, () => {
        const dir = join(parserDir, 'testfiles', name);
        const result = parse(readText(join(dir, 'Dockerfile')));
        const expected = readText(join(dir, 'result')).replace(/\r\n/g, '\n');
        expect(dumpNode(result.ast) + '\n').toBe(expected);
      });
    }
  });

  describe('parser/testfiles-negative', () => {
    const cases = subdirs(join(parserDir, 'testfiles-negative'));
    test('fixture count', () => expect(cases).toHaveLength(4));
    for (const name of cases) {
      test(name, () => {
        const text = readText(join(parserDir, 'testfiles-negative', name, 'Dockerfile'));
        expect(() => parse(text)).toThrow();
      });
    }
  });

  describe('parser/testfile-line', () => {
    test('instruction line ranges', () => {
      const { ast } = parse(readText(join(parserDir, 'testfile-line', 'Dockerfile')));
      expect([ast.startLine, ast.endLine]).toEqual([5, 31]);
      expect(ast.children.map((c) => [c.startLine, c.endLine])).toEqual([
        [5, 5],
        [11, 12],
        [17, 31],
      ]);
    });
  });

  describe('shell/envVarTest', () => {
    // Linux semantics: environment variable names are case-sensitive.
    const env = { PWD: '/home', SHELL: 'bash', KOREAN: '한국어', NULL: '' };
    const rows: { line: number; input: string; expected: string }[] = [];
    readText(join(shellDir, 'envVarTest'))
      .split('\n')
      .forEach((raw, i) => {
        if (raw.startsWith('#')) return;
        const line = raw.trim();
        if (line === '') return;
        const fields = line.split('|').map((f) => f.trim());
        if (fields.length !== 3) throw new Error(`envVarTest line ${i + 1}: expected 3 fields`);
        const [platform, input, expected] = fields as [string, string, string];
        if (!['A', 'U', 'W'].includes(platform)) throw new Error(`envVarTest line ${i + 1}: bad platform ${platform}`);
        if (platform !== 'W') rows.push({ line: i + 1, input, expected });
      });

    test('row count', () => expect(rows).toHaveLength(228));
    for (const row of rows) {
      test(`line ${row.line}: ${row.input}`, () => {
        const lex = new ShellLex('\\');
        if (row.expected === 'error') {
          expect(() => lex.processWord(row.input, env)).toThrow();
        } else {
          expect(lex.processWord(row.input, env)).toBe(row.expected);
        }
      });
    }
  });

  describe('shell/wordsTest', () => {
    const rows: { line: number; input: string; expected: string[]; env: Record<string, string> }[] = [];
    const env: Record<string, string> = {};
    readText(join(shellDir, 'wordsTest'))
      .split('\n')
      .forEach((raw, i) => {
        if (raw.startsWith('#')) return;
        if (raw === '' && i > 0) return; // the final newline
        if (raw.startsWith('ENV ')) {
          // Trailing spaces of the value are significant.
          const def = raw.slice(4).replace(/^ +/, '');
          const eq = def.indexOf('=');
          env[def.slice(0, eq)] = def.slice(eq + 1);
          return;
        }
        const fields = raw.split('|');
        if (fields.length !== 2) throw new Error(`wordsTest line ${i + 1}: expected exactly one |`);
        rows.push({
          line: i + 1,
          input: fields[0]!.trim(),
          expected: fields[1]!.replace(/^ +/, '').split(','),
          env: { ...env },
        });
      });

    test('row count', () => expect(rows).toHaveLength(24));
    for (const row of rows) {
      test(`line ${row.line}: ${row.input}`, () => {
        const lex = new ShellLex('\\');
        let words: string[];
        try {
          words = lex.processWords(row.input, row.env);
        } catch {
          words = ['error'];
        }
        expect(words).toEqual(row.expected);
      });
    }
  });
}
