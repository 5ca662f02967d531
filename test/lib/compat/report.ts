// The human-readable report of a compatibility run, and its JSON form.
import type { CaseResult, SideResult } from './runner.js';

const MAX_DIFFS_SHOWN = 40;
const clip = (s: string, n = 160) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

function time(s: SideResult): string {
  if (s.cached) return `${s.seconds.toFixed(1)}s*`;
  return s.seconds ? `${s.seconds.toFixed(1)}s` : '-';
}

/** One row: name, result, times. */
export function row(r: CaseResult, width = 40): string {
  const name = `${r.group === 'cases' ? '' : `${r.group}/`}${r.name}`;
  const res = r.pass || r.result === 'identical' || r.result === 'listed-diff' ? r.result : `${r.result} ✗`;
  return `${name.padEnd(width)} ${res.padEnd(18)} ${time(r.buildkit).padStart(8)} ${time(r.stowage).padStart(8)}`;
}

/** The details of one failing (or listed-diff) case. */
export function details(r: CaseResult): string[] {
  const out: string[] = [];
  const name = `${r.group}/${r.name}`;
  const listed = r.differences.filter((d) => d.listed);
  const unlisted = r.differences.filter((d) => !d.listed);
  if (r.pass && !listed.length) return out;
  out.push(`--- ${name}: ${r.result}${r.pass ? '' : ' (FAIL)'}${r.tempDir ? `  [kept: ${r.tempDir}]` : ''}`);
  for (const p of r.problems) out.push(...p.split('\n').map((l, i) => (i ? `      ${l}` : `  problem: ${l}`)));
  if (!r.buildkit.ok && r.buildkit.error !== undefined) out.push('  BuildKit failed:', ...r.buildkit.error.split('\n').map((l) => `    | ${l}`));
  if (!r.stowage.ok && r.stowage.error !== undefined) out.push('  stowage failed:', ...r.stowage.error.split('\n').map((l) => `    | ${l}`));
  const show = (label: string, ds: typeof r.differences) => {
    if (!ds.length) return;
    out.push(`  ${label} (${ds.length}):`);
    for (const d of ds.slice(0, MAX_DIFFS_SHOWN)) {
      out.push(`    ${d.path}  ${d.field}:  buildkit ${clip(d.buildkit)}  |  stowage ${clip(d.stowage)}${d.listed ? `  [${d.listed}]` : ''}`);
    }
    if (ds.length > MAX_DIFFS_SHOWN) out.push(`    … and ${ds.length - MAX_DIFFS_SHOWN} more (scripts/compat --json FILE has them all)`);
  };
  show('differences', unlisted);
  show('listed differences', listed);
  return out;
}

export function summaryLine(results: CaseResult[]): string {
  const identical = results.filter((r) => r.result === 'identical' && r.pass).length;
  const listed = results.filter((r) => r.result === 'listed-diff' && r.pass).length;
  const expectedFail = results.filter((r) => r.result === 'both-fail' && r.pass).length;
  return `${identical}/${results.length} identical, ${listed} with listed differences${expectedFail ? `, ${expectedFail} failing in both as expected` : ''}`;
}

export function report(results: CaseResult[], header: string[] = [], trailer: string[] = []): string {
  const width = Math.max(20, ...results.map((r) => r.name.length + (r.group === 'cases' ? 0 : r.group.length + 1)));
  const lines = [...header, `${'case'.padEnd(width)} ${'result'.padEnd(18)} ${'buildkit'.padStart(8)} ${'stowage'.padStart(8)}`];
  for (const r of results) lines.push(row(r, width));
  if (results.some((r) => r.buildkit.cached)) lines.push('(* BuildKit result from the oracle cache; the time is that of the cached build)');
  const det = results.flatMap(details);
  if (det.length) lines.push('', ...det);
  lines.push('', ...trailer, summaryLine(results));
  return lines.join('\n');
}

export function toJson(results: CaseResult[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify(
    {
      ...extra,
      summary: summaryLine(results),
      passed: results.filter((r) => r.pass).length,
      failed: results.filter((r) => !r.pass).length,
      cases: results,
    },
    null,
    2,
  );
}
