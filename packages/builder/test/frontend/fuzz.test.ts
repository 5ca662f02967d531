/**
 * Fuzzing the Dockerfile frontend (parser, typed instructions, word
 * expansion) with fast-check; the properties are in fuzz-properties.ts.
 *
 * Each property runs in a worker thread with a heap limit, and every case
 * has a time bound: a case that hangs or a heap that blows up ends the
 * worker and fails the test with the case's size, start and seed, instead
 * of hanging CI.
 *
 * STOWAGE_FUZZ_RUNS (default 300) sets the cases per property (the "huge"
 * property runs a tenth as many); STOWAGE_FUZZ_SEED replays a run.
 */
import { Worker } from 'node:worker_threads';
import { PROPERTIES, type PropertyName } from './fuzz-properties.js';
import type { WorkerInput, WorkerMessage } from './fuzz-worker.js';

const RUNS = Math.max(1, Number(process.env.STOWAGE_FUZZ_RUNS ?? '') || 300);
const SEED = Number(process.env.STOWAGE_FUZZ_SEED ?? '') || (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
/** Heap of one worker: well above what the bounded frontend needs for a 16 MiB Dockerfile. */
const HEAP_MB = 512;

const CASE_MS = (p: PropertyName): number => PROPERTIES[p].caseMs;
/** Cases a property runs for STOWAGE_FUZZ_RUNS = n. */
const cases = (p: PropertyName): number => PROPERTIES[p].runs(RUNS) * PROPERTIES[p].arbitraries.length;

interface Outcome {
  done?: Extract<WorkerMessage, { type: 'done' }>;
  problem?: string;
  cases: number;
}

function runProperty(property: PropertyName, runs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const worker = new Worker(new URL('./fuzz-worker.js', import.meta.url), {
      workerData: { property, runs, seed: SEED } satisfies WorkerInput,
      resourceLimits: { maxOldGenerationSizeMb: HEAP_MB },
    });
    let last: Extract<WorkerMessage, { type: 'case' }> | undefined;
    let cases = 0;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (o: Omit<Outcome, 'cases'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      resolve({ ...o, cases });
    };
    const where = (): string => (last ? `case ${last.index} (${last.length} characters, starting ${last.head})` : 'before the first case');
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => finish({ problem: `no progress for ${CASE_MS(property)} ms in ${where()}, seed ${SEED}` }), CASE_MS(property));
    };
    arm();
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'case') {
        last = m;
        cases++;
        arm();
      } else {
        finish({ done: m });
      }
    });
    worker.on('error', (err) => finish({ problem: `worker died in ${where()}, seed ${SEED}: ${err.message}` }));
    worker.on('exit', (code) => finish({ problem: `worker exited (${code}) in ${where()}, seed ${SEED}` }));
  });
}

async function check(property: PropertyName): Promise<void> {
  const o = await runProperty(property, RUNS);
  if (o.problem !== undefined) throw new Error(o.problem);
  const d = o.done!;
  if (d.failed) {
    throw new Error(`property ${property} failed (seed ${d.seed}, path ${d.path ?? '?'}): ${d.error}\ncounterexample: ${d.counterexample}`);
  }
  expect(d.numRuns).toBe(cases(property));
  expect(d.maxCaseMs).toBeLessThan(CASE_MS(property));
}

// Generous: the suite shares two cores with everything else.
const T = (p: PropertyName, perCase: number): number => 60_000 + cases(p) * perCase;

test(`generated Dockerfiles: only typed errors, each with a line of the file (${cases('dockerfile')} cases)`, () => check('dockerfile'), T('dockerfile', 200));
test(`generated words: expansion ends, bounded, with ShellExpansionError or a result (${cases('words')} cases)`, () => check('words'), T('words', 100));
test(`pattern removal and replacement agree with the RegExp reference (${cases('patterns')} cases)`, () => check('patterns'), T('patterns', 50));
test(`huge inputs (64 KiB lines, 16 MiB files, deep nesting, exponential patterns): bounded time and memory (${cases('huge')} cases)`, () => check('huge'), T('huge', 5_000));
