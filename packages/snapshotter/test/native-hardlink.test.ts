/**
 * Native diff and hardlinks: a name of a hardlinked file that the layer carries (moved, newly
 * linked) while another name of the inode stays put must be a Link to that name; as a File it
 * would split the inode when the layer is applied (found by the property test).
 */
import { createReadStream, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyLayer, Snapshotter } from '../src/index.js';
import { describeTree, listLayer } from './fixtures.js';

/** Hardlink groups: paths sharing an inode (files only), each sorted. */
function linkGroups(root: string): string[][] {
  const byIno = new Map<number, string[]>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, r));
      if (st.isDirectory()) walk(r);
      else if (st.isFile()) byIno.set(st.ino, [...(byIno.get(st.ino) ?? []), r]);
    }
  };
  walk('');
  return [...byIno.values()].filter((g) => g.length > 1).map((g) => g.sort()).sort((a, b) => ((a[0] ?? '') < (b[0] ?? '') ? -1 : 1));
}

const w = (p: string, rel: string, content = ''): void => {
  const parts = rel.split('/');
  if (parts.length > 1) mkdirSync(join(p, ...parts.slice(0, -1)), { recursive: true });
  writeFileSync(join(p, rel), content);
};
const ln = (p: string, from: string, to: string): void => {
  const parts = to.split('/');
  if (parts.length > 1) mkdirSync(join(p, ...parts.slice(0, -1)), { recursive: true });
  linkSync(join(p, from), join(p, to));
};
const mv = (p: string, from: string, to: string): void => {
  const parts = to.split('/');
  if (parts.length > 1) mkdirSync(join(p, ...parts.slice(0, -1)), { recursive: true });
  renameSync(join(p, from), join(p, to));
};

interface Case {
  name: string;
  base: (p: string) => void;
  mutate: (p: string) => void;
  /** Entries of the mutation layer that must be there: path → type (and link target). */
  expect: Record<string, string>;
  /** Same, when A was committed without a diff (B is a copy of it, ambiguous files are hashed against A). */
  expectCopied?: Record<string, string>;
  absentCopied?: string[];
}

const cases: Case[] = [
  {
    // The property test's counterexample: `a/a` stays, the other name moves with its directory.
    name: 'one name moves with its directory; the unchanged name comes first in the layer',
    base: (p) => {
      w(p, 'b/c/b');
      ln(p, 'b/c/b', 'a/a');
    },
    mutate: (p) => mv(p, 'b', 'a/b/a'),
    expect: { 'a/b/a/c/b': 'Link a/a', '.wh.b': 'File' },
  },
  {
    name: 'the unchanged name comes after the moved one (it is in the lower tree)',
    base: (p) => {
      w(p, 'd/f', 'content');
      ln(p, 'd/f', 'z/keep');
    },
    mutate: (p) => mv(p, 'd', 'a'),
    expect: { 'a/f': 'Link z/keep' },
  },
  {
    name: 'a moved file name (the inode ctime changes); a new name of an unchanged inode',
    base: (p) => {
      w(p, 'x', 'hello');
      ln(p, 'x', 'y');
      w(p, 'k', 'k');
    },
    mutate: (p) => {
      mv(p, 'y', 'sub/y');
      ln(p, 'k', 'sub/k2');
    },
    // Moved tree: x and k have a new ctime and no recorded hash, so they are carried too.
    expect: { k: 'File', 'sub/k2': 'Link k', 'sub/y': 'File', x: 'Link sub/y' },
    // Copied tree: x and k hash the same as in A: unchanged, only the new names are carried.
    expectCopied: { 'sub/k2': 'Link k', 'sub/y': 'Link x' },
    absentCopied: ['k', 'x'],
  },
  {
    name: 'content changed: every name is carried, the first as File, the others as Links to it',
    base: (p) => {
      w(p, 'm/x', 'hello');
      ln(p, 'm/x', 'q/y');
    },
    mutate: (p) => {
      appendFileSync(join(p, 'm/x'), '!');
      mv(p, 'q/y', 'b/y');
    },
    expect: { 'b/y': 'File', 'm/x': 'Link b/y' },
  },
];

describe('native diff: hardlinks with one name moved or added', () => {
  let dir: string;
  let snap: Snapshotter;
  beforeAll(async () => {
    process.umask(0o022);
    dir = mkdtempSync(join(tmpdir(), 'stowage-native-hl-'));
    snap = await Snapshotter.open(join(dir, 'snaps'), { backend: 'native' });
  });
  afterAll(async () => {
    await snap.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const runs = cases.flatMap((c, i) => (['moved', 'copied'] as const).map((mode) => [`${c.name} (${mode} tree)`, i, mode] as const));
  test.each(runs)('%s', async (_name, i, mode) => {
    const c = cases[i] as Case;
    const id = `${i}-${mode}`;
    const la = join(dir, `la${id}.tgz`);
    // moved: A committed after a diff, B takes over its tree (and manifest, with no hashes).
    // copied: A committed without a diff (like a pulled layer), B is a copy; LA from a twin tree.
    const pa = await snap.prepare(`a${id}`);
    c.base(pa);
    if (mode === 'moved') await snap.diff(`a${id}`, la);
    else {
      const twin = await snap.prepare(`twin${id}`);
      c.base(twin);
      await snap.diff(`twin${id}`, la);
      await snap.release(`twin${id}`);
    }
    await snap.commit(`A${id}`, `a${id}`);
    const pb = await snap.prepare(`b${id}`, `A${id}`);
    c.mutate(pb);
    const lb = join(dir, `lb${id}.tgz`);
    await snap.diff(`b${id}`, lb);
    const entries = await listLayer(lb);
    const got = Object.fromEntries(entries.map((e) => [e.path, e.type === 'Link' ? `Link ${e.linkpath}` : e.type]));
    expect(got).toMatchObject(mode === 'copied' ? (c.expectCopied ?? c.expect) : c.expect);
    if (mode === 'copied') for (const p of c.absentCopied ?? []) expect(Object.keys(got)).not.toContain(p);

    const fresh = join(dir, `fresh${id}`);
    mkdirSync(fresh);
    await applyLayer(fresh, createReadStream(la));
    await applyLayer(fresh, createReadStream(lb));
    expect(describeTree(fresh)).toEqual(describeTree(pb));
    expect(linkGroups(fresh)).toEqual(linkGroups(pb));
    expect(linkGroups(pb).length).toBeGreaterThan(0);
    await snap.release(`b${id}`);
  });
});
