import { closest, didYouMean } from '../suggest.js';
import { parseReference } from '@stowage/registry-client';
import type { DockerfileInstructions, Stage } from '../frontend/index.js';
import { ShellLex } from '../frontend/index.js';
import { BuildError, StageNotFoundError } from '../errors.js';
import { mountFrom } from './mount-spec.js';

/** Where a stage (or a COPY --from) takes its filesystem from. */
export type Source =
  | { kind: 'scratch' }
  | { kind: 'stage'; index: number }
  | { kind: 'image'; ref: string };

export interface PlannedStage {
  stage: Stage;
  base: Source;
  /** Stage indices this stage needs first (its base and every COPY --from). */
  deps: Set<number>;
  /** COPY --from values resolved, keyed by the raw flag value. */
  copySources: Map<string, Source>;
  /** `from=` of RUN --mount specs resolved, keyed by the raw value (BuildKit plans them like COPY --from). */
  mountSources: Map<string, Source>;
}

export interface BuildPlan {
  stages: PlannedStage[];
  target: number;
  /** Indices of the stages the target needs, dependencies before dependants. */
  order: number[];
}

function stageLabel(stage: Stage): string {
  return stage.name ?? String(stage.index);
}

/**
 * Resolves FROM and COPY --from operands to stages or images, and picks the
 * stages the target needs. A name refers to an earlier stage (stage names are
 * case-insensitive); anything else must be a valid image reference.
 */
export function planBuild(df: DockerfileInstructions, metaEnv: Record<string, string>, file: string, target?: string): BuildPlan {
  if (df.stages.length === 0) throw new BuildError('E_DOCKERFILE_PARSE', 'the Dockerfile has no FROM instruction', { file, line: 1 });
  const lex = new ShellLex(df.escapeToken);
  const byName = new Map<string, number>();
  df.stages.forEach((s) => {
    if (s.name !== undefined && !byName.has(s.name)) byName.set(s.name, s.index);
  });

  const resolve = (raw: string, current: Stage, line: number, what: string, allowIndex: boolean): Source => {
    // BuildKit never expands --from (its newer versions say so; 26.1 fails parsing `${X}` as an image name).
    if (what !== 'FROM' && /\$./.test(raw)) {
      throw new BuildError('E_DOCKERFILE_PARSE', `${what}=${raw}: variable expansion is not supported for --from; declare the ARG before the first FROM, add a stage \`FROM \${VAR} AS name\` and use --from=name`, { file, line });
    }
    const value = what === 'FROM' ? lex.processWord(raw, metaEnv) : raw;
    if (value === '') throw new BuildError('E_DOCKERFILE_PARSE', `${what} value "${raw}" expands to an empty string`, { file, line });
    const named = byName.get(value.toLowerCase());
    if (named !== undefined) {
      if (named >= current.index) {
        throw new StageNotFoundError(`${what} refers to stage "${value}", which is not defined before this stage (forward references and cycles are not allowed)`, { file, line });
      }
      return { kind: 'stage', index: named };
    }
    if (allowIndex && /^\d+$/.test(value)) {
      const index = Number(value);
      if (index >= current.index) {
        throw new StageNotFoundError(`${what} refers to stage ${index}, which is not defined before this stage`, { file, line });
      }
      return { kind: 'stage', index };
    }
    if (value.toLowerCase() === 'scratch' && what === 'FROM') return { kind: 'scratch' };
    try {
      parseReference(value);
    } catch (err) {
      throw new StageNotFoundError(`${what} "${value}" is neither a build stage nor a valid image reference: ${(err as Error).message}`, { file, line });
    }
    return { kind: 'image', ref: value };
  };

  const stages: PlannedStage[] = df.stages.map((stage) => {
    const base = resolve(stage.baseName, stage, stage.range.start, 'FROM', false);
    const deps = new Set<number>();
    if (base.kind === 'stage') deps.add(base.index);
    const copySources = new Map<string, Source>();
    const mountSources = new Map<string, Source>();
    for (const cmd of stage.commands) {
      if ((cmd.kind === 'COPY' || cmd.kind === 'ADD') && cmd.from !== undefined) {
        const src = resolve(cmd.from, stage, cmd.range.start, 'COPY --from', true);
        copySources.set(cmd.from, src);
        if (src.kind === 'stage') deps.add(src.index);
      }
      if (cmd.kind === 'RUN') {
        for (const spec of cmd.flags.mounts) {
          const from = mountFrom(spec);
          if (from === undefined || mountSources.has(from)) continue;
          const src = resolve(from, stage, cmd.range.start, 'RUN --mount from', true);
          mountSources.set(from, src);
          if (src.kind === 'stage') deps.add(src.index);
        }
      }
    }
    return { stage, base, deps, copySources, mountSources };
  });

  let targetIndex = df.stages.length - 1;
  if (target !== undefined) {
    const found = byName.get(target.toLowerCase());
    if (found === undefined) {
      const names = df.stages.map(stageLabel).join(', ');
      throw new StageNotFoundError(`target stage "${target}" could not be found${didYouMean(target.toLowerCase(), stageNames(df))}; the stages are: ${names}`);
    }
    targetIndex = found;
  }

  const order: number[] = [];
  const seen = new Set<number>();
  const visit = (i: number) => {
    if (seen.has(i)) return;
    seen.add(i);
    for (const d of stages[i]!.deps) visit(d);
    order.push(i);
  };
  visit(targetIndex);
  return { stages, target: targetIndex, order };
}

/** The names given with `AS`, lowercased as they are matched. */
function stageNames(df: DockerfileInstructions): string[] {
  return df.stages.flatMap((s) => (s.name !== undefined ? [s.name.toLowerCase()] : []));
}

/**
 * A stage name that `ref` looks like a typo of, when `ref` is a bare name
 * (no registry, path, tag or digest): `COPY --from=bulid` is pulled as the
 * image docker.io/library/bulid, as BuildKit does, but when that fails the
 * error should say what was probably meant.
 */
export function stageNamedLike(df: DockerfileInstructions, ref: string): string | undefined {
  if (/[/:@.]/.test(ref)) return undefined;
  return closest(ref.toLowerCase(), stageNames(df));
}
