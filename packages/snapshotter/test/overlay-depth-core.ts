/**
 * A deep snapshot chain (for overlay's lowerdir limit), shared by overlay-depth.test.ts
 * (in-process, as root) and overlay-depth-script.ts (bundled, rootless in a user namespace).
 * Returns a report of mismatches rather than throwing, so both callers can show them.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Snapshotter } from '../src/index.js';
import { describeTree, listLayer } from './fixtures.js';

export interface DeepReport {
  backend: string;
  depth: number;
  flats: number;
  problems: string[];
  mvDir: string;
  mvEntries: string[];
  stepEntries: string[];
  ms: number;
}

/** The expected tree after step i (see mutate()). */
function model(i: number): Record<string, string> {
  const t: Record<string, string> = { a: 'dir 755 0:0' };
  for (let j = 0; j <= i; j++) {
    // step j adds a/n<j>; odd steps delete a/n<j-1>
    if (j % 2 === 1) delete t[`a/n${j - 1}`];
    t[`a/n${j}`] = `file 644 0:0 ${j}`;
    // every 10th step adds a dir; every other one is deleted (whole) 5 steps later
    if (j % 10 === 0) {
      t[`d${j}`] = 'dir 755 0:0';
      t[`d${j}/x`] = `file 644 0:0 x${j}`;
    }
    if (j % 20 === 5) {
      delete t[`d${j - 5}`];
      delete t[`d${j - 5}/x`];
    }
  }
  return Object.fromEntries(Object.entries(t).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function mutate(root: string, i: number): void {
  if (i === 0) mkdirSync(join(root, 'a'), { mode: 0o755 });
  if (i % 2 === 1) rmSync(join(root, `a/n${i - 1}`));
  writeFileSync(join(root, `a/n${i}`), String(i), { mode: 0o644 });
  if (i % 10 === 0) {
    mkdirSync(join(root, `d${i}`), { mode: 0o755 });
    writeFileSync(join(root, `d${i}/x`), `x${i}`, { mode: 0o644 });
  }
  if (i % 20 === 5) rmSync(join(root, `d${i - 5}`), { recursive: true });
}

const diffTree = (what: string, got: Record<string, string>, want: Record<string, string>, problems: string[]): void => {
  const keys = new Set([...Object.keys(got), ...Object.keys(want)]);
  const bad = [...keys].filter((k) => got[k] !== want[k]).slice(0, 5);
  for (const k of bad) problems.push(`${what}: ${k}: got ${got[k] ?? '(none)'}, want ${want[k] ?? '(none)'}`);
};

export async function runDeepChain(work: string, depth: number): Promise<DeepReport> {
  const t0 = Date.now();
  process.umask(0o022);
  const root = join(work, 'snaps');
  const snap = await Snapshotter.open(root, { backend: 'overlay' });
  const problems: string[] = [];
  let mvEntries: string[] = [];
  let stepEntries: string[] = [];
  let mvDir = '';
  try {
    let parent: string | undefined;
    for (let i = 0; i < depth; i++) {
      const key = `k${i}`;
      const p = await snap.prepare(key, parent);
      mutate(p, i);
      const layer = join(work, 'l.tgz');
      const d = await snap.diff(key, layer);
      const names = (await listLayer(layer)).map((e) => e.path);
      const want = [`a/n${i}`, ...(i % 2 === 1 ? [`a/.wh.n${i - 1}`] : []), ...(i % 20 === 5 ? [`.wh.d${i - 5}`] : []), ...(i % 10 === 0 ? [`d${i}/x`] : [])];
      for (const w of want) if (!names.includes(w)) problems.push(`step ${i}: layer lacks ${w} (has ${names.join(' ')})`);
      if (d.empty) problems.push(`step ${i}: empty diff`);
      await snap.commit(`c${i}`, key);
      parent = `c${i}`;
    }
    // view() of the top, of a middle snapshot (above one flatten point), and of one below any.
    for (const i of [depth - 1, Math.floor(depth * 0.7), 20]) {
      const v = await snap.view(`c${i}`);
      diffTree(`view c${i}`, describeTree(v), model(i), problems);
      await snap.release(v);
    }
    // A step on top of the deep chain: prepare sees the whole tree, diff only the step's change.
    const top = `c${depth - 1}`;
    const p = await snap.prepare('step', top);
    diffTree('prepare top', describeTree(p), model(depth - 1), problems);
    writeFileSync(join(p, 'a/step'), 'step');
    const l = join(work, 'step.tgz');
    await snap.diff('step', l);
    stepEntries = (await listLayer(l)).map((e) => e.path);
    await snap.release('step');

    // Renaming a lower directory: overlay (redirect_dir off / userxattr) refuses rename(2) with
    // EXDEV; mv falls back to copy + delete, and the diff shows a new dir plus a whiteout.
    const m = await snap.prepare('mv', top);
    const before = describeTree(m);
    mvDir = Object.keys(before).find((k) => /^d\d+$/.test(k)) ?? '(none)';
    const dirName = mvDir;
    if (!existsSync(join(m, dirName))) problems.push(`mv: ${dirName} missing before mv`);
    const r = spawnSync('sh', ['-c', `cd "$1" && mv ${dirName} renamed && mv a/n${depth - 1} a/moved`, 'sh', m], { encoding: 'utf8' });
    if (r.status !== 0) problems.push(`mv failed: ${r.stderr}`);
    const ml = join(work, 'mv.tgz');
    await snap.diff('mv', ml);
    mvEntries = (await listLayer(ml)).map((e) => e.path);
    await snap.commit('mv', 'mv');
    const want: Record<string, string> = {};
    for (const [k, v] of Object.entries(before)) {
      const k2 = k === dirName || k.startsWith(`${dirName}/`) ? `renamed${k.slice(dirName.length)}` : k === `a/n${depth - 1}` ? 'a/moved' : k;
      want[k2] = v;
    }
    const v = await snap.view('mv');
    diffTree('view after mv', describeTree(v), want, problems);
    await snap.release(v);
    return { backend: snap.backend, depth, flats: readdirSync(join(root, 'flat')).length, problems, mvDir, mvEntries, stepEntries, ms: Date.now() - t0 };
  } finally {
    await snap.close();
  }
}
