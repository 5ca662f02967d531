import { lstat, readdir } from 'node:fs/promises';
import { posix } from 'node:path';
import { resolveInRoot } from './secure-path.js';

const GLOB_CHARS = /[*?[]/;

export function hasGlob(pattern: string): boolean {
  return GLOB_CHARS.test(pattern);
}

/** Go's filepath.Match syntax (`*`, `?`, `[...]`, `\` escapes) for one path segment, as a RegExp. */
export function segmentRegExp(segment: string): RegExp {
  const chars = [...segment];
  let out = '';
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '\\' && i + 1 < chars.length) out += escapeRegExp(chars[++i]!);
    else if (c === '[') {
      const parsed = parseClass(chars, i + 1);
      if (parsed === undefined) {
        // No closing bracket: taken literally.
        out += '\\[';
        continue;
      }
      out += parsed.regex;
      i = parsed.end;
    } else out += escapeRegExp(c);
  }
  return new RegExp(`^${out}$`, 'u');
}

/**
 * A `[...]` class starting after the `[` at `start`: `^` negates (Go's
 * filepath.Match has no `!` negation: `[!a-c]` matches `!` or a to c),
 * `\\c` is a literal c (also `]`, `-`, `\\`), `lo-hi` a range. Returns the
 * RegExp class and the index of the closing `]`.
 */
function parseClass(chars: string[], start: number): { regex: string; end: number } | undefined {
  let i = start;
  let negate = false;
  if (chars[i] === '^') {
    negate = true;
    i++;
  }
  let body = '';
  let first = true;
  for (; i < chars.length; i++) {
    let c = chars[i]!;
    if (c === ']' && !first) return { regex: negate ? `[^/${body}]` : `[${body}]`, end: i };
    first = false;
    if (c === '\\') {
      if (i + 1 >= chars.length) return undefined;
      c = chars[++i]!;
    }
    body += classChar(c);
    if (chars[i + 1] === '-' && i + 2 < chars.length && chars[i + 2] !== ']') {
      let hi = chars[i + 2]!;
      i += 2;
      if (hi === '\\') {
        if (i + 1 >= chars.length) return undefined;
        hi = chars[++i]!;
      }
      body += `-${classChar(hi)}`;
    }
  }
  return undefined;
}

function classChar(c: string): string {
  return /[\\\]\[^-]/.test(c) ? `\\${c}` : c;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/**
 * Expands a source pattern relative to `root`, segment by segment, returning
 * matching relative paths (sorted). Dot files match `*` as in Go, unlike a shell.
 */
export async function expandGlob(root: string, pattern: string): Promise<string[]> {
  const segments = posix.normalize(`/${pattern}`).split('/').filter(Boolean);
  let current = [''];
  for (const segment of segments) {
    const next: string[] = [];
    for (const base of current) {
      if (!hasGlob(segment)) {
        next.push(posix.join(base, segment));
        continue;
      }
      const re = segmentRegExp(segment);
      let entries: string[] = [];
      try {
        // Links in the directory part resolve inside root, as the copy itself does.
        entries = await readdir(await resolveInRoot(root, base));
      } catch {
        entries = [];
      }
      for (const name of entries.sort()) if (re.test(name)) next.push(posix.join(base, name));
    }
    current = next;
  }
  // Literal segments after a wildcard were not looked up: only paths that exist match (Go's filepath.Glob).
  const exists = await Promise.all(current.map((rel) => resolveInRoot(root, rel).then((p) => lstat(p).then(() => true, () => false))));
  return current.filter((_, i) => exists[i]);
}
