/**
 * Runs one fuzz property in a worker thread (see fuzz.test.ts). Before each
 * case it tells the parent which one it starts, so the parent can stop a
 * case that hangs and say which it was; at the end it sends fast-check's
 * verdict.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as fc from 'fast-check';
import { PROPERTIES, type PropertyName } from './fuzz-properties.js';

export interface WorkerInput {
  property: PropertyName;
  runs: number;
  seed: number;
}

export type WorkerMessage =
  | { type: 'case'; index: number; length: number; head: string }
  | { type: 'done'; failed: boolean; numRuns: number; seed: number; path?: string; counterexample?: string; error?: string; maxCaseMs: number };

const input = workerData as WorkerInput;
const prop = PROPERTIES[input.property];
let index = 0;
let maxCaseMs = 0;

function summary(value: unknown): { length: number; head: string } {
  const text = typeof value === 'string' ? value : Array.isArray(value) && typeof value[0] === 'string' ? value[0] : JSON.stringify(value);
  return { length: text.length, head: JSON.stringify(text.slice(0, 300)) };
}

const runs = prop.runs(input.runs);
let done: WorkerMessage = { type: 'done', failed: false, numRuns: 0, seed: input.seed, maxCaseMs: 0 };
for (const arbitrary of prop.arbitraries as fc.Arbitrary<unknown>[]) {
  const property = fc.property(arbitrary, (value) => {
    parentPort!.postMessage({ type: 'case', index: index++, ...summary(value) } satisfies WorkerMessage);
    const started = performance.now();
    (prop.check as (v: unknown) => void)(value);
    maxCaseMs = Math.max(maxCaseMs, performance.now() - started);
  });
  const details = fc.check(property, { numRuns: runs, seed: input.seed });
  done = { type: 'done', failed: details.failed, numRuns: done.numRuns + details.numRuns, seed: details.seed, maxCaseMs };
  if (details.failed) {
    if (details.counterexamplePath !== null) done.path = details.counterexamplePath;
    if (details.counterexample !== null) done.counterexample = summary(details.counterexample[0]).head;
    done.error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    break;
  }
}
parentPort!.postMessage(done);
