import { readdir } from 'node:fs/promises';
import { posix } from 'node:path';

const GLOB_CHARS = /[*?[]/;

export function hasGlob(pattern: string): boolean {
  return GLOB_CHARS.test(pattern);
}

/** Go's filepath.Match syntax (`*`, `?`, `[...]`, `\` escapes) for one path segment, as a RegExp. */
export function segmentRegExp(segment: string): RegExp {
  let out = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '\\' && i + 1 < segment.length) out += escapeRegExp(segment[++i]!);
    else if (c === '[') {
      const end = segment.indexOf(']', i + 1);
      if (end < 0) {
        out += '\\[';
        continue;
      }
      let body = segment.slice(i + 1, end);
      if (body.startsWith('^')) body = `!${body.slice(1)}`;
      out += body.startsWith('!') ? `[^${body.slice(1).replace(/\\/g, '\\\\')}]` : `[${body.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else out += escapeRegExp(c);
  }
  return new RegExp(`^${out}$`);
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
        entries = await readdir(posix.join(root, base));
      } catch {
        entries = [];
      }
      for (const name of entries.sort()) if (re.test(name)) next.push(posix.join(base, name));
    }
    current = next;
  }
  return current;
}
