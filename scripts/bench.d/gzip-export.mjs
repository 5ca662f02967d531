// Benchmark of layer compression (P5): the snapshotter's layer gzip over
// uncompressed layer tars, with both digests computed in the same pass as in
// diff-writer.ts (sha256 of the tar → gzip → sha256 of the gzip → file).
//
//   node gzip-export.mjs <mode> <runs> <out-dir> TAR...
//     mode: parallel (gzipMembers, default concurrency) | single (one zlib stream,
//           the writer before parallel members) | members-1 (members, one at a time)
//
// Prints one JSON line: { mode, runs, bytes (uncompressed), compressed, seconds[], median, mbps, digests }.
// The snapshotter module comes from STOWAGE_SNAPSHOTTER_MODULE (a bundle of packages/snapshotter).
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

const [mode, runsArg, outDir, ...tars] = process.argv.slice(2);
const runs = Number(runsArg);
const { gzipMembers } = await import(process.env.STOWAGE_SNAPSHOTTER_MODULE);

const tap = (hash, counter) => new Transform({
  transform(chunk, _enc, cb) { hash.update(chunk); counter.n += chunk.length; cb(null, chunk); },
});

async function compressOne(tar, dest) {
  const diff = createHash('sha256');
  const dig = createHash('sha256');
  const inBytes = { n: 0 };
  const outBytes = { n: 0 };
  const gz = mode === 'single' ? createGzip({ level: 6 }) : gzipMembers(mode === 'members-1' ? { concurrency: 1 } : {});
  await pipeline(createReadStream(tar), tap(diff, inBytes), gz, tap(dig, outBytes), createWriteStream(dest));
  return { bytes: inBytes.n, compressed: outBytes.n, digest: `sha256:${dig.digest('hex')}` };
}

const seconds = [];
let last;
for (let r = 0; r < runs; r++) {
  const t0 = performance.now();
  const results = [];
  for (const [i, tar] of tars.entries()) results.push(await compressOne(tar, join(outDir, `layer-${i}.gz`)));
  seconds.push((performance.now() - t0) / 1000);
  last = results;
}
for (let i = 0; i < tars.length; i++) await rm(join(outDir, `layer-${i}.gz`), { force: true });
const bytes = tars.reduce((s, t) => s + statSync(t).size, 0);
const median = [...seconds].sort((a, b) => a - b)[Math.floor(seconds.length / 2)];
console.log(JSON.stringify({
  mode, runs, bytes, compressed: last.reduce((s, r) => s + r.compressed, 0), seconds, median,
  mbps: bytes / 1e6 / median, digests: last.map((r) => r.digest),
}));
