// Benchmark of one build step's snapshot cost: prepare an active snapshot,
// change one file, diff it into a gzip layer, commit. Run inside the build's
// user namespace (scripts/bench starts it there). Prints one JSON line with
//  - first: the first step on the committed base (the native backend copies
//    the base here, once per stage);
//  - step: each later step of the same stage (prepared on the previous step).
//
//   node snapshot-step.mjs <state-dir> <backend> <files> <megabytes> <runs>
import { mkdir, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const [stateDir, backend, filesArg, mbArg, runsArg] = process.argv.slice(2);
const files = Number(filesArg);
const bytes = Number(mbArg) * 1024 * 1024;
const runs = Number(runsArg);
const { Snapshotter } = await import(process.env.STOWAGE_SNAPSHOTTER_MODULE);

const snaps = await Snapshotter.open(join(stateDir, `snapshots-${backend}`), { backend });
const baseName = `bench-base-${files}-${mbArg}`;
const t0 = performance.now();
if (!(await snaps.exists(baseName))) {
  // A base like a distro image: files spread over directories of 100, sizes summing to `bytes`.
  const dir = await snaps.prepare(`make-${baseName}`);
  const size = Math.floor(bytes / files);
  const chunk = Buffer.alloc(size);
  for (let i = 0; i < files; i++) {
    if (i % 100 === 0) await mkdir(join(dir, 'usr', `d${Math.floor(i / 100)}`), { recursive: true });
    chunk.writeUInt32LE(i, 0);
    await writeFile(join(dir, 'usr', `d${Math.floor(i / 100)}`, `f${i}`), chunk);
  }
  await snaps.commit(baseName, `make-${baseName}`);
}
const setupSeconds = (performance.now() - t0) / 1000;

let n = 0;
/** One step on `parent`: prepare, change one file, diff, commit; returns [seconds, committed name]. */
async function step(parent) {
  const key = `step-${process.pid}-${++n}`;
  const start = performance.now();
  const dir = await snaps.prepare(key, parent);
  await writeFile(join(dir, 'usr', 'd0', 'f0'), `changed ${n}\n`);
  const layer = join(stateDir, `layer-${n}.tar.gz`);
  const result = await snaps.diff(key, layer);
  if (result.empty) throw new Error('diff of a changed file was empty');
  const name = `${parent}+${n}`;
  await snaps.commit(name, key);
  const seconds = (performance.now() - start) / 1000;
  await rm(layer, { force: true });
  return [seconds, name];
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const first = [];
const later = [];
for (let r = -1; r < runs; r++) {
  // A fresh stage each round: one first step, then three chained steps. Round -1 warms up.
  let [s, name] = await step(baseName);
  if (r >= 0) first.push(s);
  for (let i = 0; i < 3; i++) {
    [s, name] = await step(name);
    if (r >= 0) later.push(s);
  }
}
await snaps.close();
console.log(JSON.stringify({ backend: snaps.backend, files, megabytes: Number(mbArg), runs, setupSeconds, first: median(first), step: median(later), stepMin: Math.min(...later), stepMax: Math.max(...later) }));
