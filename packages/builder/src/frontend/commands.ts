import type { Heredoc, SourceRange } from './ast.js';

/**
 * The typed instruction layer's data model. Every value is left exactly as
 * written (quotes, `$VAR` references and escapes intact): ENV and ARG change
 * the environment as a stage progresses, so only the engine, at execution
 * time, can expand them (with `ShellLex`).
 */

interface CommandBase {
  /** Lines the instruction occupies, continuation and heredoc lines included. */
  range: SourceRange;
  /** The instruction's logical line, trimmed (heredoc bodies not included). */
  original: string;
}

export interface KeyValuePair {
  key: string;
  value: string;
}

export interface ArgCommand extends CommandBase {
  kind: 'ARG';
  /** `value` is absent for a bare `ARG name`, and '' for `ARG name=`. */
  args: { key: string; value?: string }[];
}

export interface EnvCommand extends CommandBase {
  kind: 'ENV';
  /** For the legacy `ENV key value words` form: one pair, value = the rest of the line. */
  pairs: KeyValuePair[];
}

export interface LabelCommand extends CommandBase {
  kind: 'LABEL';
  pairs: KeyValuePair[];
}

export interface WorkdirCommand extends CommandBase {
  kind: 'WORKDIR';
  path: string;
}

export interface UserCommand extends CommandBase {
  kind: 'USER';
  user: string;
}

export interface ExposeCommand extends CommandBase {
  kind: 'EXPOSE';
  /** Sorted, as BuildKit does. */
  ports: string[];
}

export interface VolumeCommand extends CommandBase {
  kind: 'VOLUME';
  volumes: string[];
}

export interface StopSignalCommand extends CommandBase {
  kind: 'STOPSIGNAL';
  signal: string;
}

export interface MaintainerCommand extends CommandBase {
  kind: 'MAINTAINER';
  maintainer: string;
}

export interface RunFlags {
  /** Raw `--mount` specs (`type=cache,target=/root/.cache`), in order. */
  mounts: string[];
  /** `default`, `none` or `host`. */
  network?: string;
  /** `sandbox` or `insecure`. */
  security?: string;
}

export interface RunCommand extends CommandBase {
  kind: 'RUN';
  /** Shell form runs `cmd[0]` through the stage's SHELL; exec form runs `cmd` directly. */
  shellForm: boolean;
  /** Shell form: `[command line]` (heredoc markers still in it); JSON form: the array. */
  cmd: string[];
  /**
   * Heredocs in the order declared. `content` is final: for `<<-` the leading
   * tabs are already stripped. Expand it when `expand` is true.
   */
  heredocs: Heredoc[];
  flags: RunFlags;
}

export interface CmdCommand extends CommandBase {
  kind: 'CMD';
  shellForm: boolean;
  cmd: string[];
}

export interface EntrypointCommand extends CommandBase {
  kind: 'ENTRYPOINT';
  shellForm: boolean;
  cmd: string[];
}

export interface ShellCommand extends CommandBase {
  kind: 'SHELL';
  shell: string[];
}

/**
 * Shared by COPY and ADD.
 *
 * Heredoc sources: BuildKit splits sources into paths and inline contents.
 * Here `sources` keeps every source operand as written, in order — a heredoc
 * source appears as its marker (`<<EOF`, `<<-"EOF"`) — and `heredocs` holds
 * one entry per heredoc source, in the same order as those markers. So
 * `COPY <<EOF /dst` gives `sources: ['<<EOF']`, `heredocs: [{ name: 'EOF', … }]`.
 * Heredoc `content` is final (`<<-` tabs already stripped).
 */
export interface SourcesAndDest {
  sources: string[];
  dest: string;
  heredocs: Heredoc[];
  /** COPY only: stage name/index or image to copy from. */
  from?: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  /** COPY only: `--parents` when given. */
  parents?: boolean;
  exclude: string[];
  /** ADD only. */
  checksum?: string;
  /** ADD only: `--keep-git-dir` when given. */
  keepGitDir?: boolean;
  /** ADD only: `--unpack` when given. */
  unpack?: boolean;
}

export interface CopyCommand extends CommandBase, SourcesAndDest {
  kind: 'COPY';
}

export interface AddCommand extends CommandBase, SourcesAndDest {
  kind: 'ADD';
}

export interface HealthcheckCommand extends CommandBase {
  kind: 'HEALTHCHECK';
  /**
   * `'NONE'` disables an inherited check. Otherwise in image-config form:
   * `['CMD-SHELL', line]` for shell form, `['CMD', ...argv]` for JSON form.
   */
  test: string[] | 'NONE';
  /** Durations in nanoseconds (the image config's unit); absent when not given. */
  interval?: number;
  timeout?: number;
  startPeriod?: number;
  startInterval?: number;
  retries?: number;
}

export interface OnbuildCommand extends CommandBase {
  kind: 'ONBUILD';
  /** The trigger as it goes into the image config: `RUN echo hi` (heredoc bodies appended). */
  expression: string;
}

export type Command =
  | ArgCommand
  | EnvCommand
  | LabelCommand
  | WorkdirCommand
  | UserCommand
  | ExposeCommand
  | VolumeCommand
  | StopSignalCommand
  | MaintainerCommand
  | RunCommand
  | CmdCommand
  | EntrypointCommand
  | ShellCommand
  | CopyCommand
  | AddCommand
  | HealthcheckCommand
  | OnbuildCommand;

export type CommandKind = Command['kind'];

export interface Stage {
  /** Lower-cased `AS` name. */
  name?: string;
  /** Position among the stages, from 0. */
  index: number;
  /** The FROM operand, unexpanded (may reference meta ARGs or an earlier stage). */
  baseName: string;
  /** Raw `--platform` value, unexpanded. */
  platform?: string;
  commands: Command[];
  /** Lines of the FROM instruction. */
  range: SourceRange;
  /** The FROM line, trimmed. */
  original: string;
}

export interface DockerfileInstructions {
  /** ARGs before the first FROM. */
  metaArgs: ArgCommand[];
  stages: Stage[];
  escapeToken: string;
  syntax?: string;
  /** The `# check=` directive, verbatim. */
  check?: string;
  warnings: { message: string; line: number }[];
}
