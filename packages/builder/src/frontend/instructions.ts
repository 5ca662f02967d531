import { nodeArgs, type Heredoc, type Node, type SourceRange } from './ast.js';
import { BFlags } from './bflags.js';
import { trimSpace } from './chars.js';
import type {
  AddCommand,
  ArgCommand,
  Command,
  CopyCommand,
  DockerfileInstructions,
  HealthcheckCommand,
  KeyValuePair,
  RunCommand,
  SourcesAndDest,
  Stage,
} from './commands.js';
import { parseGoDuration } from './duration.js';
import { DockerfileParseError, excerpt } from './errors.js';
import { didYouMean } from '../suggest.js';
import { chompHeredocContent, parseHeredocMarker } from './heredoc.js';
import { parse } from './parser.js';

/**
 * The typed instruction layer (BuildKit's `instructions` package): validates
 * each AST node and turns it into a `Command`, and groups commands into
 * stages. Values stay unexpanded; see commands.ts.
 */

export interface ParseInstructionsOptions {
  /** Only used to label errors. */
  file?: string;
}

/** BuildKit's rule; names are compared lower-cased. */
const VALID_STAGE_NAME = /^[a-z][a-z0-9\-_.]*$/;

const INSTRUCTIONS = [
  'ADD', 'ARG', 'CMD', 'COPY', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'FROM', 'HEALTHCHECK', 'LABEL',
  'MAINTAINER', 'ONBUILD', 'RUN', 'SHELL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR',
] as const;

const NETWORK_MODES = ['default', 'none', 'host'];
const SECURITY_MODES = ['sandbox', 'insecure'];
const MOUNT_TYPES = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'];

/** 1 ms: Docker's minimum for a non-zero healthcheck duration. */
const MIN_HEALTHCHECK_NS = 1e6;

export function parseInstructions(text: string, opts: ParseInstructionsOptions = {}): DockerfileInstructions {
  try {
    return fromAst(text);
  } catch (err) {
    if (err instanceof DockerfileParseError) throw err.withFile(opts.file);
    throw err;
  }
}

function fromAst(text: string): DockerfileInstructions {
  const result = parse(text);
  const metaArgs: ArgCommand[] = [];
  const stages: Stage[] = [];
  const stageLines = new Map<string, number>();

  for (const node of result.ast.children) {
    const parsed = parseNode(node);
    if (parsed.kind === 'FROM') {
      const stage: Stage = { ...parsed.stage, index: stages.length };
      if (stage.name !== undefined) {
        const first = stageLines.get(stage.name);
        if (first !== undefined) {
          throw new DockerfileParseError(
            `duplicate stage name ${JSON.stringify(stage.name)} (first defined on line ${first})`,
            node.startLine,
          );
        }
        stageLines.set(stage.name, node.startLine);
      }
      stages.push(stage);
      continue;
    }
    const current = stages[stages.length - 1];
    if (current === undefined) {
      if (parsed.kind === 'ARG') {
        metaArgs.push(parsed);
        continue;
      }
      throw new DockerfileParseError(
        `${parsed.kind} instruction before the first FROM: only ARG may come before FROM`,
        node.startLine,
      );
    }
    current.commands.push(parsed);
  }

  if (stages.length === 0) {
    const line = result.ast.endLine;
    throw new DockerfileParseError('no build stage: the Dockerfile has no FROM instruction', line);
  }

  const out: DockerfileInstructions = {
    metaArgs,
    stages,
    escapeToken: result.escapeToken,
    warnings: result.warnings,
  };
  if (result.directives.syntax !== undefined) out.syntax = result.directives.syntax;
  if (result.directives.check !== undefined) out.check = result.directives.check;
  return out;
}

type FromResult = { kind: 'FROM'; stage: Omit<Stage, 'index'> };

/** Everything an instruction parser needs from its node. */
interface Request {
  node: Node;
  keyword: string;
  args: string[];
  json: boolean;
  base: { range: SourceRange; original: string };
  flags(): BFlags;
}

function parseNode(node: Node): Command | FromResult {
  const keyword = node.value.toUpperCase();
  const req: Request = {
    node,
    keyword,
    args: nodeArgs(node),
    json: node.attributes.json === true,
    base: { range: { start: node.startLine, end: node.endLine }, original: trimSpace(node.original) },
    flags: () => new BFlags(keyword, node.flags),
  };
  try {
    return dispatch(req);
  } catch (err) {
    if (err instanceof DockerfileParseError) throw err;
    throw new DockerfileParseError((err as Error).message, node.startLine);
  }
}

function dispatch(req: Request): Command | FromResult {
  switch (req.keyword) {
    case 'FROM': return parseFrom(req);
    case 'ARG': return parseArg(req);
    case 'ENV': return { kind: 'ENV', ...req.base, pairs: parseKvps(req) };
    case 'LABEL': return { kind: 'LABEL', ...req.base, pairs: parseKvps(req) };
    case 'WORKDIR': return { kind: 'WORKDIR', ...req.base, path: exactlyOne(req) };
    case 'USER': return { kind: 'USER', ...req.base, user: exactlyOne(req) };
    case 'STOPSIGNAL': return { kind: 'STOPSIGNAL', ...req.base, signal: exactlyOne(req) };
    case 'MAINTAINER': return { kind: 'MAINTAINER', ...req.base, maintainer: exactlyOne(req) };
    case 'EXPOSE': {
      atLeastOne(req);
      req.flags().parse();
      return { kind: 'EXPOSE', ...req.base, ports: [...req.args].sort() };
    }
    case 'VOLUME': return parseVolume(req);
    case 'RUN': return parseRun(req);
    case 'CMD':
    case 'ENTRYPOINT': {
      req.flags().parse();
      return { kind: req.keyword, ...req.base, shellForm: !req.json, cmd: commandLine(req) };
    }
    case 'SHELL': return parseShell(req);
    case 'COPY':
    case 'ADD': return parseCopyOrAdd(req);
    case 'HEALTHCHECK': return parseHealthcheck(req);
    case 'ONBUILD': return parseOnbuild(req);
  }
  throw new Error(`unknown instruction: ${excerpt(req.node.value)}${suggestInstruction(req.keyword)}`);
}

function atLeastOne(req: Request): void {
  if (req.args.length === 0) throw new Error(`${req.keyword} requires at least one argument`);
}

function exactlyOne(req: Request): string {
  if (req.args.length !== 1) throw new Error(`${req.keyword} requires exactly one argument`);
  req.flags().parse();
  return req.args[0]!;
}

/** Shell form: one string (the command line); JSON form: the array as is. */
function commandLine(req: Request): string[] {
  if (req.args.length === 0) return [];
  return req.json ? [...req.args] : [req.args.join(' ')];
}

function parseFrom(req: Request): FromResult {
  const { args } = req;
  let name: string | undefined;
  if (args.length === 3 && args[1]!.toLowerCase() === 'as') {
    name = args[2]!.toLowerCase();
    if (!VALID_STAGE_NAME.test(name)) {
      throw new Error(
        `invalid name for build stage: ${JSON.stringify(args[2])}, name can't start with a number or contain symbols`,
      );
    }
  } else if (args.length === 3) {
    throw new Error(`FROM expects "FROM <image> AS <name>", found ${JSON.stringify(args[1])} instead of AS`);
  } else if (args.length !== 1) {
    throw new Error('FROM requires either one or three arguments: FROM <image> [AS <name>]');
  }
  const platform = req.flags().addString('platform').parse().string('platform');

  const stage: Omit<Stage, 'index'> = { baseName: args[0]!, commands: [], ...req.base };
  if (name !== undefined) stage.name = name;
  if (platform !== undefined) stage.platform = platform;
  return { kind: 'FROM', stage };
}

function parseArg(req: Request): ArgCommand {
  atLeastOne(req);
  req.flags().parse();
  const args = req.args.map((word) => {
    const eq = word.indexOf('=');
    if (eq < 0) return { key: word };
    if (eq === 0) throw new Error('ARG names can not be blank');
    return { key: word.slice(0, eq), value: word.slice(eq + 1) };
  });
  return { kind: 'ARG', ...req.base, args };
}

/** ENV/LABEL nodes come in (key, value, separator) triples; see line-parsers.ts. */
function parseKvps(req: Request): KeyValuePair[] {
  atLeastOne(req);
  req.flags().parse();
  if (req.args.length % 3 !== 0) throw new Error(`Bad input to ${req.keyword}, too many arguments`);
  const pairs: KeyValuePair[] = [];
  for (let i = 0; i < req.args.length; i += 3) {
    const key = req.args[i]!;
    if (key === '') throw new Error(`${req.keyword} names can not be blank`);
    pairs.push({ key, value: req.args[i + 1]! });
  }
  return pairs;
}

function parseVolume(req: Request): Command {
  atLeastOne(req);
  req.flags().parse();
  const volumes = req.args.map((v) => {
    const trimmed = trimSpace(v);
    if (trimmed === '') throw new Error('VOLUME specified can not be an empty string');
    return trimmed;
  });
  return { kind: 'VOLUME', ...req.base, volumes };
}

function parseShell(req: Request): Command {
  req.flags().parse();
  if (req.args.length === 0) throw new Error('SHELL requires at least one argument');
  if (!req.json) throw new Error('SHELL requires the arguments to be in JSON form, e.g. SHELL ["/bin/sh", "-c"]');
  return { kind: 'SHELL', ...req.base, shell: [...req.args] };
}

/** Heredoc bodies as commands consume them: `<<-` tabs stripped. */
function finalHeredoc(h: Heredoc): Heredoc {
  return h.chomp ? { ...h, content: chompHeredocContent(h.content) } : { ...h };
}

function parseRun(req: Request): RunCommand {
  const flags = req.flags().addStrings('mount').addString('network').addString('security').parse();
  if (req.args.length === 0) throw new Error('RUN requires at least one argument');

  const mounts = flags.strings('mount');
  for (const spec of mounts) validateMount(spec);
  const network = flags.string('network');
  if (network !== undefined && !NETWORK_MODES.includes(network)) {
    throw new Error(`unsupported network mode ${JSON.stringify(network)}: expected one of ${NETWORK_MODES.join(', ')}`);
  }
  const security = flags.string('security');
  if (security !== undefined && !SECURITY_MODES.includes(security)) {
    throw new Error(`unsupported security mode ${JSON.stringify(security)}: expected one of ${SECURITY_MODES.join(', ')}`);
  }

  const runFlags: RunCommand['flags'] = { mounts };
  if (network !== undefined) runFlags.network = network;
  if (security !== undefined) runFlags.security = security;
  return {
    kind: 'RUN',
    ...req.base,
    shellForm: !req.json,
    cmd: commandLine(req),
    heredocs: req.node.heredocs.map(finalHeredoc),
    flags: runFlags,
  };
}

/** Only the mount type is checked here; the engine interprets the rest of the spec. */
function validateMount(spec: string): void {
  for (const field of spec.split(',')) {
    const [key, value] = splitOnce(field.trim(), '=');
    if (key.toLowerCase() === 'type' && value !== undefined && !MOUNT_TYPES.includes(value.toLowerCase())) {
      throw new Error(`unsupported mount type ${JSON.stringify(value)}: expected one of ${MOUNT_TYPES.join(', ')}`);
    }
  }
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + sep.length)];
}

function parseCopyOrAdd(req: Request): CopyCommand | AddCommand {
  const isCopy = req.keyword === 'COPY';
  if (req.args.length < 2) {
    throw new Error(
      `${req.keyword} requires at least two arguments, but only ${req.args.length === 0 ? 'none were' : 'one was'} provided. Destination could not be determined.`,
    );
  }
  const flags = req.flags().addStrings('exclude').addString('chown').addString('chmod').addBool('link');
  if (isCopy) flags.addString('from').addBool('parents');
  else flags.addBool('keep-git-dir').addString('checksum').addBool('unpack');
  flags.parse();

  const sources = req.args.slice(0, -1);
  const dest = req.args[req.args.length - 1]!;
  // JSON form never has heredocs: `["<<EOF", "/dst"]` names a file called <<EOF.
  const marker = (word: string) => (req.json ? undefined : safeMarker(word));
  if (marker(dest) !== undefined) throw new Error(`${req.keyword} cannot accept a heredoc as a destination`);

  const byName = new Map(req.node.heredocs.map((h) => [h.name, h] as const));
  const heredocs: Heredoc[] = [];
  for (const src of sources) {
    const m = marker(src);
    if (m === undefined) continue;
    const h = byName.get(m.name) ?? { ...m, content: '' };
    heredocs.push(finalHeredoc(h));
  }

  const data: SourcesAndDest = {
    sources,
    dest,
    heredocs,
    link: flags.bool('link') ?? false,
    exclude: flags.strings('exclude'),
  };
  const chown = flags.string('chown');
  if (chown !== undefined) data.chown = chown;
  const chmod = flags.string('chmod');
  if (chmod !== undefined) data.chmod = chmod;
  if (isCopy) {
    const from = flags.string('from');
    if (from !== undefined) data.from = from;
    const parents = flags.bool('parents');
    if (parents !== undefined) data.parents = parents;
    return { kind: 'COPY', ...req.base, ...data };
  }
  const checksum = flags.string('checksum');
  if (checksum !== undefined) data.checksum = checksum;
  const keepGitDir = flags.bool('keep-git-dir');
  if (keepGitDir !== undefined) data.keepGitDir = keepGitDir;
  const unpack = flags.bool('unpack');
  if (unpack !== undefined) data.unpack = unpack;
  return { kind: 'ADD', ...req.base, ...data };
}

/** A malformed marker (`<<'EOF`) is an ordinary path, as in BuildKit. */
function safeMarker(word: string): ReturnType<typeof parseHeredocMarker> {
  try {
    return parseHeredocMarker(word);
  } catch {
    return undefined;
  }
}

function parseHealthcheck(req: Request): HealthcheckCommand {
  atLeastOne(req);
  const type = req.args[0]!.toUpperCase();
  const rest = req.args.slice(1);
  if (type === 'NONE') {
    if (rest.length !== 0 || req.node.flags.length !== 0) throw new Error('HEALTHCHECK NONE takes no arguments');
    return { kind: 'HEALTHCHECK', ...req.base, test: 'NONE' };
  }

  const flags = req
    .flags()
    .addString('interval')
    .addString('timeout')
    .addString('start-period')
    .addString('start-interval')
    .addString('retries')
    .parse();
  if (type !== 'CMD') throw new Error(`Unknown type ${JSON.stringify(type)} in HEALTHCHECK (try CMD)`);
  const cmd = req.json ? rest : rest.length === 0 ? [] : [rest.join(' ')];
  if (cmd.length === 0) throw new Error('Missing command after HEALTHCHECK CMD');

  const out: HealthcheckCommand = {
    kind: 'HEALTHCHECK',
    ...req.base,
    test: [req.json ? 'CMD' : 'CMD-SHELL', ...cmd],
  };
  const durations = [
    ['interval', 'interval'],
    ['timeout', 'timeout'],
    ['start-period', 'startPeriod'],
    ['start-interval', 'startInterval'],
  ] as const;
  for (const [flag, field] of durations) {
    const value = flags.string(flag);
    if (value !== undefined) out[field] = healthcheckDuration(flag, value);
  }
  const retries = flags.string('retries');
  if (retries !== undefined) {
    if (!/^[+-]?\d+$/.test(retries) || Math.abs(Number(retries)) > 2 ** 31 - 1) {
      throw new Error(`invalid value for --retries: ${JSON.stringify(retries)} is not an integer`);
    }
    const n = Number(retries);
    if (n < 0) throw new Error(`--retries cannot be negative (${n})`);
    out.retries = n;
  }
  return out;
}

function healthcheckDuration(flag: string, value: string): number {
  if (value === '') return 0;
  const ns = parseGoDuration(value);
  if (ns === undefined) throw new Error(`invalid duration for --${flag}: ${JSON.stringify(value)} (expected e.g. 30s, 1m30s)`);
  if (ns !== 0 && ns < MIN_HEALTHCHECK_NS) throw new Error(`Interval "${flag}" cannot be less than 1ms`);
  return ns;
}

function parseOnbuild(req: Request): Command {
  atLeastOne(req);
  req.flags().parse();
  const trigger = trimSpace(req.args[0]!).toUpperCase();
  if (trigger === 'ONBUILD') throw new Error('Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
  if (trigger === 'FROM' || trigger === 'MAINTAINER') throw new Error(`${trigger} isn't allowed as an ONBUILD trigger`);

  // Validate the trigger now so a broken one fails this build, not a later one.
  const wrapped = req.node.next?.children[0];
  if (wrapped !== undefined) {
    parseNode({ ...wrapped, heredocs: req.node.heredocs, startLine: req.node.startLine, endLine: req.node.endLine });
  }

  let expression = req.node.original.replace(/^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*/i, '');
  for (const h of req.node.heredocs) expression += '\n' + h.content + h.name;
  return { kind: 'ONBUILD', ...req.base, expression };
}

/** ` (did you mean COPY?)` for a near-miss keyword, else ''. */
function suggestInstruction(keyword: string): string {
  return didYouMean(keyword, INSTRUCTIONS);
}
