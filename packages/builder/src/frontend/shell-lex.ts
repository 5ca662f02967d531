import { isDigit, isLetter, isSpace } from './chars.js';
import { ShellExpansionError } from './errors.js';

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
    const sw = new WordProcessor(this, word, env);
    try {
      const { result, words } = sw.processStopOn(undefined, this.rawEscapes);
      return { result, words, matched: sw.matched, unmatched: sw.unmatched };
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new ShellExpansionError(`failed to process ${JSON.stringify(word)}: ${msg}`);
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

/** One expansion run over one word (BuildKit's `shellWord`). */
class WordProcessor {
  private readonly chars: string[];
  private pos = 0;
  private rawEscapes: boolean;
  readonly matched = new Set<string>();
  readonly unmatched = new Set<string>();

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
        return ch === '%' ? trimSuffix(pattern, value ?? '', greedy) : trimPrefix(pattern, value ?? '', greedy);
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
    const re = shellPatternToRegex(pattern, true, false);
    return replaceMatches(value ?? '', re, replacement, replaceAll);
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

function isMap(env: ShellEnv): env is ReadonlyMap<string, string> {
  return env instanceof Map;
}

function isSpecialParam(ch: string): boolean {
  return '@*#?-$!0'.includes(ch);
}

/**
 * Shell wildcard pattern (`*`, `?`, backslash escapes; no bracket
 * expressions, like BuildKit) to a regular expression.
 */
function shellPatternToRegex(pattern: string, greedy: boolean, anchored: boolean): RegExp {
  const chars = Array.from(pattern);
  let out = anchored ? '^' : '';
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    switch (ch) {
      case '*':
        out += greedy ? '.*' : '.*?';
        continue;
      case '?':
        out += '.';
        continue;
      case '\\': {
        const nextCh = chars[i + 1];
        // `\}` and `\/` were only escaped to get past the ${} syntax.
        if (nextCh === '}' || nextCh === '/') continue;
        if (nextCh !== '*' && nextCh !== '?' && nextCh !== '\\') {
          throw new LexFailure(`invalid pattern (${pattern}) in substitution: invalid escape '\\${nextCh ?? ''}'`);
        }
        out += '\\' + nextCh;
        i++;
        continue;
      }
      case '[': case ']': case '{': case '}': case '.': case '+':
      case '(': case ')': case '|': case '^': case '$':
        out += '\\' + ch;
        continue;
    }
    out += ch;
  }
  return new RegExp(out, 'u');
}

function trimPrefix(pattern: string, value: string, greedy: boolean): string {
  const m = shellPatternToRegex(pattern, greedy, true).exec(value);
  return m ? value.slice(m.index + m[0].length) : value;
}

/** Reverse a pattern but keep each escape in front of the character it escapes. */
function reversePattern(pattern: string): string {
  const chars = Array.from(pattern);
  const out: string[] = new Array<string>(chars.length);
  const last = chars.length - 1;
  for (let i = 0; i <= last; ) {
    const ch = chars[i]!;
    const at = last - i;
    if (ch === '\\' && i !== last) {
      out[at - 1] = ch;
      out[at] = chars[i + 1]!;
      i += 2;
    } else {
      out[at] = ch;
      i++;
    }
  }
  return out.join('');
}

function reverseString(s: string): string {
  return Array.from(s).reverse().join('');
}

function trimSuffix(pattern: string, value: string, greedy: boolean): string {
  // A regex finds leftmost matches only; reversing both sides turns "shortest
  // rightmost" into "shortest leftmost".
  return reverseString(trimPrefix(reversePattern(pattern), reverseString(value), greedy));
}

/**
 * Go `Regexp.ReplaceAllString` semantics with a literal replacement: an empty
 * match directly after a previous match is skipped (JS would replace it).
 */
function replaceMatches(value: string, re: RegExp, replacement: string, all: boolean): string {
  const global = new RegExp(re.source, 'gu');
  let out = '';
  let copiedTo = 0;
  let prevEnd = -1;
  for (let m = global.exec(value); m !== null; m = global.exec(value)) {
    const start = m.index;
    const end = start + m[0].length;
    if (m[0].length === 0) {
      // Step past the empty match by one code point to avoid looping forever.
      const cp = value.codePointAt(end);
      global.lastIndex = end + (cp !== undefined && cp > 0xffff ? 2 : 1);
      if (start === prevEnd) continue;
    }
    out += value.slice(copiedTo, start) + replacement;
    copiedTo = end;
    prevEnd = end;
    if (!all) break;
  }
  return out + value.slice(copiedTo);
}
