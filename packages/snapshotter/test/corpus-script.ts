/**
 * Run by corpus.test.ts as the unprivileged user inside
 * `unshare --user --mount --map-root-user --map-auto`: applies every case of the
 * malicious-layer corpus (test/corpus/make-malicious-layers.mjs) to a fresh root,
 * with canaries around it, and prints one JSON report on stdout.
 *
 *   node corpus-script.mjs <work> <corpus-dir>
 *
 * Layout per case: <work>/cases/<name>/{root/, canary-file, canary-dir/{keep,sub/keep2}}.
 * Shared canaries: <outside>/… and <home>/… (paths from cases.json). Before and after each
 * case everything below <work> (except the case's root) and <home> is snapshotted (type,
 * mode, owner, size, mtime, inode, content digest, link target); any difference is reported.
 */
import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, type Stats, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { applyLayer } from '../src/index.js';
import { readXattrsRecursive } from '../src/xattr.js';

export interface CaseResult {
  outcome: 'applied' | 'refused' | 'base-failed' | 'timeout';
  code?: string;
  error?: string;
  message?: string;
  warnings?: string[];
  tree?: Record<string, string>;
  /** Differences in the watched locations around the root ("" when none). */
  canaryChanges: string[];
  ms: number;
}

export interface CorpusReport {
  uidMap: string;
  umask: string;
  canaries: Record<string, string>;
  results: Record<string, CaseResult>;
}

interface CorpusIndex {
  outside: string;
  home: string;
  cases: { name: string; layer: string; base?: string }[];
}

/** Canary mtime: far in the past, so any write shows. */
export const CANARY_MTIME = 1_000_000_000;
/** Names a successful escape would leave behind (see the generator). */
export const ESCAPE_NAME = /^(PWNED|smuggled)/;

/** Small UTF-8 contents verbatim (JSON), others by digest — as the generator renders expectations. */
function describeContent(b: Buffer): string {
  if (b.length <= 256 && Buffer.from(b.toString('utf8'), 'utf8').equals(b)) return JSON.stringify(b.toString('utf8'));
  return `${b.length}B:sha256:${createHash('sha256').update(b).digest('hex')}`;
}
const m4 = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

function lstatOrNull(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

/**
 * Everything below `dir` (and `dir` itself) as path → fingerprint, skipping `exclude`.
 * Regular files up to 1 MiB are hashed; FIFOs are never opened.
 */
export function snapshot(dir: string, exclude: ReadonlySet<string> = new Set(), out: Record<string, string> = {}): Record<string, string> {
  const st = lstatOrNull(dir);
  if (!st) {
    out[dir] = 'missing';
    return out;
  }
  const walk = (p: string, s: Stats): void => {
    let fp = `mode=${s.mode.toString(8)} owner=${s.uid}:${s.gid} size=${s.size} mtime=${s.mtimeMs} ino=${s.ino} nlink=${s.nlink}`;
    if (s.isSymbolicLink()) fp += ` -> ${readlinkSync(p)}`;
    else if (s.isFile()) fp += s.size <= 1 << 20 ? ` sha256=${createHash('sha256').update(readFileSync(p)).digest('hex')}` : '';
    out[p] = fp;
    if (!s.isDirectory()) return;
    for (const name of readdirSync(p).sort()) {
      const child = join(p, name);
      if (exclude.has(child)) continue;
      const cs = lstatOrNull(child);
      if (cs) walk(child, cs);
    }
  };
  walk(dir, st);
  return out;
}

/** Entries that look like escape payloads in host directories a layer could aim at. */
function hostProbe(dirs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const d of dirs) {
    let names: string[] = [];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names) if (ESCAPE_NAME.test(n)) out[join(d, n)] = 'present';
  }
  try {
    out['/etc/passwd'] = createHash('sha256').update(readFileSync('/etc/passwd')).digest('hex');
  } catch {
    out['/etc/passwd'] = 'unreadable';
  }
  return out;
}

function diff(before: Record<string, string>, after: Record<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(before)) {
    if (!(k in after)) out.push(`removed ${k} (${v})`);
    else if (after[k] !== v) out.push(`changed ${k}: ${v} => ${after[k]}`);
  }
  for (const [k, v] of Object.entries(after)) if (!(k in before)) out.push(`appeared ${k} (${v})`);
  return out;
}

/** The extracted tree: rel path → descriptor (same format as the generator's expectations). */
async function describeTree(root: string): Promise<Record<string, string>> {
  const entries: { rel: string; st: Stats }[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, r));
      entries.push({ rel: r, st });
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  const groups = new Map<number, string[]>();
  for (const { rel, st } of entries) {
    if (st.isDirectory() || st.nlink < 2) continue;
    groups.set(st.ino, [...(groups.get(st.ino) ?? []), rel]);
  }
  const xattrs = await readXattrsRecursive(root);
  const out: Record<string, string> = {};
  for (const { rel, st } of entries) {
    const p = join(root, rel);
    const own = `${st.uid}:${st.gid}`;
    let d: string;
    if (st.isDirectory()) d = `dir ${m4(st.mode)} ${own}`;
    else if (st.isSymbolicLink()) d = `symlink ${own} -> ${readlinkSync(p)}`;
    else if (st.isFile()) d = `file ${m4(st.mode)} ${own} ${describeContent(readFileSync(p))}`;
    else if (st.isFIFO()) d = `fifo ${m4(st.mode)} ${own}`;
    else d = `other ${(st.mode & 0o170000).toString(8)} ${m4(st.mode)} ${own} rdev=${st.rdev}`;
    if (!st.isDirectory() && st.nlink > 1) d += ` hardlinks=${st.nlink}#${[...(groups.get(st.ino) ?? [rel])].sort()[0]}`;
    const xs = xattrs.get(p);
    if (xs) for (const name of [...xs.keys()].sort()) d += ` xattr:${name}=0x${(xs.get(name) as Buffer).toString('hex')}`;
    out[rel] = d;
  }
  return out;
}

function makeCanaries(dir: string, label: string): void {
  mkdirSync(join(dir, 'canary-dir/sub'), { recursive: true, mode: 0o755 });
  writeFileSync(join(dir, 'canary-file'), `${label} canary\n`, { mode: 0o644 });
  writeFileSync(join(dir, 'canary-dir/keep'), `${label} keep\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'canary-dir/sub/keep2'), `${label} keep2\n`, { mode: 0o640 });
  for (const p of ['canary-dir/sub/keep2', 'canary-dir/keep', 'canary-dir/sub', 'canary-dir', 'canary-file']) {
    utimesSync(join(dir, p), CANARY_MTIME, CANARY_MTIME);
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

async function main(): Promise<void> {
  const [work, corpus] = process.argv.slice(2);
  if (!work || !corpus) throw new Error('usage: corpus-script <work> <corpus-dir>');
  // A restrictive umask: nothing the apply creates may depend on it.
  process.umask(0o077);
  const index = JSON.parse(readFileSync(join(corpus, 'cases.json'), 'utf8')) as CorpusIndex;
  makeCanaries(index.outside, 'outside');
  makeCanaries(index.home, 'home');
  const canaries = { ...snapshot(index.outside), ...snapshot(index.home) };
  const probeDirs = ['/', '/tmp', '/etc', dirname(work), work, dirname(index.home), index.home, dirname(index.outside)];

  const results: Record<string, CaseResult> = {};
  for (const c of index.cases) {
    const caseDir = join(work, 'cases', c.name);
    const root = join(caseDir, 'root');
    mkdirSync(root, { recursive: true, mode: 0o755 });
    makeCanaries(caseDir, c.name);
    const watch = (): Record<string, string> => ({
      ...snapshot(work, new Set([root])),
      ...snapshot(index.home),
      ...hostProbe(probeDirs),
    });
    const before = watch();
    const t0 = Date.now();
    let res: Omit<CaseResult, 'canaryChanges' | 'ms'>;
    try {
      if (c.base) {
        try {
          await applyLayer(root, createReadStream(join(corpus, c.base)));
        } catch (err) {
          throw Object.assign(new Error(`base layer failed: ${(err as Error).message}`), { base: true });
        }
      }
      const r = await withTimeout(applyLayer(root, createReadStream(join(corpus, c.layer))), 15_000);
      res = r === 'timeout' ? { outcome: 'timeout' } : { outcome: 'applied', warnings: r.warnings, tree: await describeTree(root) };
    } catch (err) {
      const e = err as Error & { code?: unknown; base?: boolean };
      res = { outcome: e.base ? 'base-failed' : 'refused', error: e.name, message: e.message };
      if (e.code !== undefined) res.code = String(e.code);
    }
    const ms = Date.now() - t0;
    results[c.name] = { ...res, canaryChanges: diff(before, watch()), ms };
    rmSync(caseDir, { recursive: true, force: true });
  }
  const report: CorpusReport = {
    uidMap: readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/).join(' '),
    umask: process.umask().toString(8),
    canaries,
    results,
  };
  process.stdout.write(JSON.stringify(report));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
