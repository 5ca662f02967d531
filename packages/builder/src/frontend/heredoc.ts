import type { Heredoc } from './ast.js';
import { ShellLex } from './shell-lex.js';

/**
 * Heredoc markers (`<<EOF`, `<<-EOF`, `<<'EOF'`, `3<<EOF`) as BuildKit
 * recognises them. Bodies are read by the parser; this module only decides
 * which words are markers and what their delimiter and flags are.
 */

const RE_HEREDOC = /^(\d*)<<(-?)([^<]*)$/;

const NO_ENV: Readonly<Record<string, string>> = Object.freeze({});

/**
 * Parse one word as a heredoc marker. Returns undefined when the word is not
 * a marker; throws when it is a malformed one (e.g. `<<'EOF`).
 */
export function parseHeredocMarker(word: string): Omit<Heredoc, 'content'> | undefined {
  const m = RE_HEREDOC.exec(word);
  if (!m) return undefined;
  const fd = m[1]!;
  const chomp = m[2] === '-';
  const rest = m[3]!;
  if (rest.length === 0) return undefined;

  // Lex the delimiter with and without quote removal: if the counts of quote
  // characters differ, part of it was quoted and the body must not be expanded.
  const lex = new ShellLex('\\', { skipUnsetEnv: true });
  const words = lex.processWords(rest, NO_ENV);
  if (words.length !== 1) return undefined;
  lex.rawQuotes = true;
  const rawWords = lex.processWords(rest, NO_ENV);
  if (rawWords.length !== words.length) {
    throw new Error(`internal lexing of heredoc produced inconsistent results: ${rest}`);
  }
  const name = words[0]!;
  const expand = countQuotes(name) === countQuotes(rawWords[0]!);

  const heredoc: Omit<Heredoc, 'content'> = { name, expand, chomp };
  if (fd !== '') heredoc.fileDescriptor = Number.parseInt(fd, 10);
  return heredoc;
}

/** Like `parseHeredocMarker` but treats malformed markers as "not a marker". */
export function isHeredocMarker(word: string): boolean {
  try {
    return parseHeredocMarker(word) !== undefined;
  } catch {
    return false;
  }
}

/** All heredoc markers of a logical line, in order of appearance. */
export function heredocMarkersFromLine(line: string): Omit<Heredoc, 'content'>[] {
  // Quotes and escapes are kept so that a quoted `"<<EOF"` is not a marker.
  const lex = new ShellLex('\\', { rawQuotes: true, rawEscapes: true, skipUnsetEnv: true });
  let words: string[];
  try {
    words = lex.processWords(line, NO_ENV);
  } catch {
    // BuildKit ignores lexing failures here: such a line simply has no heredocs.
    return [];
  }
  const out: Omit<Heredoc, 'content'>[] = [];
  for (const word of words) {
    const heredoc = parseHeredocMarker(word);
    if (heredoc) out.push(heredoc);
  }
  return out;
}

/** `<<-` semantics: strip leading tabs from every line of the body. */
export function chompHeredocContent(content: string): string {
  // Not /^\t+/gm: JS multiline `^` also matches after \r and U+2028.
  return content.replace(/(^|\n)\t+/g, '$1');
}

function countQuotes(s: string): number {
  let n = 0;
  for (const ch of s) if (ch === '"' || ch === "'") n++;
  return n;
}
