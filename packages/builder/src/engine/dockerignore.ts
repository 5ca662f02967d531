import { readBounded, NotRegularFileError } from './bounded-read.js';
import { LinkEscapeError, realpathWithin } from './secure-path.js';
import { basename, dirname, join, posix } from 'node:path';

/**
 * `.dockerignore` patterns and `COPY --exclude` patterns, with the semantics
 * of moby/patternmatcher (what BuildKit uses for both):
 *
 * - a pattern is trimmed and cleaned like Go's filepath.Clean; `!` marks an
 *   exception that re-includes what an earlier pattern excluded;
 * - `*` and `?` never cross `/`, `[...]` is a character class, `\` escapes;
 * - `**` matches any number of path segments (zero included): `**\/x`,
 *   `a/**`, `a/**\/b`;
 * - a pattern that matches a directory also matches everything below it;
 * - patterns are read in order and the last one that matches a path decides.
 *
 * Paths are slash-separated and relative to the matcher's base (the context
 * root for `.dockerignore`, the copied source for `--exclude`), without a
 * leading `./` or `/`.
 */

type MatchKind = 'exact' | 'prefix' | 'suffix' | 'regexp';

export interface IgnorePattern {
  /** The cleaned pattern, without the `!`. */
  readonly text: string;
  readonly exception: boolean;
  readonly kind: MatchKind;
  readonly regexp?: RegExp;
}

/** Per-pattern results for a directory, handed to its entries (MatchesUsingParentResults). */
export type MatchInfo = readonly boolean[];

export class IgnorePatternError extends Error {}

export class IgnoreMatcher {
  readonly patterns: readonly IgnorePattern[];
  readonly hasExceptions: boolean;
  /**
   * No exception has a wildcard (beyond a trailing `/*` or `/**`): an excluded
   * directory can then be skipped unless an exception names a path inside it
   * (tonistiigi/fsutil's walker optimisation, which decides what the context holds).
   */
  private readonly onlyPrefixExceptions: boolean;

  constructor(patterns: readonly string[]) {
    const out: IgnorePattern[] = [];
    for (const raw of patterns) {
      let p = raw.trim();
      if (p === '') continue;
      p = goClean(p);
      let exception = false;
      if (p.startsWith('!')) {
        if (p.length === 1) throw new IgnorePatternError('illegal exclusion pattern: "!"');
        exception = true;
        p = p.slice(1);
      }
      checkGoPattern(p);
      out.push(compile(p, exception));
    }
    this.patterns = out;
    this.hasExceptions = out.some((p) => p.exception);
    this.onlyPrefixExceptions = out.every((p) => !p.exception || !/[*[\]?^\\]/.test(withoutTrailingGlob(p.text)));
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  /**
   * Whether `path` is excluded, given the results of its parent directory
   * (`parent`, from the same call on the parent) or, without them, checking
   * each of its parent directories against every pattern.
   */
  match(path: string, parent?: MatchInfo): { matched: boolean; info: MatchInfo } {
    let excluded = false;
    const info: boolean[] = [];
    const hasParent = parent !== undefined && parent.length === this.patterns.length;
    this.patterns.forEach((pattern, i) => {
      let m = hasParent ? parent[i]! : false;
      if (!m) {
        // An exception only matters once something matched, an exclusion only while nothing did.
        if (pattern.exception !== excluded) {
          info.push(false);
          return;
        }
        m = matchPattern(pattern, path);
        if (!m && !hasParent) {
          const dirs = posix.dirname(path).split('/');
          if (dirs[0] !== '.') {
            for (let j = 1; j <= dirs.length && !m; j++) m = matchPattern(pattern, dirs.slice(0, j).join('/'));
          }
        }
      }
      info.push(m);
      if (m) excluded = !pattern.exception;
    });
    return { matched: excluded, info };
  }

  /**
   * Whether a walk of the base directory leaves `path` out: it is excluded, or
   * one of its parent directories is excluded and skipped whole.
   */
  excludes(path: string): boolean {
    const s = this.state(path);
    return s.hidden || s.matched;
  }

  /**
   * Matches `path` the way a walk from the base reaches it, one directory at a
   * time: `matched` for the path itself, `info` for its entries, `hidden` when a
   * parent directory is excluded and skipped whole (the path is then left out too).
   */
  state(path: string): { matched: boolean; info: MatchInfo | undefined; hidden: boolean } {
    const parts = splitRel(path);
    let info: MatchInfo | undefined;
    let matched = false;
    for (let i = 0; i < parts.length; i++) {
      const prefix = parts.slice(0, i + 1).join('/');
      const r = this.match(prefix, info);
      matched = r.matched;
      info = r.info;
      if (i < parts.length - 1 && matched && this.skipsDir(prefix)) return { matched, info, hidden: true };
    }
    return { matched, info, hidden: false };
  }

  /**
   * For an excluded directory: true when nothing below it can be re-included,
   * so a walk does not enter it. Otherwise its entries are matched one by one
   * and the directory exists (with only those entries) if any of them is kept.
   */
  skipsDir(dir: string): boolean {
    if (!this.hasExceptions) return true;
    if (!this.onlyPrefixExceptions) return false;
    const dirSlash = `${dir}/`;
    return !this.patterns.some((p) => p.exception && `${withoutTrailingGlob(p.text)}/`.startsWith(dirSlash));
  }
}

/**
 * The lines of an ignore file as patterns, as moby/patternmatcher's
 * ignorefile.ReadAll reads them: a UTF-8 BOM is dropped, a line starting
 * with `#` is a comment, blank lines are skipped, a leading `/` is dropped
 * (the context root is the root), and `!` may be followed by spaces.
 */
export function parseIgnoreFile(text: string): string[] {
  const out: string[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (const line of lines) {
    if (line.startsWith('#')) continue;
    let pattern = line.trim();
    if (pattern === '') continue;
    const invert = pattern.startsWith('!');
    if (invert) pattern = pattern.slice(1).trim();
    if (pattern.length > 0) {
      pattern = goClean(pattern);
      if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1);
    }
    out.push(invert ? `!${pattern}` : pattern);
  }
  return out;
}

/**
 * The ignore file of a build, as BuildKit picks it: `<Dockerfile name>.dockerignore`
 * next to the Dockerfile when it exists, else `.dockerignore` at the context
 * root. No file: an empty matcher (excludes nothing).
 */
/** Far beyond any real ignore file; a link to /dev/zero must not fill the memory. */
const MAX_IGNORE_FILE_BYTES = 4 * 1024 * 1024;

export async function loadDockerignore(contextDir: string, dockerfilePath: string): Promise<IgnoreMatcher> {
  const candidates = [join(dirname(dockerfilePath), `${basename(dockerfilePath)}.dockerignore`), join(contextDir, '.dockerignore')];
  for (const file of candidates) {
    let text: string;
    try {
      // Never through a link out of the directory it belongs to (a parse error would echo the file).
      text = await readBounded(await realpathWithin(file, dirname(file)), MAX_IGNORE_FILE_BYTES + 1, { regularOnly: true });
    } catch (err) {
      if (err instanceof NotRegularFileError || err instanceof LinkEscapeError) throw new IgnorePatternError(err.message);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue;
      throw err;
    }
    if (Buffer.byteLength(text, 'utf8') > MAX_IGNORE_FILE_BYTES) throw new IgnorePatternError(`${file}: larger than ${MAX_IGNORE_FILE_BYTES} bytes`);
    try {
      return new IgnoreMatcher(parseIgnoreFile(text));
    } catch (err) {
      throw new IgnorePatternError(`${file}: ${(err as Error).message}`);
    }
  }
  return new IgnoreMatcher([]);
}

/** Go's filepath.Clean for slash paths: `.` and `..` resolved, repeated and trailing slashes dropped. */
export function goClean(p: string): string {
  if (p === '') return '.';
  const out = posix.normalize(p);
  return out.length > 1 && out.endsWith('/') ? out.slice(0, -1) : out;
}

function splitRel(path: string): string[] {
  return path.split('/').filter((s) => s !== '' && s !== '.');
}

function withoutTrailingGlob(text: string): string {
  let t = text;
  if (t.endsWith('/**')) t = t.slice(0, -3);
  else if (t.endsWith('/*')) t = t.slice(0, -2);
  return t;
}

function matchPattern(p: IgnorePattern, path: string): boolean {
  switch (p.kind) {
    case 'exact':
      return path === p.text;
    case 'prefix':
      // a trailing `**` after an exact prefix
      return path.startsWith(p.text.slice(0, -2));
    case 'suffix': {
      // a leading `**` before an exact suffix
      const suffix = p.text.slice(2);
      if (path.endsWith(suffix)) return true;
      // `**/foo` matches `foo`
      return suffix.startsWith('/') && path === suffix.slice(1);
    }
    case 'regexp':
      return p.regexp!.test(path);
  }
}

/** The regexp-special characters that mean nothing to filepath.Match, so are literal in a pattern. */
const LITERAL_SPECIALS = new Set(['.', '+', '(', ')', '|', '{', '}', '$']);

/** Builds the matcher of one cleaned pattern: exact, prefix (`x/**`), suffix (`**\/x`) or a regexp. */
function compile(text: string, exception: boolean): IgnorePattern {
  const chars = [...text];
  let re = '^';
  let kind: MatchKind = 'exact';
  for (let i = 0, step = 0; i < chars.length; i++, step++) {
    const ch = chars[i]!;
    if (ch === '*') {
      if (chars[i + 1] === '*') {
        i++;
        // `**/` is `**`
        if (chars[i + 1] === '/') i++;
        if (i + 1 >= chars.length) {
          // `**` at the end matches everything below
          if (kind === 'exact') kind = 'prefix';
          else {
            re += '.*';
            kind = 'regexp';
          }
        } else {
          // any number of whole segments, none included
          re += '(.*/)?';
          kind = 'regexp';
        }
        if (step === 0) kind = 'suffix';
      } else {
        re += '[^/]*';
        kind = 'regexp';
      }
    } else if (ch === '?') {
      re += '[^/]';
      kind = 'regexp';
    } else if (LITERAL_SPECIALS.has(ch)) {
      re += `\\${ch}`;
    } else if (ch === '\\') {
      if (i + 1 < chars.length) {
        re += escapeRegExp(chars[++i]!);
        kind = 'regexp';
      } else {
        re += '\\\\';
      }
    } else if (ch === '[' || ch === ']') {
      re += ch;
      kind = 'regexp';
    } else {
      re += ch;
    }
  }
  if (kind !== 'regexp') return { text, exception, kind };
  let regexp: RegExp;
  try {
    regexp = new RegExp(`${re}$`);
  } catch {
    throw new IgnorePatternError(`syntax error in pattern: ${text}`);
  }
  return { text, exception, kind, regexp };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

/** Rejects what Go's filepath.Match calls a malformed pattern (unclosed or empty class, dangling `\`). */
function checkGoPattern(p: string): void {
  const bad = () => new IgnorePatternError(`syntax error in pattern: ${p}`);
  const chars = [...p];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '\\') {
      if (++i >= chars.length) throw bad();
    } else if (c === '[') {
      i++;
      if (chars[i] === '^') i++;
      let ranges = 0;
      for (;;) {
        if (i >= chars.length) throw bad();
        if (chars[i] === ']' && ranges > 0) break;
        // one range: lo or lo-hi
        const lo = classChar(chars, i);
        if (lo === undefined) throw bad();
        i = lo;
        if (chars[i] === '-') {
          const hi = classChar(chars, i + 1);
          if (hi === undefined) throw bad();
          i = hi;
        }
        ranges++;
      }
    }
  }
}

/** Index after one class character at `i` (`\x` escapes; a bare `-` or `]` is malformed), or undefined. */
function classChar(chars: string[], i: number): number | undefined {
  const c = chars[i];
  if (c === undefined || c === '-' || c === ']') return undefined;
  if (c === '\\') return i + 1 < chars.length ? i + 2 : undefined;
  return i + 1;
}
