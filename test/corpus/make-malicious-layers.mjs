#!/usr/bin/env node
/**
 * Writes a corpus of hand-made malicious (and merely tricky) layer tars for applyLayer.
 *
 *   node test/corpus/make-malicious-layers.mjs <out-dir> [--outside <abs dir>] [--home <abs dir>]
 *
 * For each case: `<name>.tar` (or `<name>.tar.gz`), sometimes a `<name>.base.tar` applied
 * first (the "lower layers"), and one record in `<out-dir>/cases.json`:
 *
 *   { name, description, models?, layer, base?, expect }
 *   expect = { outcome: "refused", code, message? }            // message: a RegExp source
 *          | { outcome: "applied", tree, warnings }            // warnings: RegExp sources, in order
 *
 * `tree` maps every path below the extraction root to a descriptor (see `describe*` below;
 * the test script renders what it finds on disk the same way). uid:gid are as seen inside
 * the user namespace the corpus is applied in.
 *
 * Expected codes: E_LAYER_UNSAFE_PATH for anything aiming outside the root (or otherwise unsafe
 * to apply); E_LAYER_INVALID where the archive itself is malformed (framing, numbers, checksums,
 * truncation, an empty symlink target, a hardlink replacing its own parent): no reading of it is
 * right, and Go's archive/tar (containerd, moby) rejects the same; E_LAYER_UNSUPPORTED where the
 * layer is fine but this environment cannot represent it (an owner outside the user namespace's
 * id map). Each such case says why in `expect.why`.
 *
 * Every byte is built here (512-byte ustar/GNU headers, PAX `x`/`g` records, GNU `L`/`K`
 * records, checksums), so each case is exactly what it claims; no tar library is involved.
 *
 * Canary locations the layers aim at (they must stay untouched):
 *   <root>/../canary-file, <root>/../canary-dir/{keep,sub/keep2}   per-case siblings of the root
 *   <outside>/canary-file, <outside>/canary-dir/keep              absolute path (default /tmp/stowage-canary)
 *   <home>/canary-file, <home>/canary-dir/keep                    a dir in the test user's home
 *   /etc/passwd, /tmp, /                                          host paths
 * Files a successful escape would create are all named PWNED*.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { gzipSync } from 'node:zlib';

// ------------------------------------------------------------------------------ arguments
const args = process.argv.slice(2);
let outDir;
let OUTSIDE = '/tmp/stowage-canary';
let HOME = '/home/stowage-ci/.stowage-canary';
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--outside') OUTSIDE = args[++i];
  else if (args[i] === '--home') HOME = args[++i];
  else if (!outDir) outDir = args[i];
  else throw new Error(`unexpected argument ${args[i]}`);
}
if (!outDir || !isAbsolute(OUTSIDE) || !isAbsolute(HOME)) {
  process.stderr.write('usage: make-malicious-layers.mjs <out-dir> [--outside <abs dir>] [--home <abs dir>]\n');
  process.exit(2);
}
OUTSIDE = OUTSIDE.replace(/\/+$/, '');
HOME = HOME.replace(/\/+$/, '');

// ------------------------------------------------------------------------------ tar bytes
const MTIME = 1_600_000_000;
const BLOCK = 512;
const TYPE = { file: '0', v7file: '\0', link: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6', pax: 'x', gpax: 'g', longname: 'L', longlink: 'K' };

const pad = (n) => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);

/** Octal, zero-padded, NUL-terminated in `len` bytes. */
function octal(value, len) {
  const s = value.toString(8);
  if (s.length > len - 1) throw new Error(`${value} does not fit ${len} octal bytes`);
  return Buffer.from(`${s.padStart(len - 1, '0')}\0`, 'ascii');
}

/** GNU base-256 (first byte 0x80 positive / 0xff negative, big-endian two's complement). */
export function base256(value, len) {
  const b = Buffer.alloc(len);
  let v = BigInt(value);
  const neg = v < 0n;
  if (neg) v = (1n << BigInt(8 * len)) + v;
  for (let i = len - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  b[0] = neg ? 0xff : b[0] | 0x80;
  return b;
}

/**
 * One header block. Strings are written raw (no truncation checks beyond the field size);
 * numbers as octal unless a Buffer is given (base-256 or garbage).
 */
function header(h) {
  const b = Buffer.alloc(BLOCK);
  const put = (off, len, v) => {
    const buf = Buffer.isBuffer(v) ? v : Buffer.from(String(v), 'utf8');
    if (buf.length > len) throw new Error(`field at ${off} too long: ${buf.length} > ${len}`);
    buf.copy(b, off);
  };
  const num = (off, len, v) => put(off, len, Buffer.isBuffer(v) ? v : octal(v, len));
  put(0, 100, h.name);
  num(100, 8, h.mode ?? (h.type === TYPE.dir ? 0o755 : 0o644));
  num(108, 8, h.uid ?? 0);
  num(116, 8, h.gid ?? 0);
  num(124, 12, h.size ?? 0);
  num(136, 12, h.mtime ?? MTIME);
  put(156, 1, h.type ?? TYPE.file);
  put(157, 100, h.linkname ?? '');
  const magic = h.magic ?? 'ustar';
  if (magic === 'ustar') put(257, 8, Buffer.from('ustar\x0000', 'latin1'));
  else if (magic === 'gnu') put(257, 8, Buffer.from('ustar  \0', 'latin1'));
  if (magic !== 'v7') {
    put(265, 32, h.uname ?? 'root');
    put(297, 32, h.gname ?? 'root');
    num(329, 8, h.devmajor ?? 0);
    num(337, 8, h.devminor ?? 0);
    if (magic === 'ustar') put(345, 155, h.prefix ?? '');
  }
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${(h.checksum ?? sum).toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return b;
}

/** A complete member: header + data + padding. `data` may be shorter than the header's size (truncation cases). */
function member(h, data = Buffer.alloc(0)) {
  const body = Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8');
  return Buffer.concat([header({ size: body.length, ...h }), body, pad(body.length)]);
}

const file = (name, content = '', h = {}) => member({ name, type: TYPE.file, ...h }, content);
const dir = (name, h = {}) => member({ name, type: TYPE.dir, ...h });
const symlink = (name, target, h = {}) => member({ name, type: TYPE.symlink, linkname: target, mode: 0o777, ...h });
const hardlink = (name, target, h = {}) => member({ name, type: TYPE.link, linkname: target, ...h });
const fifo = (name, h = {}) => member({ name, type: TYPE.fifo, ...h });
const chardev = (name, major, minor, h = {}) => member({ name, type: TYPE.char, devmajor: major, devminor: minor, mode: 0o666, ...h });
const blockdev = (name, major, minor, h = {}) => member({ name, type: TYPE.block, devmajor: major, devminor: minor, mode: 0o660, ...h });

/** PAX records (values: string or Buffer), with the self-inclusive decimal length prefix. */
function paxBody(records) {
  const parts = [];
  for (const [k, v] of records) {
    const rest = Buffer.concat([Buffer.from(` ${k}=`, 'utf8'), Buffer.isBuffer(v) ? v : Buffer.from(String(v), 'utf8'), Buffer.from('\n')]);
    let len = rest.length + 1;
    while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
    parts.push(Buffer.from(String(len), 'ascii'), rest);
  }
  return Buffer.concat(parts);
}
const pax = (records, h = {}) => member({ name: 'PaxHeaders.0/entry', type: TYPE.pax, ...h }, paxBody(records));
const gpax = (records) => member({ name: 'GlobalHead.0.0', type: TYPE.gpax }, paxBody(records));
/** GNU ././@LongLink record ('L' = next name, 'K' = next link target), NUL-terminated. */
const gnuLong = (type, value) => member({ name: '././@LongLink', type, magic: 'gnu', mode: 0o644 }, Buffer.concat([Buffer.from(value, 'utf8'), Buffer.alloc(1)]));
const END = Buffer.alloc(2 * BLOCK);
const tar = (...members) => Buffer.concat([...members, END]);

// ---------------------------------------------------------------------- expected trees
/** Same rendering as the test script: small UTF-8 contents verbatim (JSON), others by digest. */
function describeContent(buf) {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf, 'utf8');
  if (b.length <= 256 && Buffer.from(b.toString('utf8'), 'utf8').equals(b)) return JSON.stringify(b.toString('utf8'));
  return `${b.length}B:sha256:${createHash('sha256').update(b).digest('hex')}`;
}
const m4 = (mode) => mode.toString(8).padStart(4, '0');
const D = (mode = 0o755, uid = 0, gid = 0) => `dir ${m4(mode)} ${uid}:${gid}`;
const F = (content, mode = 0o644, uid = 0, gid = 0) => `file ${m4(mode)} ${uid}:${gid} ${describeContent(content)}`;
const L = (target, uid = 0, gid = 0) => `symlink ${uid}:${gid} -> ${target}`;
const P = (mode = 0o644, uid = 0, gid = 0) => `fifo ${m4(mode)} ${uid}:${gid}`;
/** Suffixes: hard link group (nlink + first path of the group), xattrs (sorted by name, hex). */
const hl = (nlink, first) => ` hardlinks=${nlink}#${first}`;
const xa = (name, value) => ` xattr:${name}=0x${Buffer.from(value).toString('hex')}`;

/** Implicit directories (0755) for every ancestor of rel path `p`, plus `p` itself when `self`. */
function ancestors(p, self = false) {
  const parts = p.split('/').filter(Boolean);
  const out = {};
  for (let i = 1; i <= parts.length - (self ? 0 : 1); i++) out[parts.slice(0, i).join('/')] = D();
  return out;
}
const rel = (abs) => abs.replace(/^\/+/, '');

const UNSAFE = 'E_LAYER_UNSAFE_PATH';
const INVALID = 'E_LAYER_INVALID';
const UNSUPPORTED = 'E_LAYER_UNSUPPORTED';
const refused = (code, message, why) => ({ outcome: 'refused', code, ...(message ? { message } : {}), ...(why ? { why } : {}) });
const WHY_INVALID = 'malformed archive: Go archive/tar (containerd, moby) rejects it too, and any lenient reading would frame entries differently';
const applied = (tree, warnings = []) => ({ outcome: 'applied', tree, warnings });

// A run of '..' that reaches the host '/' from wherever the root is (its depth is < 16).
const UP = '../'.repeat(16);
const PWNED = 'PWNED by a malicious layer\n';

const cases = [];
/** @param {{name:string, description:string, models?:string, layer:Buffer, base?:Buffer, gzip?:boolean, expect:object}} c */
const add = (c) => cases.push(c);

// ================================================================= path traversal in names
add({
  name: 'dotdot-file',
  description: "A file named ../canary-file: the classic zip-slip write next to the extraction root.",
  models: 'Zip-slip; kaniko GHSA-6rxq-q92g-4rmf (tar entry ../outside.txt escapes dest); moby/kaniko archive traversal class',
  layer: tar(file('../canary-file', PWNED)),
  expect: refused(UNSAFE, "'\\.\\.' component"),
});
add({
  name: 'dotdot-after-dirs',
  description: 'a/b/../../../canary-dir/PWNED: climbs above the root only after descending (lexical clean would keep it "inside" a/b first).',
  models: 'moby archive breakout check (filepath.Rel) class',
  layer: tar(dir('a/'), dir('a/b/'), file('a/b/../../../canary-dir/PWNED', PWNED)),
  expect: refused(UNSAFE, "'\\.\\.' component"),
});
add({
  name: 'dotdot-bare-directory',
  description: 'A directory entry named exactly "..", then a file below it.',
  layer: tar(dir('../'), file('../PWNED', PWNED)),
  expect: refused(UNSAFE, "'\\.\\.' component"),
});
add({
  name: 'dotdot-harmless-inside-refused',
  description: 'a/../b never leaves the root, but any ".." is refused outright (no lexical cleaning that a later symlink could subvert).',
  layer: tar(dir('a/'), file('a/../b', 'b')),
  expect: refused(UNSAFE, "'\\.\\.' component"),
});
add({
  name: 'absolute-path-outside',
  description: 'An absolute name pointing at the outside canary dir: must land below the root.',
  layer: tar(file(`${OUTSIDE}/canary-dir/PWNED-absolute`, PWNED)),
  expect: applied({ ...ancestors(`${rel(OUTSIDE)}/canary-dir/PWNED-absolute`), [`${rel(OUTSIDE)}/canary-dir/PWNED-absolute`]: F(PWNED) }),
});
add({
  name: 'absolute-etc-passwd',
  description: '/etc/passwd and //tmp/PWNED-tmp as absolute names: rooted at the extraction root, never the host.',
  layer: tar(file('/etc/passwd', 'root::0:0::/:/bin/sh\n'), file('//tmp/PWNED-tmp', PWNED)),
  expect: applied({ etc: D(), 'etc/passwd': F('root::0:0::/:/bin/sh\n'), tmp: D(), 'tmp/PWNED-tmp': F(PWNED) }),
});
add({
  name: 'dot-prefixed-names',
  description: '"/./etc/x", ".//./y", "/.hidden", "./" entries: "." and empty components are neutralised.',
  layer: tar(dir('./', { mode: 0o755 }), file('/./etc/x', 'x'), file('.//./y', 'y'), file('/.hidden', 'h')),
  expect: applied({ '.hidden': F('h'), etc: D(), 'etc/x': F('x'), y: F('y') }),
});
add({
  name: 'dot-prefixed-traversal',
  description: '"/./../canary-file" and "./.././x": a "/."-prefix hiding a "..".',
  layer: tar(file('/./../canary-file', PWNED)),
  expect: refused(UNSAFE, "'\\.\\.' component"),
});
add({
  name: 'root-entry-symlink',
  description:
    'An entry for the root itself ("/.") that is a symlink to "/", and "." as a symlink to the outside canary dir; ' +
    'later entries must still land in the real root (the root is never replaced).',
  models: 'umoci CVE-2021-29136 (a "/." symlink entry made umoci apply later entries to the host filesystem)',
  layer: tar(symlink('/.', '/'), symlink('.', `${OUTSIDE}/canary-dir`), file('etc/PWNED-root', PWNED), file('PWNED', PWNED)),
  expect: applied({ etc: D(), 'etc/PWNED-root': F(PWNED), PWNED: F(PWNED) }, ['root itself', 'root itself']),
});
add({
  name: 'ustar-prefix-traversal',
  description: 'ustar prefix field ".." + name "canary-file": the traversal is only visible after joining prefix/name.',
  layer: tar(member({ name: 'canary-file', prefix: '..', type: TYPE.file }, PWNED)),
  expect: refused(UNSAFE, "'\\.\\.' component"),
});
add({
  name: 'pax-path-traversal',
  description: 'Header name "innocent", PAX path "../canary-file": the PAX path overrides the header.',
  models: 'archive traversal class (checkers looking only at the ustar name)',
  layer: tar(pax([['path', '../canary-file']]), file('innocent', PWNED)),
  expect: refused(UNSAFE, "'\\.\\.' component"),
});
add({
  name: 'gnu-longname-traversal',
  description: 'GNU ././@LongLink (L) naming "<200 chars>/../../../canary-file".',
  layer: tar(gnuLong(TYPE.longname, `${'d'.repeat(200)}/../../../canary-file`), file('short', PWNED, { magic: 'gnu' })),
  expect: refused(UNSAFE, "'\\.\\.' component"),
});
add({
  name: 'literal-odd-names',
  description: 'Names that look like traversal but are plain names on Linux: "..\\\\canary-file", "...", "..a", "a..", ".wh" (no dot after), "a\\\\..\\\\..\\\\x".',
  layer: tar(file('..\\canary-file', '1'), dir('.../'), file('.../x', '2'), file('..a', '3'), file('a..', '4'), file('.wh', '5'), file('a\\..\\..\\x', '6')),
  expect: applied({
    '...': D(),
    '.../x': F('2'),
    '..\\canary-file': F('1'),
    '..a': F('3'),
    '.wh': F('5'),
    'a..': F('4'),
    'a\\..\\..\\x': F('6'),
  }),
});

// ======================================================================== symlinks
add({
  name: 'file-over-symlink',
  description: 'A symlink to the outside canary file, then a regular file with the same name: replace the link, never write through it.',
  models: 'kaniko #359 (regular file unpacked over an existing symlink overwrote its target, /bin/sh)',
  layer: tar(symlink('bin/sh', `${OUTSIDE}/canary-file`), file('bin/sh', PWNED, { mode: 0o755 })),
  expect: applied({ bin: D(), 'bin/sh': F(PWNED, 0o755) }),
});
add({
  name: 'file-over-relative-symlink-base',
  description: 'A lower layer has etc/hosts -> ../../canary-file (relative, climbing out); this layer writes etc/hosts.',
  models: 'kaniko #359 across layers',
  base: tar(dir('etc/'), symlink('etc/hosts', '../../canary-file')),
  layer: tar(file('etc/hosts', '127.0.0.1 localhost\n')),
  expect: applied({ etc: D(), 'etc/hosts': F('127.0.0.1 localhost\n') }),
});
add({
  name: 'symlink-dir-then-file',
  description: 'd -> <outside>/canary-dir, then d/PWNED: the symlink is followed scoped to the root.',
  models: 'symlink-then-file escape (CVE-2018-15664 class, Docker cp / archive symlink races without the race)',
  layer: tar(symlink('d', `${OUTSIDE}/canary-dir`), file('d/PWNED', PWNED), file('d/keep', PWNED)),
  expect: applied({
    d: L(`${OUTSIDE}/canary-dir`),
    ...ancestors(`${rel(OUTSIDE)}/canary-dir`, true),
    [`${rel(OUTSIDE)}/canary-dir/PWNED`]: F(PWNED),
    [`${rel(OUTSIDE)}/canary-dir/keep`]: F(PWNED),
  }),
});
add({
  name: 'symlink-to-slash',
  description: 'a -> /, then a/etc/PWNED, a/tmp/PWNED and a directory entry a/etc/ (mode 0777) that must not chmod the host /etc.',
  layer: tar(symlink('a', '/'), file('a/etc/PWNED', PWNED), file('a/tmp/PWNED', PWNED), dir('a/etc/', { mode: 0o777 })),
  expect: applied({ a: L('/'), etc: D(0o777), 'etc/PWNED': F(PWNED), tmp: D(), 'tmp/PWNED': F(PWNED) }),
});
add({
  name: 'symlink-chain',
  description: 'a -> b, b -> ../.. (each hop harmless-looking alone), then a/canary-dir/PWNED and a/canary-file.',
  layer: tar(symlink('a', 'b'), symlink('b', '../..'), file('a/canary-dir/PWNED', PWNED), file('a/canary-file', PWNED)),
  expect: applied({ a: L('b'), b: L('../..'), 'canary-dir': D(), 'canary-dir/PWNED': F(PWNED), 'canary-file': F(PWNED) }),
});
add({
  name: 'relative-symlink-climb',
  description: 'x/y/up -> ../../../canary-dir (climbs out of the root from a nested dir), then x/y/up/PWNED; and x/deep -> ../<16x>/<outside> (PAX linkpath), then x/deep/canary-file.',
  layer: tar(
    dir('x/'),
    dir('x/y/'),
    symlink('x/y/up', '../../../canary-dir'),
    file('x/y/up/PWNED', PWNED),
    pax([['linkpath', `${UP}${rel(OUTSIDE)}`]]),
    symlink('x/deep', 'see-pax-linkpath'),
    file('x/deep/canary-file', PWNED),
  ),
  expect: applied({
    x: D(),
    'x/y': D(),
    'x/y/up': L('../../../canary-dir'),
    'x/deep': L(`${UP}${rel(OUTSIDE)}`),
    'canary-dir': D(),
    'canary-dir/PWNED': F(PWNED),
    ...ancestors(`${rel(OUTSIDE)}/canary-file`),
    [`${rel(OUTSIDE)}/canary-file`]: F(PWNED),
  }),
});
add({
  name: 'symlink-loop',
  description: 'l1 -> l2, l2 -> l1, then l1/x: must fail cleanly (no infinite loop).',
  layer: tar(symlink('l1', 'l2'), symlink('l2', 'l1'), file('l1/x', PWNED)),
  expect: refused(UNSAFE, 'too many levels of symbolic links'),
});
add({
  name: 'symlink-self-amplifying',
  description: 's -> s/s/s/s (self-referencing with growth), then s/x: bounded by the link limit.',
  layer: tar(symlink('s', 's/s/s/s'), file('s/x', PWNED)),
  expect: refused(UNSAFE, 'too many levels of symbolic links'),
});
add({
  name: 'dir-replaces-outside-symlink',
  description: 'd -> <outside>/canary-dir, then a directory entry d/ (mode 0700) and d/PWNED: the link is replaced by a real dir, the outside dir keeps its mode.',
  layer: tar(symlink('d', `${OUTSIDE}/canary-dir`), dir('d/', { mode: 0o700, uid: 1000, gid: 1000 }), file('d/PWNED', PWNED)),
  expect: applied({ d: D(0o700, 1000, 1000), 'd/PWNED': F(PWNED) }),
});
add({
  name: 'symlink-replaces-dir',
  description: 'A directory with a child, then a symlink with the same name to ../canary-dir, then a file below it.',
  layer: tar(dir('d/'), file('d/f', 'f'), symlink('d', '../canary-dir'), file('d/PWNED', PWNED)),
  expect: applied({ d: L('../canary-dir'), 'canary-dir': D(), 'canary-dir/PWNED': F(PWNED) }),
});
add({
  name: 'symlink-into-home',
  description: "h -> <home> (a dir in the test user's home), then h/canary-file, h/canary-dir/ (0777) and h/canary-dir/keep.",
  layer: tar(symlink('h', HOME), file('h/canary-file', PWNED), dir('h/canary-dir/', { mode: 0o777 }), file('h/canary-dir/keep', PWNED)),
  expect: applied({
    h: L(HOME),
    ...ancestors(rel(HOME), true),
    [`${rel(HOME)}/canary-file`]: F(PWNED),
    [`${rel(HOME)}/canary-dir`]: D(0o777),
    [`${rel(HOME)}/canary-dir/keep`]: F(PWNED),
  }),
});
add({
  name: 'symlink-empty-target',
  description: 'A symlink with an empty target (symlink(2) refuses it): a clear, stable error.',
  layer: tar(symlink('empty', '')),
  expect: refused(INVALID, 'empty', 'symlink(2) cannot create it; not a path escape, but no valid reading exists'),
});
add({
  name: 'symlink-target-with-nul',
  description: 'PAX linkpath "a\\0/../../canary-file": NUL inside a link target.',
  layer: tar(pax([['linkpath', Buffer.from('a\0/../../canary-file')]]), symlink('l', 'a')),
  expect: refused(UNSAFE, 'NUL'),
});

// ======================================================================= hardlinks
add({
  name: 'hardlink-absolute-host',
  description: 'A hardlink to /etc/passwd: the target resolves in the root, where it does not exist.',
  models: 'moby/containerd hardlink breakout class',
  layer: tar(hardlink('h', '/etc/passwd')),
  expect: refused(UNSAFE, 'does not exist in the layer root'),
});
add({
  name: 'hardlink-absolute-outside',
  description: 'Hardlink to the absolute outside canary file.',
  layer: tar(hardlink('h', `${OUTSIDE}/canary-file`)),
  expect: refused(UNSAFE, 'does not exist in the layer root'),
});
add({
  name: 'hardlink-dotdot',
  description: 'Hardlink to ../canary-file.',
  layer: tar(hardlink('h', '../canary-file')),
  expect: refused(UNSAFE, "'\\.\\.' component"),
});
add({
  name: 'hardlink-not-yet-extracted',
  description: 'Hardlink to "later", which only appears after it in the archive.',
  layer: tar(hardlink('h', 'later'), file('later', 'l')),
  expect: refused(UNSAFE, 'does not exist in the layer root'),
});
add({
  name: 'hardlink-through-symlinked-dir',
  description: 's -> <outside>/canary-dir, then a hardlink to s/keep (the outside keep file).',
  models: 'kaniko #360 / moby hardlink-through-symlink class',
  layer: tar(symlink('s', `${OUTSIDE}/canary-dir`), hardlink('h', 's/keep')),
  expect: refused(UNSAFE, 'does not exist in the layer root'),
});
add({
  name: 'hardlink-through-relative-symlinked-dir',
  description: 't -> ../canary-dir (sibling of the root), then a hardlink to t/keep.',
  layer: tar(symlink('t', '../canary-dir'), hardlink('h', 't/keep')),
  expect: refused(UNSAFE, 'does not exist in the layer root'),
});
add({
  name: 'hardlink-through-symlink-inside',
  description: 'Legitimate: real/f, s -> real, hardlinks h -> s/f and h2 -> h (chain): all one inode inside the root.',
  layer: tar(dir('real/'), file('real/f', 'shared', { mode: 0o640 }), symlink('s', 'real'), hardlink('h', 's/f'), hardlink('h2', 'h')),
  expect: applied({
    h: F('shared', 0o640) + hl(3, 'h'),
    h2: F('shared', 0o640) + hl(3, 'h'),
    real: D(),
    'real/f': F('shared', 0o640) + hl(3, 'h'),
    s: L('real'),
  }),
});
add({
  name: 'hardlink-over-symlink',
  description: 'victim -> <outside>/canary-file, then victim as a hardlink to an in-layer file: the link is replaced, the canary untouched.',
  models: 'kaniko #360 (hardlink unpacked over an existing symlink)',
  layer: tar(file('real', 'real'), symlink('victim', `${OUTSIDE}/canary-file`), hardlink('victim', 'real')),
  expect: applied({ real: F('real') + hl(2, 'real'), victim: F('real') + hl(2, 'real') }),
});
add({
  name: 'hardlink-to-outside-symlink',
  description: 's -> <outside>/canary-file, h hardlinked to s: h is the symlink inode itself (link(2) does not follow symlinks).',
  layer: tar(symlink('s', `${OUTSIDE}/canary-file`), hardlink('h', 's')),
  expect: applied({ h: L(`${OUTSIDE}/canary-file`) + hl(2, 'h'), s: L(`${OUTSIDE}/canary-file`) + hl(2, 'h') }),
});
add({
  name: 'hardlink-to-directory',
  description: 'A hardlink to a directory.',
  layer: tar(dir('d/'), hardlink('h', 'd')),
  expect: refused(UNSAFE, 'hardlink to a directory'),
});
add({
  name: 'hardlink-replaces-its-own-parent',
  description: 'd/f, then d itself as a hardlink to d/f: replacing d would delete the link source.',
  layer: tar(dir('d/'), file('d/f', 'f'), hardlink('d', 'd/f')),
  expect: refused(INVALID, 'below', 'replacing d removes the link source first; containerd fails the same way (with a bare ENOENT)'),
});
add({
  name: 'hardlink-gnu-longlink-escape',
  description: 'GNU K record (long link target) "<150 chars>/../../../../canary-file" for a hardlink.',
  layer: tar(gnuLong(TYPE.longlink, `${'x'.repeat(150)}/../../../../canary-file`), hardlink('h', 'placeholder', { magic: 'gnu' })),
  expect: refused(UNSAFE, "'\\.\\.' component"),
});

// ======================================================================== whiteouts
add({
  name: 'whiteout-through-symlink',
  description: 'c -> <outside>/canary-dir then c/.wh.keep; r -> .. then r/.wh.canary-file; q -> <home> then q/.wh.canary-file.',
  models: 'umoci/moby whiteout through a symlinked parent (RemoveAll on a host path)',
  layer: tar(
    symlink('c', `${OUTSIDE}/canary-dir`),
    file('c/.wh.keep'),
    symlink('r', '..'),
    file('r/.wh.canary-file'),
    symlink('q', HOME),
    file('q/.wh.canary-file'),
  ),
  expect: applied({ c: L(`${OUTSIDE}/canary-dir`), q: L(HOME), r: L('..') }),
});
add({
  name: 'whiteout-dotdot-through-symlink',
  description: 's -> ../canary-dir, then s/.wh... (whites out "..").',
  layer: tar(symlink('s', '../canary-dir'), file('s/.wh...')),
  expect: refused(UNSAFE, 'whiteout names no valid entry'),
});
add({
  name: 'whiteout-dot-through-symlink',
  description: 's -> <outside>/canary-dir, then s/.wh.. (whites out ".", i.e. the dir itself).',
  layer: tar(symlink('s', `${OUTSIDE}/canary-dir`), file('s/.wh..')),
  expect: refused(UNSAFE, 'whiteout names no valid entry'),
});
add({
  name: 'whiteout-empty-name',
  description: 's -> .., then s/.wh. (whites out "").',
  layer: tar(symlink('s', '..'), file('s/.wh.')),
  expect: refused(UNSAFE, 'whiteout names no valid entry'),
});
add({
  name: 'whiteout-removes-symlink-not-target',
  description: 'A lower layer has l -> <outside>/canary-file and dl -> ../canary-dir; this layer whites out both: only the links go.',
  base: tar(symlink('l', `${OUTSIDE}/canary-file`), symlink('dl', '../canary-dir'), file('stay', 's')),
  layer: tar(file('.wh.l'), file('.wh.dl')),
  expect: applied({ stay: F('s') }),
});
add({
  name: 'opaque-in-symlinked-dir',
  description: 's -> <outside>/canary-dir and t -> <home>, then s/.wh..wh..opq and t/.wh..wh..opq.',
  models: 'opaque whiteout through a symlinked directory',
  layer: tar(symlink('s', `${OUTSIDE}/canary-dir`), file('s/.wh..wh..opq'), symlink('t', HOME), file('t/.wh..wh..opq')),
  expect: applied({ s: L(`${OUTSIDE}/canary-dir`), t: L(HOME) }),
});
add({
  name: 'opaque-through-dotdot-symlink',
  description:
    'Lower layer has lower/old; this layer adds new, up -> .. and up/.wh..wh..opq: the marker resolves (scoped) to the root ' +
    'itself, so the root becomes opaque (what containerd does); nothing outside is touched.',
  base: tar(dir('lower/'), file('lower/old', 'old')),
  layer: tar(file('new', 'new'), symlink('up', '..'), file('up/.wh..wh..opq')),
  expect: applied({ new: F('new'), up: L('..') }),
});
add({
  name: 'opaque-keeps-implicit-dirs',
  description:
    'Lower layer has opq/old and opq/sub/old2; this layer writes opq/sub/new without directory entries, then opq/.wh..wh..opq: ' +
    'the new file (and the dir holding it) must survive, the lower entries must go.',
  base: tar(dir('opq/'), file('opq/old', 'o'), dir('opq/sub/'), file('opq/sub/old2', 'o2')),
  layer: tar(file('opq/sub/new', 'n'), file('opq/.wh..wh..opq')),
  expect: applied({ opq: D(), 'opq/sub': D(), 'opq/sub/new': F('n') }),
});

// =========================================================== replacement semantics (OCI)
add({
  name: 'file-replaces-dir',
  description: 'x/ with children, then x as a regular file: the directory (and children) are replaced.',
  base: tar(dir('x/'), dir('x/sub/'), file('x/sub/child', 'c')),
  layer: tar(file('x', 'now a file', { mode: 0o600 })),
  expect: applied({ x: F('now a file', 0o600) }),
});
add({
  name: 'dir-replaces-file',
  description: 'y as a regular file, then y/ as a directory with a child.',
  base: tar(file('y', 'file')),
  layer: tar(dir('y/', { mode: 0o750 }), file('y/child', 'c')),
  expect: applied({ y: D(0o750), 'y/child': F('c') }),
});
add({
  name: 'duplicate-entries-later-wins',
  description: 'The same names several times in one layer (file/file, symlink/symlink, dir/dir, file/dir/file): the last one wins.',
  layer: tar(
    file('f', 'first', { mode: 0o600 }),
    file('f', 'second', { mode: 0o644 }),
    symlink('l', 'a'),
    symlink('l', 'b'),
    dir('d/', { mode: 0o700 }),
    dir('d/', { mode: 0o755 }),
    file('m', 'm1'),
    dir('m/'),
    file('m/inner', 'i'),
    file('m', 'm3', { mode: 0o640 }),
  ),
  expect: applied({ d: D(), f: F('second'), l: L('b'), m: F('m3', 0o640) }),
});
add({
  name: 'v7-dir-trailing-slash',
  description: 'Old-style (V7, typeflag NUL) regular file header whose name ends in "/": a directory.',
  layer: tar(member({ name: 'olddir/', type: TYPE.v7file, mode: 0o755, magic: 'v7' }), member({ name: 'olddir/f', type: TYPE.v7file, magic: 'v7' }, 'v7')),
  expect: applied({ olddir: D(), 'olddir/f': F('v7') }),
});

// ==================================================================== special files
add({
  name: 'device-nodes-skipped',
  description: 'Character (dev/null 1:3, dev/kmsg 1:11) and block (dev/sda 8:0) devices: skipped with a warning rootless.',
  layer: tar(dir('dev/'), chardev('dev/null', 1, 3), blockdev('dev/sda', 8, 0), chardev('dev/kmsg', 1, 11), file('dev/keep', 'k')),
  expect: applied({ dev: D(), 'dev/keep': F('k') }, ['dev/null: CharacterDevice skipped', 'dev/sda: BlockDevice skipped', 'dev/kmsg: CharacterDevice skipped']),
});
add({
  name: 'device-replaces-file',
  description: 'A lower layer has dev/console as a file; this layer makes it a char device: the file must not survive (the device is skipped).',
  base: tar(dir('dev/'), file('dev/console', 'stale')),
  layer: tar(chardev('dev/console', 5, 1)),
  expect: applied({ dev: D() }, ['dev/console: CharacterDevice skipped']),
});
add({
  name: 'device-through-symlink',
  description: 'dev -> <outside>/canary-dir, then a char device dev/keep: skipped, and the outside keep not removed.',
  layer: tar(symlink('dev', `${OUTSIDE}/canary-dir`), chardev('dev/keep', 1, 3)),
  expect: applied({ dev: L(`${OUTSIDE}/canary-dir`), ...ancestors(`${rel(OUTSIDE)}/canary-dir`, true) }, ['dev/keep: CharacterDevice skipped']),
});
add({
  name: 'fifo',
  description: 'A FIFO (mode 0620) and a FIFO replacing a lower file; nothing may open it (that would hang).',
  base: tar(file('was-file', 'x')),
  layer: tar(dir('run/'), fifo('run/pipe', { mode: 0o620, uid: 7, gid: 8 }), fifo('was-file', { mode: 0o600 })),
  expect: applied({ run: D(), 'run/pipe': P(0o620, 7, 8), 'was-file': P(0o600) }),
});
const CAP_V2 = Buffer.from('0100000200200000000000000000000000000000', 'hex'); // VFS_CAP_REVISION_2|EFFECTIVE, permitted = CAP_NET_RAW (13)
add({
  name: 'setuid-and-capability',
  description:
    'A setuid-root file, a setgid dir, a sticky /tmp, and a file with a security.capability xattr (PAX SCHILY.xattr, cap_net_raw+ep): all kept.',
  layer: tar(
    dir('bin/'),
    file('bin/su', '#!su\n', { mode: 0o4755 }),
    pax([['SCHILY.xattr.security.capability', CAP_V2]]),
    file('bin/ping', '#!ping\n', { mode: 0o755 }),
    dir('shared/', { mode: 0o2775, gid: 50 }),
    dir('tmp/', { mode: 0o1777 }),
    file('bin/setgid', 'g', { mode: 0o2755, gid: 42 }),
  ),
  expect: applied({
    bin: D(),
    'bin/ping': F('#!ping\n', 0o755) + xa('security.capability', CAP_V2),
    'bin/setgid': F('g', 0o2755, 0, 42),
    'bin/su': F('#!su\n', 0o4755),
    shared: D(0o2775, 0, 50),
    tmp: D(0o1777),
  }),
});
add({
  name: 'overlay-private-xattrs',
  description:
    'PAX xattrs user.overlay.opaque / user.overlay.redirect / trusted.overlay.opaque on entries: overlayfs bookkeeping must ' +
    'not be planted by a layer (it would change what a later overlay mount shows); ordinary user.* xattrs are kept.',
  layer: tar(
    pax([['SCHILY.xattr.user.overlay.opaque', 'y'], ['SCHILY.xattr.trusted.overlay.opaque', 'y'], ['SCHILY.xattr.user.comment', 'kept']]),
    dir('d/'),
    pax([['SCHILY.xattr.user.overlay.redirect', '/etc']]),
    file('d/f', 'f'),
  ),
  expect: applied({ d: D() + xa('user.comment', 'kept'), 'd/f': F('f') }, ['user.overlay.opaque', 'trusted.overlay.opaque', 'user.overlay.redirect']),
});

// ================================================================== name/number encodings
const LONG = `${'long-directory-name-'.repeat(6)}/${'n'.repeat(200)}/${'f'.repeat(120)}.txt`;
add({
  name: 'pax-long-path',
  description: `A ${LONG.length}-byte path via PAX "path" (header name truncated garbage).`,
  layer: tar(pax([['path', LONG]]), file('truncated-header-name', 'long')),
  expect: applied({ ...ancestors(LONG), [LONG]: F('long') }),
});
add({
  name: 'pax-uid-gid-and-base256',
  description: 'PAX uid=4242/gid=4343 override the header (0:0); a header uid/gid in GNU base-256 (1234:5678); octal 65535.',
  layer: tar(
    pax([['uid', '4242'], ['gid', '4343']]),
    file('pax-owned', 'p'),
    file('b256-owned', 'b', { uid: base256(1234, 8), gid: base256(5678, 8) }),
    file('max-owned', 'm', { uid: 65535, gid: 65535 }),
  ),
  expect: applied({ 'b256-owned': F('b', 0o644, 1234, 5678), 'max-owned': F('m', 0o644, 65535, 65535), 'pax-owned': F('p', 0o644, 4242, 4343) }),
});
add({
  name: 'pax-huge-uid',
  description: 'PAX uid=3000000000: not mapped in the user namespace; a clear unsupported-layer error, not a raw EINVAL (and never silently root-owned).',
  layer: tar(pax([['uid', '3000000000'], ['gid', '3000000000']]), file('big', 'b', { mode: 0o4755 })),
  expect: refused(UNSUPPORTED, 'not mapped', 'a valid layer this user namespace cannot represent; applying it root-owned would hand a setuid file to root'),
});
add({
  name: 'pax-negative-uid',
  description: 'PAX uid=-1 (chown(-1) would mean "leave unchanged"): malformed.',
  layer: tar(pax([['uid', '-1']]), file('neg', 'n')),
  expect: refused(INVALID, 'uid', WHY_INVALID),
});
add({
  name: 'pax-invalid-size',
  description: 'PAX size="12abc": Go archive/tar rejects it; a lenient parser would misframe the stream.',
  layer: tar(pax([['size', '12abc']]), file('f', 'data')),
  expect: refused(INVALID, 'size', WHY_INVALID),
});
add({
  name: 'name-with-newline',
  description: 'A newline in a ustar name and in a PAX path: legal on Linux, applied verbatim.',
  layer: tar(file('evil\nname', 'n1'), pax([['path', 'dir\nx/f\n']]), file('placeholder', 'n2')),
  expect: applied({ 'dir\nx': D(), 'dir\nx/f\n': F('n2'), 'evil\nname': F('n1') }),
});
add({
  name: 'name-with-nul-pax',
  description: 'PAX path "ok\\0/../../canary-file": a NUL inside a PAX path value.',
  layer: tar(pax([['path', Buffer.from('ok\0/../../canary-file')]]), file('placeholder', PWNED)),
  expect: refused(UNSAFE, 'NUL'),
});
add({
  name: 'name-with-nul-ustar',
  description: 'ustar name bytes "ok\\0../../canary-file": the NUL terminates the field, the name is "ok" (as in every tar reader).',
  layer: tar(member({ name: Buffer.from('ok\0../../canary-file'), type: TYPE.file }, 'ok')),
  expect: applied({ ok: F('ok') }),
});
const LONGTARGET = `${'t'.repeat(150)}/${'u'.repeat(150)}`;
const LONGNAME = `gnu/${'g'.repeat(180)}`;
add({
  name: 'gnu-longlink-and-longname',
  description: 'GNU L (180+ byte name) and K (300-byte symlink target) records.',
  layer: tar(dir('gnu/'), gnuLong(TYPE.longname, LONGNAME), gnuLong(TYPE.longlink, LONGTARGET), symlink('short', 'short-target', { magic: 'gnu' })),
  expect: applied({ gnu: D(), [LONGNAME]: L(LONGTARGET) }),
});

// ============================================== parser differentials (entry smuggling)
const SMUGGLED = tar(file('smuggled', 'hidden content'));
add({
  name: 'double-pax-header-smuggle',
  description:
    'Two PAX headers in a row (size=0, then path=innocent) before a file whose data is itself a tar member "smuggled": Go ' +
    '(containerd/moby) uses only the last PAX header, so the file gets all the data and there is no "smuggled" entry.',
  models: 'tar parser-differential smuggling (different tools see different files)',
  layer: tar(pax([['size', '0']]), pax([['path', 'innocent']]), file('placeholder', SMUGGLED)),
  expect: applied({ innocent: F(SMUGGLED) }),
});
add({
  name: 'global-pax-header-ignored',
  description:
    'A global PAX header with size=0 and path=../canary-file before ordinary members: like Go/containerd/moby, global ' +
    'headers do not retarget or resize the following entries.',
  models: 'tar parser-differential smuggling',
  layer: tar(gpax([['size', '0'], ['path', '../canary-file']]), file('a', SMUGGLED), file('b', 'b')),
  expect: applied({ a: F(SMUGGLED), b: F('b') }),
});
add({
  name: 'header-only-type-with-size',
  description:
    'A FIFO and a symlink whose headers claim a size, followed by members: like Go archive/tar, header-only types carry ' +
    'no data, so what follows are real entries.',
  models: 'tar parser-differential smuggling',
  layer: Buffer.concat([
    header({ name: 'p', type: TYPE.fifo, size: SMUGGLED.length - 1024, mode: 0o600 }),
    SMUGGLED.subarray(0, SMUGGLED.length - 1024),
    header({ name: 'sl', type: TYPE.symlink, linkname: 'x', size: 512, mode: 0o777 }),
    file('after', 'a'),
    END,
  ]),
  expect: applied({ after: F('a'), p: P(0o600), sl: L('x'), smuggled: F('hidden content') }),
});
add({
  name: 'negative-size-base256',
  description: 'A file whose base-256 size is -512, followed by a member "smuggled": Go rejects negative sizes.',
  models: 'tar parser-differential smuggling',
  layer: tar(file('neg', '', { size: base256(-512, 12) }), file('smuggled', 'x')),
  expect: refused(INVALID, 'size', WHY_INVALID),
});
add({
  name: 'base256-size-overflow',
  description: 'A base-256 size of 2^62: beyond any real layer (and beyond exact JS numbers); a clear error.',
  layer: Buffer.concat([header({ name: 'huge', type: TYPE.file, size: base256(2n ** 62n, 12) }), Buffer.alloc(1024)]),
  expect: refused(INVALID, undefined, WHY_INVALID),
});
add({
  name: 'octal-size-garbage',
  description: 'Size field "0000000001x\\0": not octal.',
  layer: tar(file('g', 'd', { size: Buffer.from('0000000001x\0') })),
  expect: refused(INVALID, 'size', WHY_INVALID),
});
add({
  name: 'bad-checksum',
  description: 'A header whose checksum does not match.',
  layer: tar(member({ name: 'f', type: TYPE.file, checksum: 12345 }, 'x')),
  expect: refused(INVALID, 'checksum', WHY_INVALID),
});

// ============================================================= bounded resource use
add({
  name: 'huge-size-truncated',
  description: 'A file header claiming 8 GiB-1 followed by 4 KiB and end of stream: a prompt "truncated" error, not a hang.',
  layer: Buffer.concat([header({ name: 'huge', type: TYPE.file, size: 0o77777777777 }), Buffer.alloc(4096, 0x41)]),
  expect: refused(INVALID, 'truncated', WHY_INVALID),
});
add({
  name: 'gzip-huge-size-truncated',
  description: 'gzip stream (~16 KiB) of a header claiming 1 GiB plus 16 MiB of zeros, then EOF: bounded work, clear error.',
  layer: Buffer.concat([header({ name: 'bomb', type: TYPE.file, size: 1024 * 1024 * 1024 }), Buffer.alloc(16 * 1024 * 1024)]),
  gzip: true,
  expect: refused(INVALID, 'truncated', WHY_INVALID),
});
add({
  name: 'gzip-truncated-stream',
  description: 'A valid gzip layer cut in the middle of the deflate stream.',
  layer: tar(file('a', 'x'.repeat(10000)), file('b', 'y'.repeat(10000))),
  gzip: 'truncate',
  expect: refused(INVALID, undefined, WHY_INVALID),
});
add({
  name: 'pax-header-huge',
  description: 'A PAX header claiming 1 GiB of records (no data): refused before buffering anything.',
  layer: Buffer.concat([header({ name: 'PaxHeaders/x', type: TYPE.pax, size: 1024 * 1024 * 1024 }), Buffer.alloc(512)]),
  expect: refused(INVALID, 'extended header too large', WHY_INVALID),
});
add({
  name: 'pax-record-length-lies',
  description: 'A PAX record whose length prefix (999999) exceeds the header body.',
  layer: tar(member({ name: 'PaxHeaders/x', type: TYPE.pax }, '999999 path=x\n'), file('f', 'f')),
  expect: refused(INVALID, 'PAX', WHY_INVALID),
});

// ---------------------------------------------------------------------------- write out
mkdirSync(outDir, { recursive: true });
const names = new Set();
const index = [];
for (const c of cases) {
  if (names.has(c.name) || !/^[a-z0-9-]+$/.test(c.name)) throw new Error(`bad or duplicate case name ${c.name}`);
  names.add(c.name);
  let bytes = c.layer;
  let layer = `${c.name}.tar`;
  if (c.gzip) {
    bytes = gzipSync(bytes);
    if (c.gzip === 'truncate') bytes = bytes.subarray(0, Math.floor(bytes.length / 2));
    layer = `${c.name}.tar.gz`;
  }
  writeFileSync(join(outDir, layer), bytes);
  const rec = { name: c.name, description: c.description, ...(c.models ? { models: c.models } : {}), layer };
  if (c.base) {
    rec.base = `${c.name}.base.tar`;
    writeFileSync(join(outDir, rec.base), c.base);
  }
  rec.expect = c.expect;
  index.push(rec);
}
writeFileSync(join(outDir, 'cases.json'), `${JSON.stringify({ version: 1, outside: OUTSIDE, home: HOME, cases: index }, null, 2)}\n`);
process.stdout.write(`${index.length} cases written to ${outDir}\n`);
