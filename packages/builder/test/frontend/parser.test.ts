import { dumpNode, parse } from '../../src/frontend/index.js';

describe('directives', () => {
  test('syntax, check and escape at the top, any case, BOM tolerated', () => {
    const r = parse('\ufeff# syntax=docker/dockerfile:1\n#CHECK = skip=all\n# Escape=`\n# comment\nFROM x');
    expect(r.directives).toEqual({ syntax: 'docker/dockerfile:1', check: 'skip=all', escape: '`' });
    expect(r.escapeToken).toBe('`');
  });

  test('ignored after an ordinary comment', () => {
    const r = parse('# comment\n# escape=`\nFROM x \\\n  y\n');
    expect(r.directives).toEqual({});
    expect(r.escapeToken).toBe('\\');
    expect(dumpNode(r.ast)).toBe('(from "x" "y")');
  });

  test('ignored after a blank line or an instruction', () => {
    expect(parse('\n# syntax=a\nFROM x\n').directives).toEqual({});
    expect(parse('FROM x\n# syntax=a\n').directives).toEqual({});
  });

  test('an unknown directive name ends directive processing', () => {
    expect(parse('# foo=bar\n# syntax=a\nFROM x\n').directives).toEqual({});
  });
});

describe('parser', () => {
  test('node fields', () => {
    const { ast } = parse('# about x\nFROM x\n# run it\nRUN --network=none echo \\\n  hi\n');
    const run = ast.children[1]!;
    expect(run.value).toBe('RUN');
    expect(run.flags).toEqual(['--network=none']);
    expect(run.next?.value).toBe('echo   hi');
    expect(run.original).toBe('RUN --network=none echo   hi');
    expect([run.startLine, run.endLine]).toEqual([4, 5]);
    expect(run.prevComment).toEqual(['run it']);
    expect(ast.children[0]!.prevComment).toEqual(['about x']);
  });

  test('JSON attribute', () => {
    const { ast } = parse('CMD ["a"]\nCMD a\n');
    expect(ast.children.map((c) => c.attributes.json === true)).toEqual([true, false]);
  });

  test('ONBUILD wraps the trigger as a child', () => {
    const { ast } = parse('ONBUILD RUN ["echo", "x"]\n');
    const wrapped = ast.children[0]!.next!.children[0]!;
    expect(wrapped.value).toBe('RUN');
    expect(wrapped.attributes.json).toBe(true);
    expect(dumpNode(ast)).toBe('(onbuild (run "echo" "x"))');
  });

  test('unknown instructions still parse at this level', () => {
    expect(dumpNode(parse('FOO bar\n').ast)).toBe('(foo "")');
  });

  test('empty continuation lines produce a warning with their line', () => {
    const r = parse('FROM x\nRUN a \\\n\n  b\n');
    expect(r.warnings).toEqual([{ message: 'Empty continuation line found in: RUN a   b', line: 3 }]);
  });
});
