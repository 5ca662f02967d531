/**
 * Issue 4, item 7b: over random filesystem mutations, applying diff(A→B) onto A gives exactly B,
 * for both backends, as real root and rootless (user namespace, `userxattr` overlay).
 * Property logic lives in property-core.ts. Deterministic by default (fixed seed);
 * env: STOWAGE_PROPERTY_RUNS (runs per backend and mode), STOWAGE_PROPERTY_SEED,
 * STOWAGE_PROPERTY_PATH (replay a shrunk counterexample printed by fast-check).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SnapshotterBackend } from '../src/index.js';
import { runProperty, type PropertyKind, type PropertyResult } from './property-core.js';
import type { RootlessPlan } from './property-rootless-script.js';
import { ROOTLESS_USER as USER, bundleScript, lookupUser, makeUserWorkDir, runInUserNamespace } from './rootless-harness.js';

const SEED = Number(process.env.STOWAGE_PROPERTY_SEED ?? 0x5707a9e);
const PATH = process.env.STOWAGE_PROPERTY_PATH;
const RUNS = Number(process.env.STOWAGE_PROPERTY_RUNS ?? 80);
/** Rootless runs cost the same per iteration; the default keeps the file well under a minute. */
const ROOTLESS_RUNS = Number(process.env.STOWAGE_PROPERTY_RUNS ?? 50);
const DET_RUNS = Math.max(1, Math.round(RUNS / 4));
const isRoot = process.getuid?.() === 0;

function fail(r: PropertyResult): never {
  throw new Error(
    `property ${r.kind} failed (backend ${r.backend}${r.rootless ? ', rootless' : ''}, seed ${r.seed}; replay with STOWAGE_PROPERTY_SEED=${r.seed} ` +
      `and STOWAGE_PROPERTY_PATH from the report)\n${r.report ?? ''}`,
  );
}

function expectPassed(r: PropertyResult, numRuns: number): void {
  console.log(
    `property ${r.kind} ${r.backend}${r.rootless ? ' rootless' : ' root'}: ${r.stats.runs} runs (seed ${r.seed}), ` +
      `${r.stats.applied} effective mutations, ${r.stats.nonEmptyDiffs} non-empty diffs, ${r.stats.exdevFallbacks} EXDEV dir renames done as copy+delete`,
  );
  if (r.failed) fail(r);
  expect(r.stats.runs).toBeGreaterThanOrEqual(numRuns);
}

describe.each<SnapshotterBackend>(['overlay', 'native'])('diff/apply property (%s, real root)', (backend) => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), `stowage-prop-${backend}-`));
  });
  afterAll(() => {
    const mounted = readFileSync('/proc/self/mountinfo', 'utf8').includes(dir);
    expect(mounted).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });

  const run = async (kind: PropertyKind, numRuns: number): Promise<void> => {
    const scratch = join(dir, `scratch-${kind}`);
    mkdirSync(scratch);
    expectPassed(await runProperty(kind, join(dir, 'snaps'), scratch, backend, SEED, numRuns, PATH), numRuns);
  };

  (backend === 'overlay' && !isRoot ? test.skip : test)(
    'apply(diff(A→B)) onto A == B; unchanged snapshot diffs empty; diff twice is identical',
    () => run('roundtrip', RUNS),
    600_000,
  );
  (backend === 'overlay' && !isRoot ? test.skip : test)('same mutations on two snapshots → same digest', () => run('deterministic', DET_RUNS), 600_000);
});

const user = lookupUser(USER);
if (!user) console.warn(`rootless property test SKIPPED: user ${USER} does not exist`);

(user && isRoot ? test : test.skip)(
  'rootless (userns, userxattr overlay): apply(diff(A→B)) onto A == B on both backends',
  () => {
    if (!user) return;
    const work = makeUserWorkDir('stowage-prop-rootless-', user);
    try {
      const script = bundleScript('property-rootless-script.js', join(work, 'property-rootless-script.mjs'));
      const plan: RootlessPlan = {
        seed: SEED,
        ...(PATH !== undefined ? { path: PATH } : {}),
        runs: [
          { kind: 'roundtrip', backend: 'overlay', numRuns: ROOTLESS_RUNS },
          { kind: 'roundtrip', backend: 'native', numRuns: ROOTLESS_RUNS },
        ],
      };
      const r = runInUserNamespace(script, [work, JSON.stringify(plan)], { timeoutMs: 590_000, maxBuffer: 1 << 26 });
      if (r.status !== 0) throw new Error(`rootless property script failed (${r.status ?? r.signal}): ${r.stderr}`);
      const results = JSON.parse(r.stdout) as PropertyResult[];
      expect(results).toHaveLength(plan.runs.length);
      for (const res of results) {
        expect(res.rootless).toBe(true);
        expectPassed(res, ROOTLESS_RUNS);
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
  600_000,
);
