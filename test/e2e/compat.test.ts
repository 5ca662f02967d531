// The compatibility corpus (test/compat/cases, test/compat/real-world), one test per case:
// each case is built by BuildKit (scripts/buildkit: Docker 26.1's embedded BuildKit, as
// root) and by stowage (as the test user) and the results must be identical, or differ only
// where case.json lists it (see test/compat/harness/README.md). The oracle is started here
// (scripts/buildkit start; scripts/test stops it at the end). Cases run two at a time in
// the background from the start; each test waits for its own case.
//
// STOWAGE_COMPAT_ONLY_FAST=1 leaves out the slow (real-world) cases;
// STOWAGE_COMPAT_JOBS=N sets how many cases build at once (default 2).
import { listCases } from '../lib/compat/corpus.js';
import { details, summaryLine } from '../lib/compat/report.js';
import { startCases, startOracle, type CaseResult } from '../lib/compat/runner.js';
import { repoRoot, testEnv } from '../lib/index.js';

const onlyFast = !!process.env.STOWAGE_COMPAT_ONLY_FAST;
const cases = listCases(repoRoot).filter((c) => !(onlyFast && c.spec.slow));
const CASE_TIMEOUT = 40 * 60_000;

let results: Map<string, Promise<CaseResult>> | undefined;
const finished: CaseResult[] = [];

beforeAll(async () => {
  testEnv();
  const oracle = await startOracle();
  console.log(`compat: BuildKit oracle ${oracle.version}, ready in ${oracle.seconds}s; ${cases.length} cases`);
  results = startCases(cases, { concurrency: Number(process.env.STOWAGE_COMPAT_JOBS || 2) });
}, 300_000);

afterAll(() => {
  if (finished.length) console.log(`compat: ${summaryLine(finished)}`);
});

describe('compat corpus: BuildKit vs stowage', () => {
  test('the corpus has cases', () => {
    expect(cases.length).toBeGreaterThan(0);
  });

  test.each(cases.map((c) => [`${c.group}/${c.name}`]))(
    '%s',
    async (key) => {
      if (!results) throw new Error('the harness did not start (see beforeAll)');
      const r = await results.get(key)!;
      finished.push(r);
      if (!r.pass) throw new Error(`${r.result}\n${details(r).join('\n')}`);
    },
    CASE_TIMEOUT,
  );
});
