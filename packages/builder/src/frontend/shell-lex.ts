import { isDigit, isLetter, isSpace } from './chars.js';
import { ShellExpansionError } from './errors.js';

/**
 * Bounds that keep one word's expansion small and fast whatever the
 * Dockerfile says (BuildKit has none, but Go's growable stacks and linear
 * regexps make it degrade more gently). Real Dockerfiles stay far below:
 * `${a:-${b:-…}}` nests a handful deep, and a single environment string
 * cannot exceed 128 KiB on Linux anyway (MAX_ARG_STRLEN).
 */
export const MAX_SUBSTITUTION_DEPTH = 100;
/** For the word given and for its expansion (expanding costs tens of bytes per character). */
export const MAX_EXPANDED_CHARS = 1024 * 1024;
/** Automaton steps (text length × pattern length) one word's `#`, `%` and `/` operations may take. */
const MAX_PATTERN_WORK = 20_000_000;

/**
 * BuildKit's `shell.Lex`: the word expansion Dockerfile instructions get
 * (quote removal, escapes, `$VAR` / `${VAR…}` substitution and, for
 * `processWords`, word splitting). It deliberately is *not* a POSIX shell:
 * no globbing, no command substitution, no arithmetic, and variable names
 * are case-sensitive (the Linux behaviour).
 */

export type ShellEnv = Readonly<Record<string, string>> | ReadonlyMap<string, string>;

export interface ShellLexOptions {
  /** Keep quote characters in the output (used to detect quoted heredoc delimiters). */
  rawQuotes?: boolean;
  /** Keep escape characters in the output. */
  rawEscapes?: boolean;
  /** Leave references to unset variables as written instead of expanding to ''. */
  skipUnsetEnv?: boolean;
  /** Treat quotes as ordinary characters. */
  skipProcessQuotes?: boolean;
}

export interface ShellWordResult {
  /** The expanded word, whitespace preserved. */
  result: string;
  /** The expansion split into words. */
  words: string[];
  /** Variable names that were looked up and found. */
  matched: Set<string>;
  /** Variable names that were looked up and not set. */
  unmatched: Set<string>;
}

export class ShellLex {
  rawQuotes: boolean;
  rawEscapes: boolean;
  skipUnsetEnv: boolean;
  skipProcessQuotes: boolean;

  constructor(
    readonly escapeToken: string = '\\',
    options: ShellLexOptions = {},
  ) {
    this.rawQuotes = options.rawQuotes ?? false;
    this.rawEscapes = options.rawEscapes ?? false;
    this.skipUnsetEnv = options.skipUnsetEnv ?? false;
    this.skipProcessQuotes = options.skipProcessQuotes ?? false;
  }

  /** Expand one word; whitespace is kept and nothing is split. */
  processWord(word: string, env: ShellEnv): string {
    return this.process(word, env).result;
  }

  /** Expand, then split into words the way BuildKit does (quoted text never splits). */
  processWords(word: string, env: ShellEnv): string[] {
    return this.process(word, env).words;
  }

  /** Both results plus which variables were referenced (for unused/undefined ARG reporting). */
  process(word: string, env: ShellEnv): ShellWordResult {
    if (word.length > MAX_EXPANDED_CHARS) {
      throw new ShellExpansionError(`failed to process ${JSON.stringify(clip(word))}: word longer than ${MAX_EXPANDED_CHARS} characters`);
    }
    const sw = new WordProcessor(this, word, env);
    try {
      const { result, words } = sw.processStopOn(undefined, this.rawEscapes);
      return { result, words, matched: sw.matched, unmatched: sw.unmatched };
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new ShellExpansionError(`failed to process ${JSON.stringify(clip(word))}: ${clip(msg, 300)}`);
    }
  }
}

/** Accumulates split words: unquoted text splits on whitespace, "raw" text never does. */
class WordCollector {
  private word = '';
  private readonly words: string[] = [];
  private inWord = false;

  addChar(ch: string): void {
    if (isSpace(ch)) {
      if (this.inWord && this.word.length !== 0) {
        this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      }
      return;
    }
    this.addRaw(ch);
  }

  addRaw(s: string): void {
    this.word += s;
    this.inWord = true;
  }

  addString(s: string): void {
    for (const ch of s) this.addChar(ch);
  }

  finish(): string[] {
    if (this.word.length > 0) {
      this.words.push(this.word);
      this.word = '';
      this.inWord = false;
    }
    return this.words;
  }
}

/** Internal failure; `ShellLex.process` rewraps it with the word being processed. */
class LexFailure extends Error {}

/** Messages quote the input; a 60 KiB word is not worth quoting whole. */
function clip(s: string, max = 100): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** One expansion run over one word (BuildKit's `shellWord`). */
class WordProcessor {
  private readonly chars: string[];
  private pos = 0;
  private rawEscapes: boolean;
  readonly matched = new Set<string>();
  readonly unmatched = new Set<string>();
  /** How many `${` we are inside. */
  private depth = 0;
  /** Shared by every pattern operation of this word. */
  private readonly budget = new Budget();

  constructor(
    private readonly lex: ShellLex,
    word: string,
    private readonly env: ShellEnv,
  ) {
    this.chars = Array.from(word);
    // Go's text/scanner silently skips a byte-order mark at the very start.
    if (this.chars[0] === '\ufeff') this.pos = 1;
    this.rawEscapes = lex.rawEscapes;
  }

  private peek(): string | undefined {
    return this.chars[this.pos];
  }

  private next(): string | undefined {
    const ch = this.chars[this.pos];
    if (ch !== undefined) this.pos++;
    return ch;
  }

  /** Process until `stop` (consumed) or end of input when `stop` is undefined. */
  processStopOn(stop: string | undefined, rawEscapes: boolean): { result: string; words: string[] } {
    const saved = this.rawEscapes;
    this.rawEscapes = rawEscapes;
    try {
      return this.scan(stop);
    } finally {
      this.rawEscapes = saved;
    }
  }

  private scan(stop: string | undefined): { result: string; words: string[] } {
    const esc = this.lex.escapeToken;
    const quotes = !this.lex.skipProcessQuotes;
    let result = '';
    const words = new WordCollector();

    for (let ch = this.peek(); ch !== undefined; ch = this.peek()) {
      if (stop !== undefined && ch === stop) {
        this.next();
        return { result, words: words.finish() };
      }
      if (ch === '$') {
        const value = this.processDollar();
        result += value;
        checkSize(result);
        // Unquoted expansions are subject to word splitting.
        words.addString(value);
        continue;
      }
      if (quotes && (ch === "'" || ch === '"')) {
        const value = ch === "'" ? this.processSingleQuote() : this.processDoubleQuote();
        result += value;
        words.addRaw(value);
        continue;
      }

      this.next();
      if (ch === esc) {
        if (this.rawEscapes) {
          words.addRaw(ch);
          result += ch;
        }
        const escaped = this.next();
        if (escaped === undefined) break; // a lone trailing escape is dropped
        words.addRaw(escaped);
        result += escaped;
        continue;
      }
      if (ch === '<' && this.peek() === '<') {
        // Keep a heredoc marker and its delimiter together (`<< EOF` is one
        // word) so heredoc detection sees the whole marker.
        this.next();
        words.addRaw('<<');
        result += '<<';
        for (let b = this.peek(); b === ' ' || b === '\t'; b = this.peek()) {
          this.next();
          words.addRaw(b);
          result += b;
        }
        continue;
      }
      words.addChar(ch);
      result += ch;
    }

    if (stop !== undefined) {
      throw new LexFailure(`unexpected end of statement while looking for matching ${stop}`);
    }
    return { result, words: words.finish() };
  }

  private processSingleQuote(): string {
    // Everything up to the next ' is literal; a single quote cannot be escaped.
    const raw = this.lex.rawQuotes;
    let result = '';
    const open = this.next()!;
    if (raw) result += open;
    for (;;) {
      const ch = this.next();
      if (ch === undefined) throw new LexFailure('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") {
        if (raw) result += ch;
        return result;
      }
      result += ch;
    }
  }

  private processDoubleQuote(): string {
    // Literal except `$` expansions; the escape only escapes `"`, `$` and itself.
    const raw = this.lex.rawQuotes;
    const esc = this.lex.escapeToken;
    let result = '';
    const open = this.next()!;
    if (raw) result += open;
    for (;;) {
      const peek = this.peek();
      if (peek === undefined) {
        throw new LexFailure('unexpected end of statement while looking for matching double-quote');
      }
      if (peek === '"') {
        this.next();
        if (raw) result += peek;
        return result;
      }
      if (peek === '$') {
        result += this.processDollar();
        checkSize(result);
        continue;
      }
      let ch = this.next()!;
      if (ch === esc) {
        if (this.rawEscapes) result += ch;
        const after = this.peek();
        if (after === undefined) continue; // escape at the very end is dropped
        if (after === '"' || after === '$' || after === esc) ch = this.next()!;
      }
      result += ch;
    }
  }

  private processDollar(): string {
    this.next(); // '$'
    if (this.peek() !== '{') {
      const name = this.processName();
      if (name === '') return '$';
      const value = this.getEnv(name);
      if (value === undefined && this.lex.skipUnsetEnv) return '$' + name;
      return value ?? '';
    }

    this.next(); // '{'
    if (this.depth >= MAX_SUBSTITUTION_DEPTH) throw new LexFailure(`substitutions nested more than ${MAX_SUBSTITUTION_DEPTH} deep`);
    this.depth++;
    try {
      return this.processBraced();
    } finally {
      this.depth--;
    }
  }

  /** After `${`: the name, an operator and its word, up to the closing `}`. */
  private processBraced(): string {
    const first = this.peek();
    if (first === undefined) throw new LexFailure("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new LexFailure('syntax error: bad substitution');

    const name = this.processName();
    let ch = this.next();
    let chs = ch ?? '';

    if (ch === '}') {
      const value = this.getEnv(name);
      if (value === undefined && this.lex.skipUnsetEnv) return `\${${name}}`;
      return value ?? '';
    }

    if (ch === '/') return this.processReplace(name);

    let nullIsUnset = false;
    if (ch === ':') {
      nullIsUnset = true;
      ch = this.next();
      chs += ch ?? '';
    } else if (ch !== '+' && ch !== '-' && ch !== '?' && ch !== '#' && ch !== '%') {
      throw new LexFailure(`unsupported modifier (${chs}) in substitution`);
    }

    const isTrim = ch === '#' || ch === '%';
    if (nullIsUnset && isTrim) throw new LexFailure(`unsupported modifier (${chs}) in substitution`);

    // Patterns keep their escapes so `\*` stays a literal star in the pattern.
    let word: string;
    try {
      word = this.processStopOn('}', isTrim).result;
    } catch (err) {
      if (this.peek() === undefined) throw new LexFailure("syntax error: missing '}'");
      throw err;
    }

    const value = this.getEnv(name);
    if (value === undefined && this.lex.skipUnsetEnv) return `\${${name}${chs}${word}}`;
    const unset = value === undefined || (nullIsUnset && value === '');

    switch (ch) {
      case '-':
        return unset ? word : value!;
      case '+':
        return unset ? '' : word;
      case '?':
        if (value === undefined) throw new LexFailure(`${name}: ${word !== '' ? word : 'is not allowed to be unset'}`);
        if (unset) throw new LexFailure(`${name}: ${word !== '' ? word : 'is not allowed to be empty'}`);
        return value;
      case '#':
      case '%': {
        // `#`/`%` remove the shortest match, `##`/`%%` the longest.
        const greedy = word.startsWith(ch);
        const pattern = greedy ? word.slice(1) : word;
        return ch === '%' ? trimSuffix(pattern, value ?? '', greedy, this.budget) : trimPrefix(pattern, value ?? '', greedy, this.budget);
      }
      default:
        throw new LexFailure(`unsupported modifier (${chs}) in substitution`);
    }
  }

  /** `${name/pattern/replacement}` and `${name//pattern/replacement}`. */
  private processReplace(name: string): string {
    const replaceAll = this.peek() === '/';
    if (replaceAll) this.next();

    let pattern: string;
    try {
      pattern = this.processStopOn('/', true).result;
    } catch (err) {
      if (this.peek() === undefined) throw new LexFailure("syntax error: missing '/' in ${}");
      throw err;
    }
    let replacement: string;
    try {
      replacement = this.processStopOn('}', true).result;
    } catch (err) {
      if (this.peek() === undefined) throw new LexFailure("syntax error: missing '}'");
      throw err;
    }

    const value = this.getEnv(name);
    if (value === undefined && this.lex.skipUnsetEnv) return `\${${name}/${pattern}/${replacement}}`;
    return replaceMatches(value ?? '', pattern, replacement, replaceAll, this.budget);
  }

  private processName(): string {
    let name = '';
    for (let ch = this.peek(); ch !== undefined; ch = this.peek()) {
      if (name === '' && isDigit(ch)) {
        // Positional parameter: all the digits, nothing else.
        for (let d = this.peek(); d !== undefined && isDigit(d); d = this.peek()) name += this.next();
        return name;
      }
      if (name === '' && isSpecialParam(ch)) {
        this.next();
        return ch;
      }
      if (!isLetter(ch) && !isDigit(ch) && ch !== '_') break;
      name += this.next();
    }
    return name;
  }

  private getEnv(name: string): string | undefined {
    let value: string | undefined;
    if (isMap(this.env)) {
      value = this.env.get(name);
    } else if (Object.prototype.hasOwnProperty.call(this.env, name)) {
      value = this.env[name];
    }
    (value === undefined ? this.unmatched : this.matched).add(name);
    return value;
  }
}

function checkSize(result: string): void {
  if (result.length > MAX_EXPANDED_CHARS) throw new LexFailure(`expansion longer than ${MAX_EXPANDED_CHARS} characters`);
}

function isMap(env: ShellEnv): env is ReadonlyMap<string, string> {
  return env instanceof Map;
}

function isSpecialParam(ch: string): boolean {
  return '@*#?-$!0'.includes(ch);
}

/**
 * A shell wildcard pattern: `*`, `?` and literal characters (backslash
 * escapes; no bracket expressions, like BuildKit).
 */
type GlobToken = { kind: 'star' } | { kind: 'any' } | { kind: 'lit'; ch: string };

function parsePattern(pattern: string): GlobToken[] {
  const chars = Array.from(pattern);
  const out: GlobToken[] = [];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '*') {
      // `**` matches what `*` matches; one state is enough.
      if (out[out.length - 1]?.kind !== 'star') out.push({ kind: 'star' });
    } else if (ch === '?') {
      out.push({ kind: 'any' });
    } else if (ch === '\\') {
      const nextCh = chars[i + 1];
      // `\}` and `\/` were only escaped to get past the ${} syntax.
      if (nextCh === '}' || nextCh === '/') continue;
      if (nextCh !== '*' && nextCh !== '?' && nextCh !== '\\') {
        throw new LexFailure(`invalid pattern (${clip(pattern)}) in substitution: invalid escape '\\${nextCh ?? ''}'`);
      }
      out.push({ kind: 'lit', ch: nextCh });
      i++;
    } else {
      out.push({ kind: 'lit', ch });
    }
  }
  return out;
}

/**
 * Matches a wildcard pattern by simulating its automaton (one state per
 * token) over the text, instead of a backtracking RegExp: `${v#*a*a*a*b}`
 * must not take exponential time on a long value (Go's regexp, which
 * BuildKit uses, is linear too). `start[j]` is the leftmost text position
 * from which the first j tokens match up to the current position.
 */
class GlobMatcher {
  private readonly m: number;

  constructor(private readonly tokens: GlobToken[]) {
    this.m = tokens.length;
  }

  /** Stars match the empty string: propagate each state through the stars that follow it. */
  private close(st: Int32Array): void {
    for (let j = 0; j < this.m; j++) {
      if (st[j]! >= 0 && this.tokens[j]!.kind === 'star' && (st[j + 1]! < 0 || st[j]! < st[j + 1]!)) st[j + 1] = st[j]!;
    }
  }

  /** Consumes one character: the states after `ch` go into `next` (overwritten), which is returned. */
  private step(st: Int32Array, next: Int32Array<ArrayBuffer>, ch: string, budget: Budget): Int32Array<ArrayBuffer> {
    next.fill(-1);
    budget.spend(this.m + 1);
    for (let j = 0; j < this.m; j++) {
      const from = st[j]!;
      if (from < 0) continue;
      const t = this.tokens[j]!;
      const to = t.kind === 'star' ? j : t.kind === 'any' || t.ch === ch ? j + 1 : -1;
      if (to >= 0 && (next[to]! < 0 || from < next[to]!)) next[to] = from;
    }
    this.close(next);
    return next;
  }

  /** Lengths of the prefixes of `text` the whole pattern matches: the shortest and the longest, or undefined. */
  prefixMatch(text: string[], budget: Budget): { shortest: number; longest: number } | undefined {
    let st = new Int32Array(this.m + 1).fill(-1);
    let spare = new Int32Array(this.m + 1);
    st[0] = 0;
    this.close(st);
    let shortest = -1;
    let longest = -1;
    for (let p = 0; ; p++) {
      if (st[this.m]! >= 0) {
        if (shortest < 0) shortest = p;
        longest = p;
      }
      if (p === text.length || !st.some((v) => v >= 0)) break;
      [st, spare] = [this.step(st, spare, text[p]!, budget), st];
    }
    return shortest < 0 ? undefined : { shortest, longest };
  }

  /**
   * The leftmost match starting at or after `from`, longest at that start
   * (what a leftmost-first regexp with greedy stars finds), or undefined.
   */
  search(text: string[], from: number, budget: Budget): { start: number; end: number } | undefined {
    let st = new Int32Array(this.m + 1).fill(-1);
    let spare = new Int32Array(this.m + 1);
    let best: { start: number; end: number } | undefined;
    for (let p = from; ; p++) {
      if (best === undefined) {
        // Still looking: a match may start here.
        if (st[0]! < 0) st[0] = p;
        this.close(st);
      }
      const accepted = st[this.m]!;
      if (accepted >= 0 && (best === undefined || accepted < best.start || (accepted === best.start && p > best.end))) {
        best = { start: accepted, end: p };
      }
      if (best !== undefined) {
        // Only threads that could still give a match at least as far left matter.
        for (let j = 0; j <= this.m; j++) if (st[j]! > best.start) st[j] = -1;
      }
      if (p === text.length || (best !== undefined && !st.some((v) => v >= 0))) break;
      [st, spare] = [this.step(st, spare, text[p]!, budget), st];
    }
    return best;
  }
}

/** Caps the automaton work of one word's pattern operations. */
class Budget {
  private left = MAX_PATTERN_WORK;

  spend(n: number): void {
    this.left -= n;
    if (this.left < 0) throw new LexFailure('pattern too complex for the value it is applied to');
  }
}

function trimPrefix(pattern: string, value: string, greedy: boolean, budget: Budget): string {
  const text = Array.from(value);
  const m = new GlobMatcher(parsePattern(pattern)).prefixMatch(text, budget);
  return m === undefined ? value : text.slice(greedy ? m.longest : m.shortest).join('');
}

function trimSuffix(pattern: string, value: string, greedy: boolean, budget: Budget): string {
  // The longest/shortest suffix is the longest/shortest prefix of the reversed text for the reversed pattern.
  const text = Array.from(value).reverse();
  const m = new GlobMatcher(parsePattern(pattern).reverse()).prefixMatch(text, budget);
  return m === undefined ? value : text.slice(greedy ? m.longest : m.shortest).reverse().join('');
}

/**
 * Go `Regexp.ReplaceAllString` semantics with a literal replacement: an empty
 * match directly after a previous match is skipped.
 */
function replaceMatches(value: string, pattern: string, replacement: string, all: boolean, budget: Budget): string {
  const matcher = new GlobMatcher(parsePattern(pattern));
  const text = Array.from(value);
  let out = '';
  let copiedTo = 0;
  let prevEnd = -1;
  for (let from = 0; from <= text.length; ) {
    const m = matcher.search(text, from, budget);
    if (m === undefined) break;
    let next = m.end;
    if (m.start === m.end) {
      next = m.end + 1; // step past the empty match
      if (m.start === prevEnd) {
        from = next;
        continue;
      }
    }
    out += text.slice(copiedTo, m.start).join('') + replacement;
    copiedTo = m.end;
    prevEnd = m.end;
    if (!all) break;
    from = next;
  }
  return out + text.slice(copiedTo).join('');
}
