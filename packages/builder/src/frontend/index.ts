export type { Heredoc, Node, ParseDirectives, ParseResult, ParseWarning, SourceRange } from './ast.js';
export { nodeArgs } from './ast.js';
export { dumpNode, goQuote } from './dump.js';
export { DockerfileParseError, ShellExpansionError } from './errors.js';
export { chompHeredocContent, parseHeredocMarker } from './heredoc.js';
export { parse, MAX_DOCKERFILE_BYTES, type ParseOptions } from './parser.js';
export { ShellLex, type ShellEnv, type ShellLexOptions, type ShellWordResult } from './shell-lex.js';
export { parseInstructions, type ParseInstructionsOptions } from './instructions.js';
export type {
  AddCommand,
  ArgCommand,
  CmdCommand,
  Command,
  CommandKind,
  CopyCommand,
  DockerfileInstructions,
  EntrypointCommand,
  EnvCommand,
  ExposeCommand,
  HealthcheckCommand,
  KeyValuePair,
  LabelCommand,
  MaintainerCommand,
  OnbuildCommand,
  RunCommand,
  RunFlags,
  ShellCommand,
  SourcesAndDest,
  Stage,
  StopSignalCommand,
  UserCommand,
  VolumeCommand,
  WorkdirCommand,
} from './commands.js';
