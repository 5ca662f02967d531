import { DockerfileParseError, parseInstructions, type Command, type DockerfileInstructions } from '../../src/frontend/index.js';

const MULTI_STAGE = `# syntax=docker/dockerfile:1
FROM golang:1.21 as build
WORKDIR /src
COPY <<EOF /src/main.go
package main

import "fmt"

func main() {
  fmt.Println("hello, world")
}
EOF
RUN go build -o /bin/hello ./main.go

FROM scratch
COPY --from=build /bin/hello /bin/hello
CMD ["/bin/hello"]
`;

/** The error parsing `text` throws, asserted to be a DockerfileParseError. */
function parseError(text: string, file?: string): DockerfileParseError {
  try {
    parseInstructions(text, file === undefined ? {} : { file });
  } catch (err) {
    if (err instanceof DockerfileParseError) return err;
    throw err;
  }
  throw new Error('expected a DockerfileParseError');
}

function only<K extends Command['kind']>(df: DockerfileInstructions, kind: K): Extract<Command, { kind: K }> {
  const cmds = df.stages.flatMap((s) => s.commands).filter((c): c is Extract<Command, { kind: K }> => c.kind === kind);
  expect(cmds).toHaveLength(1);
  return cmds[0]!;
}

describe('multi-stage example', () => {
  const df = parseInstructions(MULTI_STAGE);

  test('directives and stages', () => {
    expect(df.syntax).toBe('docker/dockerfile:1');
    expect(df.escapeToken).toBe('\\');
    expect(df.metaArgs).toEqual([]);
    expect(df.stages.map((s) => [s.index, s.name, s.baseName, s.range, s.original])).toEqual([
      [0, 'build', 'golang:1.21', { start: 2, end: 2 }, 'FROM golang:1.21 as build'],
      [1, undefined, 'scratch', { start: 15, end: 15 }, 'FROM scratch'],
    ]);
  });

  test('first stage commands', () => {
    const [workdir, copy, run] = df.stages[0]!.commands;
    expect(workdir).toEqual({ kind: 'WORKDIR', path: '/src', range: { start: 3, end: 3 }, original: 'WORKDIR /src' });
    expect(copy).toMatchObject({
      kind: 'COPY',
      sources: ['<<EOF'],
      dest: '/src/main.go',
      range: { start: 4, end: 12 },
      original: 'COPY <<EOF /src/main.go',
      link: false,
      exclude: [],
    });
    if (copy?.kind !== 'COPY') throw new Error('expected COPY');
    expect(copy.heredocs).toEqual([
      {
        name: 'EOF',
        expand: true,
        chomp: false,
        content: 'package main\n\nimport "fmt"\n\nfunc main() {\n  fmt.Println("hello, world")\n}\n',
      },
    ]);
    expect(run).toMatchObject({
      kind: 'RUN',
      shellForm: true,
      cmd: ['go build -o /bin/hello ./main.go'],
      heredocs: [],
      flags: { mounts: [] },
      range: { start: 13, end: 13 },
    });
  });

  test('second stage commands', () => {
    const [copy, cmd] = df.stages[1]!.commands;
    expect(copy).toMatchObject({ kind: 'COPY', from: 'build', sources: ['/bin/hello'], dest: '/bin/hello', heredocs: [] });
    expect(cmd).toEqual({
      kind: 'CMD',
      shellForm: false,
      cmd: ['/bin/hello'],
      range: { start: 17, end: 17 },
      original: 'CMD ["/bin/hello"]',
    });
  });
});

describe('values stay unexpanded', () => {
  test('ARG, ENV, LABEL', () => {
    const df = parseInstructions(
      'ARG BASE=alpine\nARG TAG\nFROM $BASE:${TAG:-3}\nENV A="x y" B=$A\nENV OLD some value\nLABEL "com.x"="a b" k=v\nARG EMPTY=\n',
    );
    expect(df.metaArgs.map((a) => a.args)).toEqual([[{ key: 'BASE', value: 'alpine' }], [{ key: 'TAG' }]]);
    expect(df.stages[0]!.baseName).toBe('$BASE:${TAG:-3}');
    const [env1, env2, label, arg] = df.stages[0]!.commands;
    expect(env1).toMatchObject({ kind: 'ENV', pairs: [{ key: 'A', value: '"x y"' }, { key: 'B', value: '$A' }] });
    expect(env2).toMatchObject({ kind: 'ENV', pairs: [{ key: 'OLD', value: 'some value' }] });
    expect(label).toMatchObject({ kind: 'LABEL', pairs: [{ key: '"com.x"', value: '"a b"' }, { key: 'k', value: 'v' }] });
    expect(arg).toMatchObject({ kind: 'ARG', args: [{ key: 'EMPTY', value: '' }] });
  });

  test('stage name is lower-cased, platform kept raw', () => {
    const df = parseInstructions('FROM --platform=$BUILDPLATFORM busybox AS Builder\n');
    expect(df.stages[0]).toMatchObject({ name: 'builder', platform: '$BUILDPLATFORM', baseName: 'busybox' });
  });

  test('backtick escape directive', () => {
    const df = parseInstructions('# escape=`\nFROM x\nRUN echo a `\n  b\nCOPY C:\\src C:\\dst\n');
    expect(df.escapeToken).toBe('`');
    const [run, copy] = df.stages[0]!.commands;
    expect(run).toMatchObject({ cmd: ['echo a   b'], range: { start: 3, end: 4 } });
    expect(copy).toMatchObject({ sources: ['C:\\src'], dest: 'C:\\dst' });
  });

  test('check directive and warnings', () => {
    const df = parseInstructions('# check=skip=all\nFROM x\nRUN a \\\n\n  b\n');
    expect(df.check).toBe('skip=all');
    expect(df.warnings).toEqual([{ message: 'Empty continuation line found in: RUN a   b', line: 4 }]);
  });
});

describe('simple instructions', () => {
  const df = parseInstructions(
    [
      'FROM x',
      'USER app:app',
      'EXPOSE 8080/tcp 443',
      'VOLUME ["/data", "/logs"]',
      'VOLUME /a /b',
      'STOPSIGNAL SIGTERM',
      'MAINTAINER someone <a@b.c>',
      'SHELL ["/bin/bash", "-o", "pipefail", "-c"]',
      'ENTRYPOINT exec app --flag',
      'ONBUILD RUN echo "triggered"',
      'CMD',
      '',
    ].join('\n'),
  );
  const cmds = df.stages[0]!.commands;

  test('shapes', () => {
    expect(cmds.map((c) => c.kind)).toEqual([
      'USER', 'EXPOSE', 'VOLUME', 'VOLUME', 'STOPSIGNAL', 'MAINTAINER', 'SHELL', 'ENTRYPOINT', 'ONBUILD', 'CMD',
    ]);
    expect(cmds[0]).toMatchObject({ user: 'app:app' });
    expect(cmds[1]).toMatchObject({ ports: ['443', '8080/tcp'] });
    expect(cmds[2]).toMatchObject({ volumes: ['/data', '/logs'] });
    expect(cmds[3]).toMatchObject({ volumes: ['/a', '/b'] });
    expect(cmds[4]).toMatchObject({ signal: 'SIGTERM' });
    expect(cmds[5]).toMatchObject({ maintainer: 'someone <a@b.c>' });
    expect(cmds[6]).toMatchObject({ shell: ['/bin/bash', '-o', 'pipefail', '-c'] });
    expect(cmds[7]).toMatchObject({ shellForm: true, cmd: ['exec app --flag'] });
    expect(cmds[8]).toMatchObject({ expression: 'RUN echo "triggered"' });
    expect(cmds[9]).toMatchObject({ shellForm: true, cmd: [] });
  });
});

describe('flags', () => {
  test('RUN flags', () => {
    const run = only(
      parseInstructions(
        'FROM x\nRUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok --network=none --security=insecure make\n',
      ),
      'RUN',
    );
    expect(run.flags).toEqual({
      mounts: ['type=cache,target=/root/.cache', 'type=secret,id=tok'],
      network: 'none',
      security: 'insecure',
    });
    expect(run.cmd).toEqual(['make']);
  });

  test('COPY flags', () => {
    const copy = only(
      parseInstructions(
        'FROM x\nCOPY --from=build --chown=1000:1000 --chmod=0755 --link --parents --exclude=*.md --exclude=*.txt a b /dst/\n',
      ),
      'COPY',
    );
    expect(copy).toMatchObject({
      from: 'build',
      chown: '1000:1000',
      chmod: '0755',
      link: true,
      parents: true,
      exclude: ['*.md', '*.txt'],
      sources: ['a', 'b'],
      dest: '/dst/',
    });
  });

  test('ADD flags', () => {
    const add = only(
      parseInstructions('FROM x\nADD --checksum=sha256:abc --keep-git-dir=true --link=false https://example.com/a.tgz /a.tgz\n'),
      'ADD',
    );
    expect(add).toMatchObject({ checksum: 'sha256:abc', keepGitDir: true, link: false, sources: ['https://example.com/a.tgz'] });
    expect(add.from).toBeUndefined();
  });

  test('quoted flag values and the -- separator', () => {
    const run = only(parseInstructions('FROM x\nRUN --mount="type=bind,target=/a b" -- --not-a-flag\n'), 'RUN');
    expect(run.flags.mounts).toEqual(['type=bind,target=/a b']);
    expect(run.cmd).toEqual(['--not-a-flag']);
  });

  test('HEALTHCHECK', () => {
    const hc = only(
      parseInstructions(
        'FROM x\nHEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --start-interval=1s --retries=3 CMD curl -f http://localhost/\n',
      ),
      'HEALTHCHECK',
    );
    expect(hc).toMatchObject({
      test: ['CMD-SHELL', 'curl -f http://localhost/'],
      interval: 90e9,
      timeout: 500e6,
      startPeriod: 2e9,
      startInterval: 1e9,
      retries: 3,
    });
    expect(only(parseInstructions('FROM x\nHEALTHCHECK CMD ["/bin/check", "-q"]\n'), 'HEALTHCHECK').test).toEqual([
      'CMD',
      '/bin/check',
      '-q',
    ]);
    expect(only(parseInstructions('FROM x\nHEALTHCHECK NONE\n'), 'HEALTHCHECK').test).toBe('NONE');
  });
});

describe('errors carry the line', () => {
  const cases: [string, string, number, RegExp][] = [
    ['unknown instruction', 'FROM x\nRUN true\nFOO bar\n', 3, /unknown instruction: FOO/],
    ['near-miss instruction', 'FROM x\nCOPPY a b\n', 2, /unknown instruction: COPPY \(did you mean COPY\?\)/],
    ['flag on the wrong instruction', 'FROM x\n\nRUN --from=x ls\n', 3, /unknown flag: --from \(RUN accepts --mount, --network, --security\)/],
    ['flag on a flagless instruction', 'FROM x\nWORKDIR --foo /a\n', 2, /unknown flag: --foo \(WORKDIR takes no flags\)/],
    ['duplicate flag', 'FROM x\nCOPY --from=a --from=b x y\n', 2, /duplicate flag specified: --from/],
    ['flag without value', 'FROM x\nCOPY --from x y\n', 2, /missing a value on flag: --from/],
    ['bad boolean', 'FROM x\nCOPY --link=maybe x y\n', 2, /expecting boolean value for flag --link/],
    ['bad network', 'FROM x\nRUN --network=bridge ls\n', 2, /unsupported network mode "bridge"/],
    ['bad mount type', 'FROM x\nRUN --mount=type=nfs,target=/a ls\n', 2, /unsupported mount type "nfs"/],
    ['COPY with one argument', 'FROM x\nCOPY onlyone\n', 2, /COPY requires at least two arguments, but only one was provided/],
    ['ADD with no argument', 'FROM x\nADD\n', 2, /ADD requires at least two arguments/],
    ['WORKDIR without argument', 'FROM x\nWORKDIR\n', 2, /WORKDIR requires exactly one argument/],
    ['RUN without argument', 'FROM x\nRUN\n', 2, /RUN requires at least one argument/],
    ['ENV without value', 'FROM x\nENV PATH\n', 2, /ENV must have two arguments/],
    ['ENV mixed forms', 'FROM x\nENV a=b c\n', 2, /can't find = in "c"/],
    ['ARG with blank name', 'FROM x\nARG =x\n', 2, /ARG names can not be blank/],
    ['bad AS keyword', 'FROM x\nFROM alpine AT base\n', 2, /FROM expects "FROM <image> AS <name>", found "AT"/],
    ['FROM with two words', 'FROM alpine base\n', 1, /FROM requires either one or three arguments/],
    ['FROM with nothing', 'FROM\n', 1, /FROM requires either one or three arguments/],
    ['stage name starting with a digit', 'FROM alpine AS 1st\n', 1, /invalid name for build stage: "1st"/],
    ['stage name with symbols', 'FROM alpine AS my@stage\n', 1, /invalid name for build stage/],
    ['duplicate stage name', 'FROM a AS one\nRUN x\nFROM b AS One\n', 3, /duplicate stage name "one" \(first defined on line 1\)/],
    ['instruction before FROM', 'ARG A=1\nRUN echo hi\nFROM x\n', 2, /RUN instruction before the first FROM: only ARG may come before FROM/],
    ['no FROM at all', 'ARG A=1\n', 1, /no build stage/],
    ['SHELL not JSON', 'FROM x\nSHELL /bin/bash -c\n', 2, /SHELL requires the arguments to be in JSON form/],
    ['nested JSON', 'FROM x\nCMD ["a", ["b"]]\n', 2, /array of strings/],
    ['HEALTHCHECK unknown type', 'FROM x\nHEALTHCHECK CONNECT TCP 7000\n', 2, /Unknown type "CONNECT" in HEALTHCHECK/],
    ['HEALTHCHECK bad duration', 'FROM x\nHEALTHCHECK --interval=5 CMD true\n', 2, /invalid duration for --interval/],
    ['HEALTHCHECK too short', 'FROM x\nHEALTHCHECK --timeout=10us CMD true\n', 2, /cannot be less than 1ms/],
    ['HEALTHCHECK negative retries', 'FROM x\nHEALTHCHECK --retries=-1 CMD true\n', 2, /--retries cannot be negative/],
    ['HEALTHCHECK NONE with args', 'FROM x\nHEALTHCHECK NONE x\n', 2, /HEALTHCHECK NONE takes no arguments/],
    ['ONBUILD ONBUILD', 'FROM x\nONBUILD ONBUILD RUN x\n', 2, /Chaining ONBUILD/],
    ['ONBUILD FROM', 'FROM x\nONBUILD FROM y\n', 2, /FROM isn't allowed as an ONBUILD trigger/],
    ['ONBUILD bad trigger flag', 'FROM x\nONBUILD RUN --from=a ls\n', 2, /unknown flag: --from/],
    ['heredoc destination', 'FROM x\nCOPY a <<EOF\nEOF\n', 2, /COPY cannot accept a heredoc as a destination/],
    ['error after a continuation', 'FROM x\nRUN echo \\\n  a\nCOPY \\\n  one\n', 4, /COPY requires at least two arguments/],
    ['unterminated heredoc', 'FROM x\nRUN <<EOF\necho hi\n', 2, /unterminated heredoc EOF/],
    ['repeated directive', '# escape=`\n# escape=\\\nFROM x\n', 2, /only one escape parser directive can be used/],
    ['bad escape token', '# escape=x\nFROM x\n', 1, /invalid escape token 'x'/],
    ['line too long', `FROM x\nRUN ${'a'.repeat(70000)}\n`, 2, /dockerfile line greater than max allowed size of 65535/],
    ['only comments', '# just a comment\n\n', 2, /file with no instructions/],
    ['empty file', '', 0, /file with no instructions/],
  ];

  for (const [name, text, line, message] of cases) {
    test(name, () => {
      const err = parseError(text);
      expect(err.message).toMatch(message);
      expect(err.code).toBe('E_DOCKERFILE_PARSE');
      expect(err.line).toBe(line === 0 ? undefined : line);
    });
  }

  test('file name goes to location(), not the message', () => {
    const err = parseError('FROM x\nFOO\n', 'sub/Dockerfile');
    expect(err.file).toBe('sub/Dockerfile');
    expect(err.location()).toBe('sub/Dockerfile:2');
    expect(err.message).not.toContain('sub/Dockerfile');
  });

  test('location() with partial information', () => {
    expect(new DockerfileParseError('m', 3).location()).toBe('line 3');
    expect(new DockerfileParseError('m', undefined, 'Dockerfile').location()).toBe('Dockerfile');
  });
});
