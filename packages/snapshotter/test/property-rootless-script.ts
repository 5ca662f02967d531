/**
 * Run by property.test.ts as the unprivileged user `stowage-ci` inside
 * `unshare --user --mount --map-root-user --map-auto` (bundled with esbuild into a dir that
 * user can read). argv: <workdir> <json plan>; prints a JSON array of PropertyResult.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { SnapshotterBackend } from '../src/index.js';
import { runProperty, type PropertyKind, type PropertyResult } from './property-core.js';

export interface RootlessPlan {
  seed: number;
  path?: string;
  runs: { kind: PropertyKind; backend: SnapshotterBackend; numRuns: number }[];
}

async function main(): Promise<void> {
  const [work, planJson] = process.argv.slice(2);
  if (!work || !planJson) throw new Error('usage: property-rootless-script <workdir> <plan json>');
  const plan = JSON.parse(planJson) as RootlessPlan;
  const results: PropertyResult[] = [];
  for (const r of plan.runs) {
    const scratch = join(work, `scratch-${r.backend}-${r.kind}`);
    mkdirSync(scratch);
    results.push(await runProperty(r.kind, join(work, `snaps-${r.backend}`), scratch, r.backend, plan.seed, r.numRuns, plan.path));
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
