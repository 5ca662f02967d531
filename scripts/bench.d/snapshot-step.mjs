// Benchmark of one build step's snapshot cost: prepare an active snapshot on a
// committed base, change one file, diff, commit. Run inside the build's user
// namespace (scripts/bench starts it there). Prints one JSON line.
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

const samples = [];
// One warm-up round first (page cache, lazy module loading), not counted.
for (let r = -1; r < runs; r++) {
  const key = `step-${process.pid}-${r}`;
  const start = performance.now();
  const dir = await snaps.prepare(key, baseName);
  await writeFile(join(dir, 'usr', 'd0', 'f0'), `changed ${r}\n`);
  const layer = join(stateDir, `layer-${r}.tar.gz`);
  const result = await snaps.diff(key, layer);
  await snaps.release(key);
  if (r >= 0) samples.push((performance.now() - start) / 1000);
  await rm(layer, { force: true });
  if (result.empty) throw new Error('diff of a changed file was empty');
}
await snaps.close();
samples.sort((a, b) => a - b);
console.log(JSON.stringify({ backend: snaps.backend, files, megabytes: Number(mbArg), runs, setupSeconds, median: samples[Math.floor(samples.length / 2)], min: samples[0], max: samples[samples.length - 1] }));
