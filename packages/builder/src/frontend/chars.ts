/**
 * Character classes with Go's semantics. BuildKit is written in Go, and the
 * conformance fixtures depend on Go's exact definitions, which differ from
 * JavaScript's `\s` (JS counts U+FEFF as space, Go counts U+0085 instead).
 */

/** Go `unicode.IsSpace`. */
export function isSpace(ch: string): boolean {
  switch (ch) {
    case '\t': case '\n': case '\v': case '\f': case '\r': case ' ':
    case '\u0085': case '\u00a0': case '\u1680':
    case '\u2028': case '\u2029': case '\u202f': case '\u205f': case '\u3000':
      return true;
  }
  return ch >= '\u2000' && ch <= '\u200a';
}

/** Go `strings.TrimSpace`. */
export function trimSpace(s: string): string {
  return trimRightSpace(trimLeftSpace(s));
}

/** Go `strings.TrimLeftFunc(s, unicode.IsSpace)`. */
export function trimLeftSpace(s: string): string {
  let i = 0;
  while (i < s.length && isSpace(s[i]!)) i++;
  return s.slice(i);
}

export function trimRightSpace(s: string): string {
  let j = s.length;
  while (j > 0 && isSpace(s[j - 1]!)) j--;
  return s.slice(0, j);
}

/** Go's regexp `[\t\v\f\r ]+`, the "blank" class BuildKit splits arguments on. */
export const BLANK_RUN = /[\t\v\f\r ]+/;

/** Go `regexp.Split(s, -1)` with BLANK_RUN (no trimming, empty fields kept). */
export function splitBlanks(s: string): string[] {
  return s.split(/[\t\v\f\r ]+/);
}

/** Go `regexp.Split(s, 2)` with BLANK_RUN: cut once at the first blank run. */
export function cutAtFirstBlank(s: string): [string] | [string, string] {
  const m = BLANK_RUN.exec(s);
  if (!m) return [s];
  return [s.slice(0, m.index), s.slice(m.index + m[0].length)];
}

const LETTER = /^\p{L}$/u;
const DIGIT = /^\p{Nd}$/u;

/** Go `unicode.IsLetter` for one code point. */
export function isLetter(ch: string): boolean {
  return LETTER.test(ch);
}

/** Go `unicode.IsDigit` for one code point. */
export function isDigit(ch: string): boolean {
  return DIGIT.test(ch);
}
