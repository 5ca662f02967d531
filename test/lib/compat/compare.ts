// Comparing BuildKit's and stowage's results, and checking a case's listed differences.
import { compareConfigs } from './config.js';
import { displayPath, hardlinkGroups, normPath, type FsEntry, type RootfsIndex } from './rootfs.js';

export interface Difference {
  /** "/abs/path", "config.FIELD" or "run.stdout" / "run.exit" */
  path: string;
  /** exists, type, mode, uid, gid, size, sha256, target, dev, xattr:NAME, hardlinks; the config field; stdout, exit */
  field: string;
  buildkit: string;
  stowage: string;
  /** Set by applyListing: the `why` of the listing that covers it. */
  listed?: string;
}

export interface Listing {
  path: string;
  why: string;
  /**
   * The path may or may not differ from one run to the next (content that depends on the
   * date or on chance, e.g. /etc/shadow's day of the last password change, which differs
   * when BuildKit's cached result is from another day): never reported as stale.
   */
  unstable?: boolean;
}

export const UNSET = '(unset)';
const octal = (m: number) => m.toString(8).padStart(4, '0');

function describe(e: FsEntry): string {
  const what = e.type === 'symlink' ? `symlink -> ${e.target}` : e.type;
  return `${what} ${octal(e.mode)} ${e.uid}:${e.gid}${e.type === 'file' ? ` ${e.size}B` : ''}`;
}

/**
 * Differences between two root filesystems, entry by entry, in path order: presence, type,
 * mode (with setuid/setgid/sticky), uid, gid, size, sha256 (when the sizes agree), symlink
 * target, device numbers, each xattr, hardlink group. Not mtimes. When the types differ
 * only the type is reported.
 */
export function compareRootfs(buildkit: RootfsIndex, stowage: RootfsIndex): Difference[] {
  const out: Difference[] = [];
  const ga = hardlinkGroups(buildkit);
  const gb = hardlinkGroups(stowage);
  const paths = [...new Set([...buildkit.entries.keys(), ...stowage.entries.keys()])].sort();
  for (const p of paths) {
    const a = buildkit.entries.get(p);
    const b = stowage.entries.get(p);
    const path = displayPath(p);
    const d = (field: string, x: string, y: string) => out.push({ path, field, buildkit: x, stowage: y });
    if (!a || !b) {
      d('exists', a ? describe(a) : 'missing', b ? describe(b) : 'missing');
      continue;
    }
    if (a.type !== b.type) {
      d('type', describe(a), describe(b));
      continue;
    }
    if (a.mode !== b.mode) d('mode', octal(a.mode), octal(b.mode));
    if (a.uid !== b.uid) d('uid', String(a.uid), String(b.uid));
    if (a.gid !== b.gid) d('gid', String(a.gid), String(b.gid));
    if (a.size !== b.size) d('size', String(a.size), String(b.size));
    else if (a.sha256 !== b.sha256) d('sha256', a.sha256 ?? UNSET, b.sha256 ?? UNSET);
    if (a.target !== b.target) d('target', a.target ?? UNSET, b.target ?? UNSET);
    if (a.dev !== b.dev) d('dev', a.dev ?? UNSET, b.dev ?? UNSET);
    for (const k of [...new Set([...Object.keys(a.xattrs), ...Object.keys(b.xattrs)])].sort()) {
      if (a.xattrs[k] !== b.xattrs[k]) d(`xattr:${k}`, a.xattrs[k] ?? UNSET, b.xattrs[k] ?? UNSET);
    }
    const la = (ga.get(p) ?? []).join(', ');
    const lb = (gb.get(p) ?? []).join(', ');
    if (la !== lb) d('hardlinks', la || '(none)', lb || '(none)');
  }
  return out;
}

/** Config differences as Difference records (path config.FIELD). */
export function configDifferences(buildkit: unknown, stowage: unknown): Difference[] {
  return compareConfigs(buildkit, stowage).map((c) => ({
    path: `config.${c.field}`,
    field: c.field,
    buildkit: c.buildkit ?? UNSET,
    stowage: c.stowage ?? UNSET,
  }));
}

/**
 * The normalised form of a listing's path: "config.X" / "run.X" as is; file paths as
 * "/" + normPath (a trailing "/**" is kept: it covers the directory and everything under it).
 */
export function normListingPath(p: string): string {
  if (/^(config|run)\./.test(p)) return p;
  if (p === '/**' || p.endsWith('/**')) return `${displayPath(normPath(p.slice(0, -3)))}/**`.replace(/^\/\/\*\*$/, '/**');
  return displayPath(normPath(p));
}

function covers(listing: string, path: string): boolean {
  if (listing === path) return true;
  if (listing.endsWith('/**')) {
    const dir = listing.slice(0, -3);
    return dir === '' || path === dir || path.startsWith(`${dir}/`);
  }
  return false;
}

export interface ListingCheck {
  /** Differences no listing covers. */
  unlisted: Difference[];
  /** Listings that cover no difference (unstable ones excepted): "stale listing". */
  stale: Listing[];
  /** Listings whose `why` is malformed or names an anchor docs/compat.md lacks. */
  badWhy: { listing: Listing; problem: string }[];
}

/**
 * Marks each difference covered by a listing (Difference.listed = its why) and reports the
 * unlisted differences, the stale listings and the bad `why`s. `anchors` is the set of
 * anchors of docs/compat.md (undefined: the file is missing).
 */
export function applyListing(diffs: Difference[], listings: Listing[], anchors: Set<string> | undefined): ListingCheck {
  const norm = listings.map((l) => ({ l, p: normListingPath(l.path) }));
  const used = new Set<number>();
  for (const d of diffs) {
    const i = norm.findIndex((n) => covers(n.p, d.path));
    if (i >= 0) {
      d.listed = norm[i]!.l.why;
      // Every listing that covers it counts as used (a broad /** and an exact one may overlap).
      norm.forEach((n, j) => covers(n.p, d.path) && used.add(j));
    } else {
      delete d.listed;
    }
  }
  const badWhy: ListingCheck['badWhy'] = [];
  for (const { l } of norm) {
    const m = /^compat\.md#([^\s#]+)$/.exec(l.why ?? '');
    if (!m) badWhy.push({ listing: l, problem: `why must be "compat.md#anchor", not ${JSON.stringify(l.why)}` });
    else if (!anchors) badWhy.push({ listing: l, problem: `docs/compat.md does not exist (needed for ${l.why})` });
    else if (!anchors.has(m[1]!)) badWhy.push({ listing: l, problem: `docs/compat.md has no heading with the anchor #${m[1]} (${l.path})` });
  }
  return {
    unlisted: diffs.filter((d) => d.listed === undefined),
    stale: norm.filter((n, i) => !used.has(i) && n.l.unstable !== true).map((n) => n.l),
    badWhy,
  };
}

/**
 * The anchors GitHub generates for a Markdown file's headings (github-slugger: lower-cased
 * text of the rendered heading, characters other than letters, digits, marks, "_", "-" and
 * space removed, spaces turned to "-", repeats suffixed -1, -2, …), plus explicit
 * <a name="…"> / <a id="…"> anchors.
 */
export function markdownAnchors(markdown: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  let fence: string | undefined;
  for (const line of markdown.split('\n')) {
    const f = /^\s{0,3}(```|~~~)/.exec(line);
    if (f) {
      if (!fence) fence = f[1];
      else if (fence === f[1]) fence = undefined;
      continue;
    }
    if (fence) continue;
    for (const m of line.matchAll(/<a\s+(?:name|id)\s*=\s*["']([^"']+)["']/gi)) out.add(m[1]!);
    const h = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const text = h[1]!
      .replace(/<[^>]*>/g, '') // inline HTML
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images: their text
      .replace(/`([^`]*)`/g, '$1') // code spans: their text
      .replace(/(\*\*|__)(.*?)\1/g, '$2') // strong
      .replace(/(\*|_)(.*?)\1/g, '$2'); // emphasis
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    let slug = base;
    const n = seen.get(base);
    if (n !== undefined) {
      slug = `${base}-${n}`;
      seen.set(base, n + 1);
    } else {
      seen.set(base, 1);
    }
    out.add(slug);
  }
  return out;
}
