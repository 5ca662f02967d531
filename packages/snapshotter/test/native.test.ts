import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Snapshotter } from '../src/index.js';
import { describeTree, listLayer } from './fixtures.js';

const here = dirname(fileURLToPath(import.meta.url));
const isRoot = process.getuid?.() === 0;
const FILES = 2000;

/** A base of FILES files in 40 dirs, committed without a diff (like a pulled image layer): immutable. */
async function makeBase(snap: Snapshotter, name: string): Promise<void> {
  const p = await snap.prepare(`${name}-key`);
  for (let d = 0; d < 40; d++) {
    mkdirSync(join(p, `d${d}`), { mode: 0o755 });
    for (let f = 0; f < FILES / 40; f++) writeFileSync(join(p, `d${d}/f${f}`), `content ${d}/${f}\n`, { mode: 0o644 });
  }
  await snap.commit(name, `${name}-key`);
}

const ino = (p: string): number => lstatSync(p).ino;

describe('native backend: one working tree per stage', () => {
  let dir: string;
  let root: string;
  let snap: Snapshotter;
  const trees: Record<string, string>[] = [];
  const layers: string[][] = [];
  const inodes: number[] = [];
  let work: string;

  beforeAll(async () => {
    process.umask(0o022);
    dir = mkdtempSync(join(tmpdir(), 'stowage-native-'));
    root = join(dir, 'snapshots');
    work = join(dir, 'work');
    mkdirSync(work);
    snap = await Snapshotter.open(root, { backend: 'native' });
    await makeBase(snap, 'sha256:base');
  }, 60_000);
  afterAll(async () => {
    await snap.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const steps: ((p: string) => void)[] = [
    // 1: add; chmod to the *same* mode (ctime only → hashed against the copied-from tree → unchanged)
    (p) => {
      writeFileSync(join(p, 'added'), 'added');
      chmodSync(join(p, 'd7/f7'), 0o644);
    },
    // 2: modify (size change) + delete
    (p) => {
      writeFileSync(join(p, 'd1/f1'), 'modified, longer');
      rmSync(join(p, 'd2/f2'));
    },
    // 3: chmod + chown
    (p) => {
      chmodSync(join(p, 'd3/f3'), 0o600);
      if (isRoot) chownSync(join(p, 'd4/f4'), 1234, 1234);
      else chmodSync(join(p, 'd4/f4'), 0o640);
    },
    // 4: touch only (mtime)
    (p) => {
      utimesSync(join(p, 'd5/f5'), new Date(1_500_000_000_000), new Date(1_500_000_000_000));
    },
    // 5: same-size rewrite with the mtime put back (only ctime tells) + delete a whole dir
    (p) => {
      const f = join(p, 'd6/f6');
      const st = lstatSync(f);
      writeFileSync(f, 'CONTENT 6/6\n');
      utimesSync(f, st.atime, st.mtime);
      rmSync(join(p, 'd9'), { recursive: true });
    },
  ];
  const expected: string[][] = [
    ['added'],
    ['d1/', 'd1/f1', 'd2/', 'd2/.wh.f2'],
    ['d3/', 'd3/f3', 'd4/', 'd4/f4'],
    ['d5/', 'd5/f5'],
    ['.wh.d9', 'd6/', 'd6/f6'],
  ];

  test(
    'a chain of 5 steps on a 2000-file base mutates one tree; diffs are exact',
    async () => {
      const untouched = 'd0/f0';
      const baseView = await snap.view('sha256:base');
      const baseIno = ino(join(baseView, untouched));
      await snap.release(baseView);
      let parent = 'sha256:base';
      for (let i = 0; i < steps.length; i++) {
        const key = `step${i + 1}`;
        const p = await snap.prepare(key, parent);
        inodes.push(ino(join(p, untouched)));
        steps[i]!(p);
        trees.push(describeTree(p));
        const layer = join(work, `${key}.tgz`);
        const d = await snap.diff(key, layer);
        expect(d.empty).toBe(false);
        layers.push((await listLayer(layer)).map((e) => e.path));
        expect(layers[i]).toEqual(expected[i]);
        await snap.commit(`sha256:s${i + 1}`, key);
        parent = `sha256:s${i + 1}`;
      }
      // Step 1 copied the immutable base once; steps 2..5 reused that very tree.
      expect(inodes[0]).not.toBe(baseIno);
      expect(new Set(inodes).size).toBe(1);
      // The shared base is untouched.
      const v = await snap.view('sha256:base');
      expect(ino(join(v, untouched))).toBe(baseIno);
      expect(describeTree(v)[untouched]).toBe('file 644 0:0 content 0/0\n');
      expect(Object.keys(describeTree(v))).toHaveLength(FILES + 40);
      await snap.release(v);
    },
    120_000,
  );

  test('layer contents: modified file, chown and touched mtime are carried', async () => {
    const e2 = await listLayer(join(work, 'step2.tgz'));
    expect(e2.find((e) => e.path === 'd1/f1')?.size).toBe('modified, longer'.length);
    const e3 = await listLayer(join(work, 'step3.tgz'));
    expect(e3.find((e) => e.path === 'd3/f3')?.mode).toBe(0o600);
    if (isRoot) expect(e3.find((e) => e.path === 'd4/f4')).toMatchObject({ uid: 1234, gid: 1234 });
    const e4 = await listLayer(join(work, 'step4.tgz'));
    expect(e4.find((e) => e.path === 'd5/f5')?.mtime?.getTime()).toBe(1_500_000_000_000);
  });

  test(
    'view() of intermediate steps after later steps moved on shows exactly their trees',
    async () => {
      for (const i of [1, 3, 5]) {
        const v = await snap.view(`sha256:s${i}`);
        expect(describeTree(v)).toEqual(trees[i - 1]);
        await snap.release(v);
      }
      // The top one was lent to the view and handed back: the next step still moves it.
      const p = await snap.prepare('after-view', 'sha256:s5');
      expect(ino(join(p, 'd0/f0'))).toBe(inodes[0]);
      const d = await snap.diff('after-view', join(work, 'after-view.tgz'));
      expect(d.empty).toBe(true);
      await snap.release('after-view'); // empty diff: the tree goes back to s5
      const q = await snap.prepare('after-release', 'sha256:s5');
      expect(ino(join(q, 'd0/f0'))).toBe(inodes[0]);
      // Held open so the dropped file's inode number cannot be handed to the rebuilt tree:
      // ext4 reuses a freed number at once, which would make the check below meaningless.
      const held = openSync(join(q, 'd0/f0'), 'r');
      await snap.release('after-release'); // no diff: the tree is dropped; s5 becomes a ghost
      const r = await snap.prepare('rebuilt', 'sha256:s5');
      expect(ino(join(r, 'd0/f0'))).not.toBe(inodes[0]);
      closeSync(held);
      expect(describeTree(r)).toEqual(trees[4]);
      // A rebuilt tree diffs clean against itself.
      expect((await snap.diff('rebuilt', join(work, 'rebuilt.tgz'))).empty).toBe(true);
      writeFileSync(join(r, 'd0/f0'), 'changed');
      const l = join(work, 'rebuilt2.tgz');
      await snap.diff('rebuilt', l);
      expect((await listLayer(l)).map((e) => e.path)).toEqual(['d0/', 'd0/f0']);
      await snap.commit('sha256:s6', 'rebuilt');
      // Branching off an intermediate (ghost) step rebuilds it.
      const b = await snap.prepare('branch', 'sha256:s2');
      expect(describeTree(b)).toEqual(trees[1]);
      expect((await snap.diff('branch', join(work, 'branch.tgz'))).empty).toBe(true);
      await snap.release('branch');
    },
    60_000,
  );

  test('a second build sharing the base chain is unaffected', async () => {
    const p = await snap.prepare('other-build', 'sha256:base');
    expect(existsSync(join(p, 'added'))).toBe(false);
    expect(describeTree(p)['d1/f1']).toBe('file 644 0:0 content 1/1\n');
    writeFileSync(join(p, 'd8/f8'), 'other');
    const l = join(work, 'other.tgz');
    await snap.diff('other-build', l);
    expect((await listLayer(l)).map((e) => e.path)).toEqual(['d8/', 'd8/f8']);
    await snap.commit('sha256:other1', 'other-build');
    const v = await snap.view('sha256:s3');
    expect(describeTree(v)).toEqual(trees[2]);
    await snap.release(v);
  });

  test('usage(): the base holds its tree, a moved-away step only its layer', async () => {
    const base = await snap.usage('sha256:base');
    expect(base.inodes).toBe(FILES + 40 + 1);
    expect(base.size).toBeGreaterThan(0);
    const ghost = await snap.usage('sha256:s1'); // its tree moved on to s2 for good
    expect(ghost.inodes).toBeLessThan(10);
    await expect(snap.usage('sha256:nope')).rejects.toMatchObject({ code: 'E_SNAPSHOT_NOT_FOUND' });
  });

  const child = join(here, 'native-crash-child.js');

  test(
    'crash right after moving the parent tree, and after a diff before commit: open() recovers',
    async () => {
      for (const [op, point] of [['prepare', 'prepare:after-move'], ['step', 'commit:before-publish']] as const) {
        const r = spawnSync(process.execPath, [child, root, op, 'sha256:s6', join(work, `crash-${op}.tgz`)], {
          encoding: 'utf8',
          env: { ...process.env, STOWAGE_CRASH_AT: point },
          timeout: 30_000,
        });
        expect(r.signal).toBe('SIGKILL');
        expect(r.stdout).toBe('opened\n');
        // s6's tree went with the crashed process.
        expect(existsSync(join(root, 'tmp')) && readdirSync(join(root, 'tmp')).length).toBeGreaterThan(0);
        const again = await Snapshotter.open(root, { backend: 'native' });
        expect(readdirSync(join(root, 'tmp'))).toEqual([]);
        expect(await again.exists('sha256:crashed')).toBe(false);
        const p = await again.prepare(`recover-${op}`, 'sha256:s6');
        expect(describeTree(p)['d0/f0']).toBe('file 644 0:0 changed');
        expect(existsSync(join(p, 'from-crashed-step'))).toBe(false);
        expect((await again.diff(`recover-${op}`, join(work, 'recover.tgz'))).empty).toBe(true);
        await again.release(`recover-${op}`); // hands the tree back to s6
        await again.close();
      }
      expect(readdirSync(join(root, 'active'))).toEqual([]);
    },
    60_000,
  );

  test(
    'SIGKILL mid-prepare (while copying the base): open() cleans up, the base is intact',
    async () => {
      const c = spawn(process.execPath, [child, root, 'prepare', 'sha256:base'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      await new Promise<void>((resolve) => {
        c.stdout.on('data', (b: Buffer) => {
          out += b.toString();
          if (out.includes('opened')) setTimeout(() => { c.kill('SIGKILL'); resolve(); }, 15);
        });
      });
      await new Promise((r) => c.on('exit', r));
      const again = await Snapshotter.open(root, { backend: 'native' });
      expect(readdirSync(join(root, 'tmp'))).toEqual([]);
      expect(readdirSync(join(root, 'active'))).toEqual([]);
      const v = await again.view('sha256:base');
      expect(Object.keys(describeTree(v))).toHaveLength(FILES + 40);
      await again.release(v);
      await again.close();
    },
    60_000,
  );
});
