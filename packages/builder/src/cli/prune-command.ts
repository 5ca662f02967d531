/**
 * `stowage prune`: garbage collection of --root (engine/prune.ts). Snapshot
 * directories hold files owned by subordinate ids, so, like a build, the
 * command re-executes itself inside the build's user namespace first.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { runCommand, type BuilderArgs } from './run-command.js';
import { formatSize, parseSize } from './size.js';

function builder(y: Argv) {
  return y
    .option('root', { type: 'string', describe: 'State directory (default: $XDG_DATA_HOME/stowage or ~/.local/share/stowage)' })
    .option('all', { alias: 'a', type: 'boolean', default: false, describe: 'Remove the whole build cache: every cache record, pulled image, snapshot and blob' })
    .option('keep-storage', { type: 'string', describe: 'Then remove least recently used cache records and images until what stays takes at most SIZE (e.g. 500MB, 2GiB)' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'Only report what would be removed' })
    .option('force', { alias: 'f', type: 'boolean', default: false, describe: 'Accepted for buildx compatibility; prune never asks' })
    .option('debug', { type: 'boolean', default: false, describe: 'Print stack traces on error' })
    .epilog(
      'Default: removes what nothing kept refers to: cache records whose snapshot or layer is gone, snapshots outside the chains of the ' +
      'cache records and of pulled/base images, blobs no record names (exported manifests and configs, layers of dropped steps), ' +
      'partial downloads and scratch directories of builds that died. ' +
      'Builds and pulls hold a lease on --root: prune waits for running ones to finish, and builds started meanwhile wait for the prune. ' +
      'kB/MB/GB are powers of 1000, KiB/MiB/GiB (and k/m/g) of 1024.',
    )
    .example('$0 prune', 'Remove dangling cache, snapshots and blobs')
    .example('$0 prune --keep-storage 2GiB', 'Also drop the least recently used cache until at most 2 GiB stays')
    .example('$0 prune --all', 'Empty the build cache');
}

type PruneArgs = BuilderArgs<typeof builder>;

export const pruneCommand: CommandModule<{}, PruneArgs> = {
  command: 'prune',
  describe: 'Remove unused build cache, snapshots and blobs from --root',
  builder,
  handler: (args) => runCommand(args.debug, () => runPrune(args)),
};

export async function runPrune(args: PruneArgs): Promise<number> {
  const keepStorage = args['keep-storage'] !== undefined ? parseSize(args['keep-storage'], '--keep-storage') : undefined;
  const { defaultStateRoot } = await import('../engine/state-root.js');
  const root = resolve(args.root ?? defaultStateRoot());
  if (!(await stat(root).catch(() => undefined))?.isDirectory()) {
    process.stdout.write(`nothing to prune: ${root} does not exist\n`);
    return 0;
  }
  const { currentMappingMode, runInUserNamespace } = await import('../rootless/reexec.js');
  if (currentMappingMode() === undefined) {
    return runInUserNamespace(process.argv.slice(1), (line) => process.stderr.write(`${line}\n`));
  }
  const { prune } = await import('../engine/prune.js');
  const report = await prune({
    root,
    all: args.all,
    ...(keepStorage !== undefined ? { keepStorage } : {}),
    dryRun: args['dry-run'],
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(pruneSummary(report));
  return 0;
}

/** What a prune freed (or would free), one kind per line, and the total. */
export function pruneSummary(r: import('../engine/prune.js').PruneReport): string {
  const verb = r.dryRun ? 'would remove' : 'removed';
  const n = (count: number, what: string) => `${count} ${what}${count === 1 ? '' : 's'}`;
  return [
    `${verb} ${n(r.cacheRecords, 'cache record')}, ${n(r.imageRecords, 'image record')}`,
    `${verb} ${n(r.snapshots.count, 'snapshot')} (${formatSize(r.snapshots.bytes)})`,
    `${verb} ${n(r.blobs.count, 'blob')} (${formatSize(r.blobs.bytes)})`,
    `${verb} ${n(r.temporary.count, 'temporary file')} (${formatSize(r.temporary.bytes)})`,
    `${r.dryRun ? 'reclaimable' : 'reclaimed'}: ${formatSize(r.reclaimed)} (${r.reclaimed} bytes); kept: ${formatSize(r.remaining)} (${r.remaining} bytes)`,
    '',
  ].join('\n');
}
