import { DockerfileParseError, dumpNode, parse } from '../../src/frontend/index.js';

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

describe('bounds (refused with the line where the limit is crossed)', () => {
  const error = (text: string): DockerfileParseError => {
    try {
      parse(text, { file: 'Dockerfile' });
    } catch (e) {
      if (e instanceof DockerfileParseError) return e;
      throw e;
    }
    throw new Error('parsed');
  };

  test('a file over 16 MiB', () => {
    const e = error(`FROM x\n${'# 64 characters of padding, repeated to make a very large file.\n'.repeat(270_000)}`);
    expect(e.message).toBe('Dockerfile larger than the maximum of 16777216 bytes');
    expect(e.line).toBe(262_145);
    expect(e.location()).toBe('Dockerfile:262145');
    // Bytes, not characters: 8 MiB of two-byte characters is over.
    expect(error(`FROM x\nRUN ${'é'.repeat(30_000)}\n`.repeat(300)).message).toMatch(/larger than the maximum/);
  });

  test('an instruction over 1 MiB once continuation lines are joined', () => {
    const e = error(`FROM x\nRUN ${'echo 0123456789012345678901234567890123456789 \\\n'.repeat(30_000)}true\n`);
    expect(e.message).toMatch(/instruction longer than the maximum of 1048576 characters/);
    expect(e.line).toBe(2);
  });

  test('more than 10 000 instructions', () => {
    const e = error(`FROM x\n${'ENV a=b\n'.repeat(10_000)}`);
    expect(e.message).toBe('more than 10000 instructions');
    expect(e.line).toBe(10_001);
    expect(() => parse(`FROM x\n${'ENV a=b\n'.repeat(9_999)}`)).not.toThrow();
  });

  test('ONBUILD nested more than 16 deep', () => {
    expect(error(`FROM x\n${'ONBUILD '.repeat(17)}RUN x\n`).message).toBe('ONBUILD nested more than 16 deep');
    expect(dumpNode(parse(`FROM x\n${'ONBUILD '.repeat(2)}RUN x\n`).ast)).toContain('(onbuild (onbuild (run "x")))');
  });
});
