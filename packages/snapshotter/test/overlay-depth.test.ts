import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDeepChain, type DeepReport } from './overlay-depth-core.js';
import { ROOTLESS_USER as USER, bundleScript, lookupUser, makeUserWorkDir, runInUserNamespace } from './rootless-harness.js';

const isRoot = process.getuid?.() === 0;

function check(r: DeepReport, depth: number): void {
  expect(r.backend).toBe('overlay');
  expect(r.problems).toEqual([]);
  // flatten points at depths 64, 128, … that the chain needed
  expect(r.flats).toBeGreaterThanOrEqual(Math.floor(depth / 64) - (depth % 64 === 0 ? 1 : 0));
  expect(r.flats).toBeGreaterThan(0);
  expect(r.stepEntries).toEqual(['a/', 'a/step']);
  const dir = r.mvDir;
  expect(dir).toMatch(/^d\d+$/);
  // The renamed dir arrives as a new dir with its contents, the old name as a whiteout.
  expect(r.mvEntries).toEqual(expect.arrayContaining([`.wh.${dir}`, 'renamed/', 'renamed/x', 'a/', 'a/moved', `a/.wh.n${depth - 1}`]));
}

(isRoot ? test : test.skip)(
  'overlay: a 150-deep chain flattens past the mount-option limit; prepare/view/diff/mv stay right (root)',
  async () => {
    const work = mkdtempSync(join(tmpdir(), 'stowage-deep-'));
    try {
      const r = await runDeepChain(work, 150);
      console.log(`overlay deep chain (root): depth ${r.depth}, ${r.flats} flattened trees, ${r.ms} ms`);
      check(r, 150);
    } finally {
      expect(readFileSync('/proc/self/mountinfo', 'utf8').includes(work)).toBe(false);
      rmSync(work, { recursive: true, force: true });
    }
  },
  180_000,
);

const user = lookupUser(USER);
(isRoot && user ? test : test.skip)(
  'overlay: a 100-deep chain flattens rootless (userns + userxattr)',
  () => {
    if (!user) return;
    const work = makeUserWorkDir('stowage-deep-rootless-', user);
    try {
      const script = bundleScript('overlay-depth-script.js', join(work, 'overlay-depth-script.mjs'));
      const r = runInUserNamespace(script, [work, '100'], { timeoutMs: 170_000 });
      if (r.status !== 0) throw new Error(`rootless deep-chain script failed (${r.status}): ${r.stderr}`);
      const out = JSON.parse(r.stdout) as DeepReport & { uidMap: string };
      expect(out.uidMap).not.toBe('0 0 4294967295');
      console.log(`overlay deep chain (rootless): depth ${out.depth}, ${out.flats} flattened trees, ${out.ms} ms`);
      check(out, 100);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
  180_000,
);
