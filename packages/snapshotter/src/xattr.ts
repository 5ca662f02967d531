/**
 * Extended attributes via the `attr` package's setfattr/getfattr: Node has no
 * xattr API and we want no native addons. Missing tools degrade to warnings
 * (apply) or to "no xattrs" (diff); overlay diff needs them to see opaque dirs,
 * so the overlay backend is only chosen when getfattr exists.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { findExecutable } from './which.js';

const execFileP = promisify(execFile);

let toolsAvailable: boolean | undefined;

/** Whether getfattr and setfattr are installed (looked up on PATH once per process, not run). */
export async function hasXattrTools(): Promise<boolean> {
  toolsAvailable ??= findExecutable('getfattr') !== null && findExecutable('setfattr') !== null;
  return toolsAvailable;
}

/** Set one xattr on `path` itself (never following a symlink). */
export async function setXattr(path: string, name: string, value: Buffer): Promise<void> {
  await execFileP('setfattr', ['-h', '-n', name, '-v', `0x${value.toString('hex')}`, '--', path]);
}

/** getfattr escapes unusual bytes in names as \ooo octal. */
function unescapeName(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const m = /^\\([0-7]{3})/.exec(s.slice(i, i + 4));
    if (m?.[1] !== undefined) {
      bytes.push(parseInt(m[1], 8));
      i += 3;
    } else if (s.startsWith('\\\\', i)) {
      bytes.push(0x5c);
      i += 1;
    } else {
      for (const b of Buffer.from(s[i] ?? '', 'utf8')) bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/**
 * Runs getfattr (hex dump of every namespace we can read, symlinks not
 * followed) and parses its output into absolute path → (name → value).
 */
async function getfattrDump(args: string[], into: Map<string, Map<string, Buffer>>): Promise<void> {
  let stdout: string;
  try {
    ({ stdout } = await execFileP('getfattr', ['-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', ...args], { maxBuffer: 1 << 30 }));
  } catch (err) {
    // getfattr exits non-zero when *some* file could not be read but still prints the rest.
    const e = err as { stdout?: unknown };
    if (typeof e.stdout !== 'string') throw err;
    stdout = e.stdout;
  }
  let current: Map<string, Buffer> | undefined;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = new Map();
      into.set(unescapeName(line.slice('# file: '.length)), current);
    } else if (current && line.length > 0) {
      const eq = line.indexOf('=');
      const name = eq < 0 ? line : line.slice(0, eq);
      const raw = eq < 0 ? '' : line.slice(eq + 1);
      current.set(unescapeName(name), raw.startsWith('0x') ? Buffer.from(raw.slice(2), 'hex') : Buffer.from(raw.replace(/^"|"$/g, '')));
    }
  }
}

/** All xattrs below `dir`, in one getfattr process. */
export async function readXattrsRecursive(dir: string): Promise<Map<string, Map<string, Buffer>>> {
  const out = new Map<string, Map<string, Buffer>>();
  await getfattrDump(['-R', '--', dir], out);
  return out;
}

/** xattrs of the given paths only (no recursion), batched into few getfattr processes. */
export async function readXattrsOf(paths: string[]): Promise<Map<string, Map<string, Buffer>>> {
  const out = new Map<string, Map<string, Buffer>>();
  const BATCH = 400;
  for (let i = 0; i < paths.length; i += BATCH) await getfattrDump(['--', ...paths.slice(i, i + BATCH)], out);
  return out;
}
