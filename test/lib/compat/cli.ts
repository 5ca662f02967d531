// scripts/compat: builds the compatibility corpus with BuildKit and stowage and compares.
//   node test/dist/lib/compat/cli.js [--only-fast] [--json FILE] [--no-cache] [--keep] [-j N] [CASE...]
import fs from 'node:fs';
import { testEnv } from '../env.js';
import { selectCases } from './corpus.js';
import { report, row, toJson } from './report.js';
import { compatScratchParent, pruneCache, runCases, startOracle } from './runner.js';

const USAGE = `usage: scripts/compat [--only-fast] [--json FILE] [--no-cache | --cold] [--keep] [-j N] [CASE...]
  CASE          a case name (test/compat/cases/NAME or test/compat/real-world/NAME) or a case directory;
                default: every case of both
  --only-fast   leave out cases with "slow": true
  --json FILE   also write the results as JSON
  --no-cache    build with BuildKit even when the oracle cache has the case's result (the new result replaces it)
  --cold        also without BuildKit's own build cache (BuildKit builds everything again)
  --keep        keep each case's scratch directory (its path is printed with the case's details;
                in /dev/shm they take memory until removed)
  -j N          cases at once (default 2; each runs both builders at the same time)`;

async function main(argv: string[]): Promise<number> {
  let onlyFast = false;
  let json: string | undefined;
  let cache = true;
  let keep = false;
  let cold = false;
  let concurrency = Number(process.env.STOWAGE_COMPAT_JOBS || 2);
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--only-fast') onlyFast = true;
    else if (a === '--json') json = argv[++i];
    else if (a.startsWith('--json=')) json = a.slice(7);
    else if (a === '--no-cache') cache = false;
    else if (a === '--keep') keep = true;
    else if (a === '--cold') cold = true;
    else if (a === '-j' || a === '--jobs') concurrency = Number(argv[++i]);
    else if (a === '-h' || a === '--help') {
      console.log(USAGE);
      return 0;
    } else if (a.startsWith('-')) {
      console.error(`scripts/compat: unknown option ${a}\n${USAGE}`);
      return 2;
    } else names.push(a);
  }
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    console.error('scripts/compat: -j wants a positive number');
    return 2;
  }
  if (json === undefined && argv.includes('--json')) {
    console.error('scripts/compat: --json wants a FILE');
    return 2;
  }
  const env = testEnv();
  let cases = selectCases(env.repoRoot, names);
  if (onlyFast) cases = cases.filter((c) => c.spec.slow !== true);
  if (!cases.length) {
    console.error('scripts/compat: no cases');
    return 2;
  }
  const t0 = Date.now();
  const oracle = await startOracle();
  await pruneCache();
  const header = [
    `BuildKit oracle: ${oracle.version} (ready in ${oracle.seconds}s)`,
    `${cases.length} cases, ${concurrency} at a time, scratch in ${compatScratchParent()}${cold ? ', cold BuildKit (no caches)' : cache ? '' : ', no oracle cache'}`,
    '',
  ];
  process.stderr.write(`${header.join('\n')}\n`);
  let done = 0;
  const results = await runCases(cases, { concurrency, cache, keep, cold }, (r) => {
    done++;
    process.stderr.write(`[${done}/${cases.length}] ${row(r)}\n`);
  });
  // The summary line ("N/M identical, K with listed differences") comes last.
  console.log(report(results, header, [`total ${Math.round((Date.now() - t0) / 1000)}s`]));
  if (json) fs.writeFileSync(json, toJson(results, { oracle: oracle.version, seconds: Math.round((Date.now() - t0) / 1000) }));
  return results.every((r) => r.pass) ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`scripts/compat: ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
