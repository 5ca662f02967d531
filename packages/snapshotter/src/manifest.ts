/**
 * Native backend: a committed tree's recorded metadata ("manifest") and the
 * diff of a working tree against it.
 *
 * A manifest maps every path of a tree to what lstat and getfattr said about it
 * (inode, size, mode, owners, mtime and ctime in ns, link target, device number,
 * xattrs) plus a content hash when one was computed. diff() walks the working
 * tree once (lstat per entry) and decides per entry:
 *  - same inode and ctime (and metadata): unchanged — its content and xattrs cannot
 *    have changed without bumping ctime, so nothing is read;
 *  - type/size/mode/owners/mtime/link target/device/xattrs differ: changed;
 *  - only the inode or ctime differ (chmod to the same mode, link count change,
 *    content rewritten with the mtime restored, inode reuse after rm + create):
 *    ambiguous — the file is hashed and compared with the recorded hash (or with
 *    the same file of an immutable reference tree it was copied from); with
 *    nothing to compare against it is emitted (a superset layer is still correct).
 * xattrs are only read for entries that are new or whose inode/ctime changed.
 * An emitted name of a hardlinked file whose inode keeps an unchanged name becomes a Link
 * to that name (see unchangedLinkTargets).
 * The same walk yields the next manifest, so commit needs no extra pass.
 */
import type { BigIntStats } from 'node:fs';
import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { lstat, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { entryFor, type WalkContext } from './changes.js';
import type { LayerEntry } from './diff-writer.js';
import { isOverlayPrivateXattr, WHITEOUT_PREFIX } from './whiteout.js';
import { readXattrsOf } from './xattr.js';
import { hasXattrTools, readXattrsRecursive } from './xattr.js';


export type RecType = 'f' | 'd' | 'l' | 'c' | 'b' | 'p' | 's';

/** One manifest record (per path; '' is the tree root). */
export interface ManifestRec {
  t: RecType;
  ino: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  /** mtime / ctime in ns, decimal strings (bigint). */
  mt: string;
  ct: string;
  link?: string;
  rdev?: string;
  /** xattr name → hex value (overlay-private and security.selinux left out). */
  x?: Record<string, string>;
  /** sha256 hex of the content, when it was computed. */
  h?: string;
}

export type Manifest = Map<string, ManifestRec>;

const MANIFEST_VERSION = 'stowage-manifest-v1';

/** Serialise as JSON lines: a header, then `[path, rec]` per entry (compact, streamable). */
export async function writeManifest(path: string, m: Manifest): Promise<void> {
  const fh = await open(path, 'w', 0o644);
  try {
    let buf = `${JSON.stringify({ version: MANIFEST_VERSION, entries: m.size })}\n`;
    for (const [p, rec] of m) {
      buf += `${JSON.stringify([p, rec])}\n`;
      if (buf.length > 1 << 20) {
        await fh.write(buf);
        buf = '';
      }
    }
    await fh.write(buf);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function readManifest(path: string): Promise<Manifest> {
  const text = await readFile(path, 'utf8');
  const lines = text.split('\n');
  const head = JSON.parse(lines[0] ?? '{}') as { version?: string; entries?: number };
  if (head.version !== MANIFEST_VERSION) throw new Error(`${path}: not a ${MANIFEST_VERSION} file`);
  const m: Manifest = new Map();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.length === 0) continue;
    const [p, rec] = JSON.parse(line) as [string, ManifestRec];
    m.set(p, rec);
  }
  if (head.entries !== m.size) throw new Error(`${path}: truncated manifest (${m.size}/${head.entries} entries)`);
  return m;
}

const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));
const join0 = (rel: string, name: string): string => (rel === '' ? name : `${rel}/${name}`);

function recType(st: BigIntStats): RecType {
  if (st.isDirectory()) return 'd';
  if (st.isFile()) return 'f';
  if (st.isSymbolicLink()) return 'l';
  if (st.isCharacterDevice()) return 'c';
  if (st.isBlockDevice()) return 'b';
  if (st.isFIFO()) return 'p';
  return 's';
}

function keptXattrs(all: Map<string, Buffer> | undefined): Record<string, string> | undefined {
  if (!all) return undefined;
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, v] of [...all].sort(([a], [b]) => byteOrder(a, b))) {
    if (isOverlayPrivateXattr(k) || k === 'security.selinux') continue;
    out[k] = v.toString('hex');
    n++;
  }
  return n > 0 ? out : undefined;
}

const sameXattrs = (a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean =>
  JSON.stringify(a ?? {}) === JSON.stringify(b ?? {});

export async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}


interface Node {
  st: BigIntStats;
  link?: string;
  /** Sorted child names (directories only). */
  children?: string[];
}

type State = 'new' | 'same' | 'changed' | 'check';

export interface ScanOptions {
  sourceDateEpoch?: number;
  /** An immutable tree the working tree was copied from: ambiguous files are compared with it. */
  reference?: string;
}

export interface ScanStats {
  entries: number;
  /** Entries decided from metadata alone. */
  unchanged: number;
  hashed: number;
  xattrReads: number;
}

export interface ScanResult {
  /** Layer entries, parents before children, byte-ordered siblings (same order as the tree walk of changes.ts). */
  entries: LayerEntry[];
  manifest: Manifest;
  stats: ScanStats;
}

/**
 * Hardlinks whose inode keeps a name this layer does not emit: dev:ino → that name (the first
 * in walk order, so the choice never depends on inode numbers). entryFor then emits every name
 * of the inode that the layer does carry (moved, newly linked, …) as a Link to it; as a File it
 * would become a separate inode when the layer is applied. The name must be unchanged *with the
 * base's inode*: then the lower tree has this very inode there, and no entry of the layer removes
 * or replaces it or its parents (those are directories in both trees, and a Directory entry over
 * a directory keeps its children), so the Link target exists whatever its place in the layer.
 * Names emitted earlier in the layer need nothing here: entryFor records the first one it emits.
 */
function unchangedLinkTargets(nodes: Map<string, Node>, state: Map<string, State>, base: Manifest): Map<string, string> {
  const out = new Map<string, string>();
  for (const [rel, { st }] of nodes) {
    if (!st.isFile() || st.nlink < 2n || state.get(rel) !== 'same' || base.get(rel)?.ino !== String(st.ino)) continue;
    const key = `${st.dev}:${st.ino}`;
    if (!out.has(key)) out.set(key, rel);
  }
  return out;
}

/**
 * Compare the tree at `root` with `base` (the manifest of the tree it started as;
 * empty = everything is new) and return the layer entries and the tree's new manifest.
 */
export async function scanTree(root: string, base: Manifest, opts: ScanOptions = {}): Promise<ScanResult> {
  const nodes = new Map<string, Node>();
  const state = new Map<string, State>();
  // Phase 1: lstat everything; decide what metadata alone can decide. Synchronous calls
  // (a few µs each on a cached tree, vs. a thread-pool round trip for the async ones),
  // yielding to the event loop every so often so sibling work keeps moving.
  let sinceYield = 0;
  const walk = async (rel: string): Promise<void> => {
    if (++sinceYield >= 1000) {
      sinceYield = 0;
      await new Promise((r) => setImmediate(r));
    }
    const abs = rel === '' ? root : join(root, rel);
    const st = lstatSync(abs, { bigint: true });
    const node: Node = { st };
    nodes.set(rel, node);
    const b = base.get(rel);
    const t = recType(st);
    let s: State;
    if (!b || b.t !== t) s = 'new';
    else {
      const clean = b.ino === String(st.ino) && b.ct === String(st.ctimeNs);
      const metaSame =
        b.mode === Number(st.mode & 0o7777n) &&
        b.uid === Number(st.uid) &&
        b.gid === Number(st.gid) &&
        b.mt === String(st.mtimeNs) &&
        (t !== 'f' || b.size === Number(st.size)) &&
        ((t !== 'c' && t !== 'b') || b.rdev === String(st.rdev));
      if (!metaSame) s = 'changed';
      else if (clean) s = 'same';
      else s = 'check';
      if (clean && t === 'l') node.link = b.link; // a symlink's target never changes in place
    }
    if (t === 'l' && node.link === undefined) node.link = readlinkSync(abs);
    if (t === 'l' && s !== 'new' && node.link !== b?.link) s = 'changed';
    state.set(rel, s);
    if (t === 'd') {
      node.children = readdirSync(abs).sort(byteOrder);
      for (const name of node.children) await walk(join0(rel, name));
    }
  };
  await walk('');

  // Phase 2: xattrs — carried over where inode+ctime prove them unchanged, read for the rest.
  const xattrs = new Map<string, Map<string, Buffer>>();
  const need: string[] = [];
  for (const [rel, s] of state) {
    if (s === 'same') {
      const x = base.get(rel)?.x;
      if (x) xattrs.set(rel, new Map(Object.entries(x).map(([k, v]) => [k, Buffer.from(v, 'hex')])));
    } else need.push(rel);
  }
  let xattrReads = 0;
  if (need.length > 0 && (await hasXattrTools())) {
    const read =
      need.length > 1000 && need.length * 2 > nodes.size
        ? await readXattrsRecursive(root)
        : await readXattrsOf(need.map((rel) => (rel === '' ? root : join(root, rel))));
    xattrReads = need.length;
    for (const rel of need) {
      const x = read.get(rel === '' ? root : join(root, rel));
      if (x && x.size > 0) xattrs.set(rel, x);
    }
  }

  // Phase 3: settle the ambiguous ones, build the new manifest.
  const manifest: Manifest = new Map();
  let hashed = 0;
  let unchanged = 0;
  for (const [rel, node] of nodes) {
    const { st } = node;
    const b = base.get(rel);
    let s = state.get(rel) as State;
    const x = keptXattrs(xattrs.get(rel));
    let h: string | undefined;
    if ((s === 'check' || s === 'changed') && b && !sameXattrs(x, b.x)) s = 'changed';
    if (s === 'check') {
      if (st.isFile()) {
        const abs = join(root, rel);
        let ref = b?.h;
        if (ref === undefined && opts.reference !== undefined) {
          try {
            const rst = await lstat(join(opts.reference, rel), { bigint: true });
            if (rst.isFile() && rst.size === st.size) ref = await hashFile(join(opts.reference, rel));
          } catch {
            ref = undefined;
          }
        }
        if (ref !== undefined) {
          h = await hashFile(abs);
          hashed++;
          s = h === ref ? 'same' : 'changed';
        } else s = 'changed';
      } else s = 'same'; // dir/symlink/device/fifo: metadata, target and xattrs all equal
    } else if (s === 'same') h = b?.h;
    if (s === 'same') unchanged++;
    state.set(rel, s);
    manifest.set(rel, {
      t: recType(st),
      ino: String(st.ino),
      size: Number(st.size),
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mt: String(st.mtimeNs),
      ct: String(st.ctimeNs),
      ...(node.link !== undefined ? { link: node.link } : {}),
      ...(st.isCharacterDevice() || st.isBlockDevice() ? { rdev: String(st.rdev) } : {}),
      ...(x ? { x } : {}),
      ...(h !== undefined ? { h } : {}),
    });
  }

  // Phase 4: emit, in the order changes.ts uses (parents first, siblings and whiteouts byte-ordered).
  const ctx: WalkContext = {
    ...(opts.sourceDateEpoch !== undefined ? { sourceDateEpoch: Math.floor(opts.sourceDateEpoch) } : {}),
    xattrs: new Map([...xattrs].map(([rel, x]) => [join(root, rel), x])),
    links: unchangedLinkTargets(nodes, state, base),
  };
  const baseChildren = new Map<string, string[]>();
  for (const rel of base.keys()) {
    if (rel === '') continue;
    const slash = rel.lastIndexOf('/');
    const dir = slash < 0 ? '' : rel.slice(0, slash);
    let list = baseChildren.get(dir);
    if (!list) baseChildren.set(dir, (list = []));
    list.push(slash < 0 ? rel : rel.slice(slash + 1));
  }
  const entry = async (rel: string): Promise<LayerEntry | undefined> =>
    entryFor(rel, join(root, rel), (nodes.get(rel) as Node).st, ctx);
  const all = async (rel: string, out: LayerEntry[]): Promise<void> => {
    for (const name of nodes.get(rel)?.children ?? []) {
      const c = join0(rel, name);
      const e = await entry(c);
      if (e) out.push(e);
      await all(c, out);
    }
  };
  const marker = (path: string): LayerEntry => ({ path, type: 'File', mode: 0, uid: 0, gid: 0, mtime: 0, size: 0, source: '/dev/null' });
  const changes = async (rel: string): Promise<LayerEntry[]> => {
    const names = nodes.get(rel)?.children ?? [];
    const present = new Set(names);
    const baseIsDir = base.get(rel)?.t === 'd';
    const gone = baseIsDir ? (baseChildren.get(rel) ?? []).filter((n) => !present.has(n)) : [];
    const items = [
      ...names.map((name) => ({ key: name, name, deleted: false })),
      ...gone.map((name) => ({ key: `${WHITEOUT_PREFIX}${name}`, name, deleted: true })),
    ].sort((a, b) => byteOrder(a.key, b.key));
    const out: LayerEntry[] = [];
    for (const { name, deleted } of items) {
      const c = join0(rel, name);
      if (deleted) {
        out.push(marker(join0(rel, `${WHITEOUT_PREFIX}${name}`)));
        continue;
      }
      const s = state.get(c);
      const isDir = (nodes.get(c) as Node).st.isDirectory();
      if (s === 'new') {
        const e = await entry(c);
        if (e) out.push(e);
        if (isDir) await all(c, out);
        continue;
      }
      if (isDir) {
        const sub = await changes(c);
        if (sub.length > 0 || s === 'changed') {
          const e = await entry(c);
          if (e) out.push(e);
          out.push(...sub);
        }
        continue;
      }
      if (s === 'changed') {
        const e = await entry(c);
        if (e) out.push(e);
      }
    }
    return out;
  };
  const entries = await changes('');
  return { entries, manifest, stats: { entries: nodes.size, unchanged, hashed, xattrReads } };
}
