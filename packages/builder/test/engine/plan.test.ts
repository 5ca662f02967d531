import { parseInstructions } from '../../src/frontend/index.js';
import { planBuild, stageNamedLike, type BuildPlan } from '../../src/engine/plan.js';
import { BuildError } from '../../src/errors.js';

function plan(text: string, target?: string, metaEnv: Record<string, string> = {}): BuildPlan {
  return planBuild(parseInstructions(text), metaEnv, 'Dockerfile', target);
}

/** Runs `fn`, expecting a BuildError, and returns it. */
function failure(fn: () => unknown): BuildError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BuildError);
    return err as BuildError;
  }
  throw new Error('expected an error');
}

describe('planBuild', () => {
  test('single image stage', () => {
    const p = plan('FROM busybox\nRUN true\n');
    expect(p.stages).toHaveLength(1);
    expect(p.stages[0]!.base).toEqual({ kind: 'image', ref: 'busybox' });
    expect(p.target).toBe(0);
    expect(p.order).toEqual([0]);
  });

  test('FROM scratch (any case) is the empty base', () => {
    expect(plan('FROM scratch\n').stages[0]!.base).toEqual({ kind: 'scratch' });
    expect(plan('FROM SCRATCH\n').stages[0]!.base).toEqual({ kind: 'scratch' });
  });

  test('FROM an earlier stage by name, case-insensitively', () => {
    const p = plan('FROM busybox AS Base\nRUN true\nFROM BASE\nRUN true\n');
    expect(p.stages[1]!.base).toEqual({ kind: 'stage', index: 0 });
    expect([...p.stages[1]!.deps]).toEqual([0]);
    expect(p.order).toEqual([0, 1]);
  });

  test('COPY --from by name (case-insensitive) and by index', () => {
    const p = plan('FROM busybox AS build\nFROM alpine AS other\nFROM scratch\nCOPY --from=BUILD /a /a\nCOPY --from=1 /b /b\n');
    const last = p.stages[2]!;
    expect(last.copySources.get('BUILD')).toEqual({ kind: 'stage', index: 0 });
    expect(last.copySources.get('1')).toEqual({ kind: 'stage', index: 1 });
    expect([...last.deps].sort()).toEqual([0, 1]);
    expect(p.order).toEqual([0, 1, 2]);
  });

  test('COPY --from=0 numeric', () => {
    const p = plan('FROM busybox\nFROM scratch\nCOPY --from=0 /bin/busybox /busybox\n');
    expect(p.stages[1]!.copySources.get('0')).toEqual({ kind: 'stage', index: 0 });
    expect(p.order).toEqual([0, 1]);
  });

  test('COPY --from an image reference', () => {
    const p = plan('FROM scratch\nCOPY --from=docker.io/library/busybox:1.36 /bin/sh /sh\n');
    expect(p.stages[0]!.copySources.get('docker.io/library/busybox:1.36')).toEqual({ kind: 'image', ref: 'docker.io/library/busybox:1.36' });
    expect(p.stages[0]!.deps.size).toBe(0);
  });

  test('ARG-expanded FROM', () => {
    const p = plan('ARG BASE=busybox\nFROM ${BASE}\n', undefined, { BASE: 'busybox' });
    expect(p.stages[0]!.base).toEqual({ kind: 'image', ref: 'busybox' });
    const q = plan('ARG TAG\nFROM alpine:$TAG AS a\nFROM a\n', undefined, { TAG: '3.20' });
    expect(q.stages[0]!.base).toEqual({ kind: 'image', ref: 'alpine:3.20' });
    expect(q.stages[1]!.base).toEqual({ kind: 'stage', index: 0 });
  });

  test('ARG expanding to a stage name refers to that stage', () => {
    const p = plan('FROM busybox AS dev\nFROM busybox AS prod\nARG X\nFROM ${MODE}\n', undefined, { MODE: 'prod' });
    expect(p.stages[2]!.base).toEqual({ kind: 'stage', index: 1 });
    expect(p.order).toEqual([1, 2]);
  });

  test('FROM expanding to an empty string is an error with the line', () => {
    const err = failure(() => plan('FROM busybox\nFROM ${NOPE}\n'));
    expect(err.line).toBe(2);
    expect(err.file).toBe('Dockerfile');
    expect(err.message).toMatch(/empty/);
  });

  test('--target builds only the stages it needs, dependencies first', () => {
    const text = [
      'FROM busybox AS deps', // 0
      'FROM alpine AS unrelated', // 1
      'FROM deps AS build', // 2
      'FROM scratch AS tools', // 3
      'FROM build AS final', // 4
      'COPY --from=tools /t /t',
      'FROM scratch AS last', // 5
    ].join('\n');
    const p = plan(`${text}\n`, 'FINAL');
    expect(p.target).toBe(4);
    expect(p.order).not.toContain(1);
    expect(p.order).not.toContain(5);
    expect([...p.order].sort()).toEqual([0, 2, 3, 4]);
    const pos = (i: number) => p.order.indexOf(i);
    expect(pos(0)).toBeLessThan(pos(2));
    expect(pos(2)).toBeLessThan(pos(4));
    expect(pos(3)).toBeLessThan(pos(4));
    expect(p.order[p.order.length - 1]).toBe(4);
    // no target: the last stage, which needs nothing else
    expect(plan(`${text}\n`).order).toEqual([5]);
  });

  test('a shared dependency appears once in order', () => {
    const p = plan('FROM busybox AS a\nFROM a AS b\nFROM a AS c\nFROM b\nCOPY --from=c /x /x\nCOPY --from=a /y /y\n');
    expect(p.order).toEqual([0, 1, 2, 3]);
  });

  test('unknown target lists the stage names', () => {
    const err = failure(() => plan('FROM busybox AS one\nFROM busybox\nFROM busybox AS three\n', 'nope'));
    expect(err.code).toBe('E_STAGE_NOT_FOUND');
    expect(err.message).toContain('"nope"');
    expect(err.message).toContain('one, 1, three');
  });

  test('forward reference in FROM is an error with its line', () => {
    const err = failure(() => plan('FROM later AS first\nRUN true\nFROM busybox AS later\n'));
    expect(err.code).toBe('E_STAGE_NOT_FOUND');
    expect(err.line).toBe(1);
  });

  test('self reference in FROM is an error with its line', () => {
    const err = failure(() => plan('FROM busybox\nFROM me AS me\n'));
    expect(err.code).toBe('E_STAGE_NOT_FOUND');
    expect(err.line).toBe(2);
  });

  test('COPY --from a later stage or the current index is an error with its line', () => {
    const fwd = failure(() => plan('FROM busybox AS a\nRUN true\nCOPY --from=b /x /x\nFROM busybox AS b\n'));
    expect(fwd.code).toBe('E_STAGE_NOT_FOUND');
    expect(fwd.line).toBe(3);
    const self = failure(() => plan('FROM busybox\nFROM busybox\n\nCOPY --from=1 /x /x\n'));
    expect(self.code).toBe('E_STAGE_NOT_FOUND');
    expect(self.line).toBe(4);
    const selfName = failure(() => plan('FROM busybox AS me\nCOPY --from=me /x /x\n'));
    expect(selfName.line).toBe(2);
  });

  test('COPY --from that is neither stage nor reference is an error with its line', () => {
    const err = failure(() => plan('FROM busybox\nRUN true\nCOPY --from=notastage:bad@@ /x /x\n'));
    expect(err.code).toBe('E_STAGE_NOT_FOUND');
    expect(err.line).toBe(3);
    expect(err.message).toContain('notastage:bad@@');
  });

  test('an invalid FROM reference is an error with its line', () => {
    const err = failure(() => plan('FROM busybox\nFROM Not/Valid::x\n'));
    expect(err.line).toBe(2);
  });

  test('RUN --mount from= is a stage dependency, like COPY --from (BuildKit plans both)', () => {
    const p = plan([
      'FROM busybox AS deps',
      'FROM busybox AS unused',
      'FROM busybox AS tools',
      'FROM busybox',
      'RUN --mount=type=bind,from=DEPS,target=/d --mount=type=cache,target=/c,from=2 true',
      'RUN --mount=type=bind,from=alpine:3,target=/a --mount=type=cache,target=/x true',
      '',
    ].join('\n'));
    const last = p.stages[3]!;
    expect([...last.deps].sort()).toEqual([0, 2]);
    expect(last.mountSources.get('DEPS')).toEqual({ kind: 'stage', index: 0 });
    expect(last.mountSources.get('2')).toEqual({ kind: 'stage', index: 2 });
    expect(last.mountSources.get('alpine:3')).toEqual({ kind: 'image', ref: 'alpine:3' });
    expect(p.order).toEqual([0, 2, 3]);
  });

  test('RUN --mount from= a later stage is an error with its line', () => {
    const err = failure(() => plan('FROM busybox\nRUN --mount=from=later,target=/x true\nFROM busybox AS later\n'));
    expect(err.code).toBe('E_STAGE_NOT_FOUND');
    expect(err.message).toMatch(/RUN --mount from refers to stage "later"/);
    expect(err.line).toBe(2);
  });

  test('a Dockerfile without FROM is rejected', () => {
    const err = failure(() => planBuild({ stages: [], metaArgs: [], escapeToken: '\\' } as never, {}, 'Dockerfile'));
    expect(err.code).toBe('E_DOCKERFILE_PARSE');
  });
});

describe('a mistyped stage name', () => {
  const df = parseInstructions('FROM busybox AS build\nRUN true\nFROM busybox AS runtime\nCOPY --from=bulid /x /x\n');
  test('--target suggests the stage', () => {
    expect(failure(() => planBuild(df, {}, 'Dockerfile', 'bulid')).message).toMatch(/^target stage "bulid" could not be found \(did you mean build\?\); the stages are: build, runtime$/);
  });
  test('a bare --from name close to a stage is recognised; references with registry, tag or path are not', () => {
    expect(stageNamedLike(df, 'bulid')).toBe('build');
    expect(stageNamedLike(df, 'Runtme')).toBe('runtime');
    for (const ref of ['bulid:1', 'library/bulid', 'reg.io/build', 'alpine']) expect({ ref, stage: stageNamedLike(df, ref) }).toEqual({ ref, stage: undefined });
  });
});
