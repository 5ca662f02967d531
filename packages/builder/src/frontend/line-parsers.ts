import { chain, newNode, type Node } from './ast.js';
import { cutAtFirstBlank, isSpace, splitBlanks, trimLeftSpace, trimSpace } from './chars.js';

/**
 * Turning one logical line into keyword, flags and argument nodes, per
 * instruction, exactly as BuildKit's parser does. Nothing here expands
 * variables or removes quotes (except in flags and JSON arrays); that is the
 * job of the typed layer and the build engine.
 */

/** Settings the argument parsers depend on. */
export interface LineContext {
  escapeToken: string;
  /** How many ONBUILDs wrap the line being parsed. */
  onbuildDepth?: number;
}

/** `ONBUILD ONBUILD …` is refused later anyway; this only keeps the recursion shallow. */
const MAX_ONBUILD_DEPTH = 16;

type Shaped = { next: Node | undefined; json?: boolean };
type ArgParser = (rest: string, ctx: LineContext) => Shaped;

export interface SplitLine {
  keyword: string;
  flags: string[];
  args: string;
}

/** Keyword, `--flags` and trimmed argument text of a logical line. */
export function splitCommand(line: string, ctx: LineContext): SplitLine {
  const [keyword, rest] = cutAtFirstBlank(trimSpace(line));
  if (rest === undefined) return { keyword, flags: [], args: '' };
  const { args, flags } = extractBuilderFlags(rest, ctx.escapeToken);
  return { keyword, flags, args: trimSpace(args) };
}

/**
 * Leading `--name[=value]` words. Quotes inside a flag are removed (keeping
 * any whitespace inside them) and the escape token makes the next character
 * literal. A bare `--` ends the flags and is dropped.
 */
export function extractBuilderFlags(line: string, escapeToken: string): { args: string; flags: string[] } {
  const flags: string[] = [];
  let pos = 0;
  for (;;) {
    while (pos < line.length && isSpace(line[pos]!)) pos++;
    if (pos >= line.length) return { args: '', flags };
    if (!line.startsWith('--', pos)) return { args: line.slice(pos), flags };

    let word = '';
    let quote = '';
    let blankOK = false;
    for (; pos < line.length; pos++) {
      let ch = line[pos]!;
      if (quote !== '') {
        if (ch === quote) {
          quote = '';
          continue;
        }
      } else {
        if (isSpace(ch)) break;
        if (ch === "'" || ch === '"') {
          quote = ch;
          blankOK = true;
          continue;
        }
      }
      if (ch === escapeToken) {
        if (pos + 1 === line.length) {
          quote = ''; // a trailing escape is dropped, even inside quotes
          continue;
        }
        ch = line[++pos]!;
      }
      word += ch;
    }
    if (word === '--') return { args: pos < line.length ? line.slice(pos) : '', flags };
    if (blankOK || word.length > 0) flags.push(word);
  }
}

/**
 * Quote-aware word splitter used at parse time by ENV, LABEL and ARG. Quotes
 * and escapes are kept in the words; they only stop whitespace from splitting.
 */
export function parseWords(rest: string, escapeToken: string): string[] {
  const words: string[] = [];
  const chars = Array.from(rest);
  let word = '';
  let inWord = false;
  let quote = '';
  let blankOK = false;

  for (let i = 0; i < chars.length; i++) {
    let ch = chars[i]!;
    if (!inWord) {
      if (isSpace(ch)) continue;
      inWord = true;
    }
    if (quote === '') {
      if (isSpace(ch)) {
        if (blankOK || word.length > 0) words.push(word);
        word = '';
        blankOK = false;
        inWord = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
      } else if (ch === escapeToken) {
        if (i + 1 === chars.length) continue; // trailing escape is dropped
        // An escaped character, even a quote, is copied verbatim.
        word += ch;
        ch = chars[++i]!;
      }
      word += ch;
      continue;
    }
    // Inside quotes.
    if (ch === quote) {
      quote = '';
    } else if (ch === escapeToken && quote !== "'") {
      if (i + 1 === chars.length) {
        quote = '';
        continue;
      }
      word += ch;
      ch = chars[++i]!;
    }
    word += ch;
  }
  if (inWord && (blankOK || word.length > 0)) words.push(word);
  return words;
}

/** ENV and LABEL: `key value` (legacy) or `k=v k2=v2`, as key/value/separator triples. */
function parseNameVal(rest: string, ctx: LineContext, keyword: string): Shaped {
  const words = parseWords(rest, ctx.escapeToken);
  if (words.length === 0) return { next: undefined };

  if (!words[0]!.includes('=')) {
    const [key, value] = cutAtFirstBlank(rest);
    if (value === undefined) throw new Error(`${keyword} must have two arguments`);
    return { next: chain([key, value, '']) };
  }

  const values: string[] = [];
  for (const word of words) {
    const eq = word.indexOf('=');
    if (eq < 0) {
      throw new Error(`Syntax error - can't find = in ${JSON.stringify(word)}. Must be of the form: name=value`);
    }
    values.push(word.slice(0, eq), word.slice(eq + 1), '=');
  }
  return { next: chain(values) };
}

const parseEnv: ArgParser = (rest, ctx) => parseNameVal(rest, ctx, 'ENV');
const parseLabel: ArgParser = (rest, ctx) => parseNameVal(rest, ctx, 'LABEL');

/** ARG: one node per quote-aware word; `name` and `name=value` are told apart later. */
const parseNameOrNameVal: ArgParser = (rest, ctx) => ({ next: chain(parseWords(rest, ctx.escapeToken)) });

/** FROM, EXPOSE: blank-separated words; quotes are not special. */
const parseStringsWhitespaceDelimited: ArgParser = (rest) => {
  if (rest === '') return { next: undefined };
  return { next: chain(splitBlanks(rest)) };
};

/** MAINTAINER, USER, WORKDIR, STOPSIGNAL: the whole text as one argument. */
const parseString: ArgParser = (rest) => ({ next: rest === '' ? undefined : newNode(rest) });

/** Marker for "valid JSON, but not an array of strings": a hard error, not a fallback. */
class NotStringArrayError extends Error {
  constructor() {
    super('dockerfile json array must be an array of strings');
  }
}

/**
 * `[ "a", "b" ]`. Returns undefined when the text is not JSON (the caller then
 * falls back to shell form). Like Go's `json.Decoder`, only the first JSON
 * value counts; anything after its closing bracket is ignored.
 */
export function parseJsonArray(rest: string): string[] | undefined {
  const text = trimLeftSpace(rest);
  if (!text.startsWith('[')) return undefined;
  const end = endOfJsonValue(text);
  if (end < 0) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text.slice(0, end));
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed)) return undefined;
  const out: string[] = [];
  for (const item of parsed as unknown[]) {
    if (typeof item !== 'string') throw new NotStringArrayError();
    out.push(item);
  }
  return out;
}

/** Index just past the bracketed value starting at 0, or -1 if it never closes. */
function endOfJsonValue(text: string): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (ch === '[' || ch === '{') depth++;
    else if (ch === ']' || ch === '}') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/** RUN, CMD, ENTRYPOINT, SHELL: JSON array, else the whole text as one argument. */
const parseMaybeJSON: ArgParser = (rest) => {
  if (rest === '') return { next: undefined };
  const arr = parseJsonArray(rest);
  if (arr !== undefined) return { next: chain(arr), json: true };
  return { next: newNode(rest) };
};

/** ADD, COPY, VOLUME: JSON array, else blank-separated words. */
const parseMaybeJSONToList: ArgParser = (rest, ctx) => {
  const arr = parseJsonArray(rest);
  if (arr !== undefined) return { next: chain(arr), json: true };
  return parseStringsWhitespaceDelimited(rest, ctx);
};

/** HEALTHCHECK: the type word (`CMD`, `NONE`…), then the rest like RUN. */
const parseHealthConfig: ArgParser = (rest, ctx) => {
  let sep = 0;
  while (sep < rest.length && !isSpace(rest[sep]!)) sep++;
  if (sep === 0) return { next: undefined };
  let next = sep;
  while (next < rest.length && isSpace(rest[next]!)) next++;
  const cmd = parseMaybeJSON(rest.slice(next), ctx);
  const shaped: Shaped = { next: newNode(rest.slice(0, sep), cmd.next) };
  if (cmd.json) shaped.json = true;
  return shaped;
};

/** ONBUILD: the wrapped instruction becomes the single child of one argument node. */
const parseSubCommand: ArgParser = (rest, ctx) => {
  if (rest === '') return { next: undefined };
  const depth = (ctx.onbuildDepth ?? 0) + 1;
  if (depth > MAX_ONBUILD_DEPTH) throw new Error(`ONBUILD nested more than ${MAX_ONBUILD_DEPTH} deep`);
  const wrapper = newNode('');
  wrapper.children.push(nodeFromLine(rest, { ...ctx, onbuildDepth: depth }, []));
  return { next: wrapper };
};

/** Unknown keywords still parse (the typed layer rejects them), as in BuildKit. */
const parseIgnore: ArgParser = () => ({ next: newNode('') });

const DISPATCH: Readonly<Record<string, ArgParser>> = {
  add: parseMaybeJSONToList,
  arg: parseNameOrNameVal,
  cmd: parseMaybeJSON,
  copy: parseMaybeJSONToList,
  entrypoint: parseMaybeJSON,
  env: parseEnv,
  expose: parseStringsWhitespaceDelimited,
  from: parseStringsWhitespaceDelimited,
  healthcheck: parseHealthConfig,
  label: parseLabel,
  maintainer: parseString,
  onbuild: parseSubCommand,
  run: parseMaybeJSON,
  shell: parseMaybeJSON,
  stopsignal: parseString,
  user: parseString,
  volume: parseMaybeJSONToList,
  workdir: parseString,
};

/** One instruction node from a logical line. Throws plain Errors; the caller adds the line. */
export function nodeFromLine(line: string, ctx: LineContext, comments: string[]): Node {
  const { keyword, flags, args } = splitCommand(line, ctx);
  const key = keyword.toLowerCase();
  const fn = Object.prototype.hasOwnProperty.call(DISPATCH, key) ? DISPATCH[key]! : parseIgnore;
  const shaped = fn(args, ctx);
  const node = newNode(keyword, shaped.next);
  node.original = line;
  node.flags = flags;
  if (shaped.json) node.attributes.json = true;
  node.prevComment = comments;
  return node;
}
