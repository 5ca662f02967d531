/**
 * Issue 4, item 7b: over random filesystem mutations, applying diff(A→B) onto A gives exactly B,
 * for both backends, as real root and rootless (user namespace, `userxattr` overlay).
 * Property logic lives in property-core.ts. Deterministic by default (fixed seed);
 * env: STOWAGE_PROPERTY_RUNS (runs per backend and mode), STOWAGE_PROPERTY_SEED,
 * STOWAGE_PROPERTY_PATH (replay a shrunk counterexample printed by fast-check).
 */
import { spawnSync } from 'node:child_process';
import { buildSync } from 'esbuild';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SnapshotterBackend } from '../src/index.js';
import { runProperty, type PropertyKind, type PropertyResult } from './property-core.js';
import type { RootlessPlan } from './property-rootless-script.js';

const here = dirname(fileURLToPath(import.meta.url));
const SEED = Number(process.env.STOWAGE_PROPERTY_SEED ?? 0x5707a9e);
const PATH = process.env.STOWAGE_PROPERTY_PATH;
const RUNS = Number(process.env.STOWAGE_PROPERTY_RUNS ?? 80);
/** Rootless runs cost the same per iteration; the default keeps the file well under a minute. */
const ROOTLESS_RUNS = Number(process.env.STOWAGE_PROPERTY_RUNS ?? 50);
const DET_RUNS = Math.max(1, Math.round(RUNS / 4));
const isRoot = process.getuid?.() === 0;
const USER = 'stowage-ci';

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

function lookupUser(name: string): { uid: number; gid: number } | undefined {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) return undefined;
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

const user = lookupUser(USER);
if (!user) console.warn(`rootless property test SKIPPED: user ${USER} does not exist`);

(user && isRoot ? test : test.skip)(
  'rootless (userns, userxattr overlay): apply(diff(A→B)) onto A == B on both backends',
  () => {
    if (!user) return;
    const work = mkdtempSync(join(tmpdir(), 'stowage-prop-rootless-'));
    try {
      chownSync(work, user.uid, user.gid);
      chmodSync(work, 0o755);
      const script = join(work, 'property-rootless-script.mjs');
      buildSync({
        entryPoints: [join(here, 'property-rootless-script.js')],
        outfile: script,
        bundle: true,
        platform: 'node',
        format: 'esm',
        logLevel: 'error',
        banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
      });
      const plan: RootlessPlan = {
        seed: SEED,
        ...(PATH !== undefined ? { path: PATH } : {}),
        runs: [
          { kind: 'roundtrip', backend: 'overlay', numRuns: ROOTLESS_RUNS },
          { kind: 'roundtrip', backend: 'native', numRuns: ROOTLESS_RUNS },
        ],
      };
      const r = spawnSync(
        'runuser',
        ['-u', USER, '--', 'unshare', '--user', '--mount', '--map-root-user', '--map-auto', '--', process.execPath, script, work, JSON.stringify(plan)],
        { encoding: 'utf8', timeout: 590_000, maxBuffer: 1 << 26 },
      );
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
