import { parse, parseInstructions, type Command } from '../../src/frontend/index.js';

function commands(text: string): Command[] {
  return parseInstructions(text).stages.flatMap((s) => s.commands);
}

describe('heredocs', () => {
  test('RUN <<EOF script', () => {
    const [run] = commands('FROM x\nRUN <<EOF\nset -e\necho "$HOME"\nEOF\n');
    expect(run).toMatchObject({
      kind: 'RUN',
      shellForm: true,
      cmd: ['<<EOF'],
      heredocs: [{ name: 'EOF', content: 'set -e\necho "$HOME"\n', expand: true, chomp: false }],
      range: { start: 2, end: 5 },
    });
  });

  test('RUN cmd <<EOF feeds stdin', () => {
    const [run, after] = commands('FROM x\nRUN python3 <<PY > /out\nprint(1)\nPY\nRUN true\n');
    expect(run).toMatchObject({ cmd: ['python3 <<PY > /out'], heredocs: [{ name: 'PY', content: 'print(1)\n' }] });
    expect(after).toMatchObject({ kind: 'RUN', cmd: ['true'], range: { start: 5, end: 5 } });
  });

  test('several heredocs on one line, read in order', () => {
    const [copy] = commands('FROM x\nCOPY <<a <<b /dst/\nfirst\na\nsecond\nb\n');
    expect(copy).toMatchObject({
      kind: 'COPY',
      sources: ['<<a', '<<b'],
      dest: '/dst/',
      heredocs: [
        { name: 'a', content: 'first\n' },
        { name: 'b', content: 'second\n' },
      ],
      range: { start: 2, end: 6 },
    });
  });

  test('a body line equal to another delimiter does not end the current heredoc', () => {
    const [copy] = commands('FROM x\nCOPY <<X <<Y /dest\nY\nX\nX\nY\n');
    expect(copy).toMatchObject({ heredocs: [{ name: 'X', content: 'Y\n' }, { name: 'Y', content: 'X\n' }] });
  });

  test('<<- strips leading tabs from the body and the terminator', () => {
    const text = 'FROM x\nRUN <<-EOF\n\techo a\n\t\techo b\n  keep spaces\n\tEOF\n';
    const [run] = commands(text);
    expect(run).toMatchObject({ heredocs: [{ name: 'EOF', chomp: true, content: 'echo a\necho b\n  keep spaces\n' }] });
    // The AST keeps the body verbatim, as BuildKit's parser does.
    expect(parse(text).ast.children[1]!.heredocs[0]!.content).toBe('\techo a\n\t\techo b\n  keep spaces\n');
  });

  test('without <<- a tab-indented terminator is body text', () => {
    const [run] = commands('FROM x\nRUN <<EOF\n\tEOF\nEOF\n');
    expect(run).toMatchObject({ heredocs: [{ content: '\tEOF\n' }] });
  });

  test('quoted delimiters disable expansion', () => {
    for (const marker of ["<<'EOF'", '<<"EOF"', '<<E"O"F', "<<-'EOF'"]) {
      const [copy] = commands(`FROM x\nCOPY ${marker} /f\n$HOME\nEOF\n`);
      expect(copy).toMatchObject({ sources: [marker], heredocs: [{ name: 'EOF', expand: false }] });
    }
    const [copy] = commands('FROM x\nCOPY <<EOF /f\n$HOME\nEOF\n');
    expect(copy).toMatchObject({ heredocs: [{ expand: true, content: '$HOME\n' }] });
  });

  test('file descriptor forms', () => {
    const [run] = commands('FROM x\nRUN 3<<EOF cat /dev/fd/3\nhi\nEOF\n');
    expect(run).toMatchObject({ heredocs: [{ name: 'EOF', fileDescriptor: 3, content: 'hi\n' }] });
    const [plain] = commands('FROM x\nRUN <<EOF\nEOF\n');
    expect(plain).toMatchObject({ heredocs: [{ name: 'EOF', content: '' }] });
    if (plain?.kind !== 'RUN') throw new Error('expected RUN');
    expect(plain.heredocs[0]!.fileDescriptor).toBeUndefined();
  });

  test('not heredocs: JSON form, quoted markers, other instructions, <<<', () => {
    const text = [
      'FROM x',
      'RUN ["<<EOF"]',
      'RUN echo "<<EOF"',
      "RUN echo '<<EOF'",
      'USER <<EOF',
      'RUN cat <<<word',
      'COPY ["<<EOF", "/dst"]',
      '',
    ].join('\n');
    const { ast } = parse(text);
    expect(ast.children.map((c) => c.heredocs.length)).toEqual([0, 0, 0, 0, 0, 0, 0]);
    const cmds = commands(text);
    expect(cmds[cmds.length - 1]).toMatchObject({ kind: 'COPY', sources: ['<<EOF'], heredocs: [] });
  });

  test('heredoc bodies keep comments, blank lines and backslashes, and are not instructions', () => {
    const [run, user] = commands('FROM x\nRUN <<EOF\n# comment\n\nFROM nope \\\nEOF\nUSER me\n');
    expect(run).toMatchObject({ heredocs: [{ content: '# comment\n\nFROM nope \\\n' }] });
    expect(user).toMatchObject({ kind: 'USER', user: 'me', range: { start: 7, end: 7 } });
  });

  test('heredoc after flags and inside ONBUILD', () => {
    const [run, onbuild] = commands(
      'FROM x\nRUN --mount=type=cache,target=/c <<EOF\necho hi\nEOF\nONBUILD COPY <<EOF /f\nbody\nEOF\n',
    );
    expect(run).toMatchObject({ flags: { mounts: ['type=cache,target=/c'] }, heredocs: [{ content: 'echo hi\n' }] });
    expect(onbuild).toMatchObject({ kind: 'ONBUILD', expression: 'COPY <<EOF /f\nbody\nEOF' });
  });

  test('a heredoc marker on a continued line', () => {
    const [run] = commands('FROM x\nRUN cat \\\n  <<EOF\nhi\nEOF\n');
    expect(run).toMatchObject({ cmd: ['cat   <<EOF'], heredocs: [{ content: 'hi\n' }], range: { start: 2, end: 5 } });
  });

  test('CRLF line endings: the terminator matches, the body keeps its endings', () => {
    const [run] = commands('FROM x\r\nRUN <<EOF\r\necho hi\r\nEOF\r\n');
    expect(run).toMatchObject({ cmd: ['<<EOF'], heredocs: [{ content: 'echo hi\r\n' }] });
  });
});
