/**
 * `stowage version`: this CLI, the commit it was bundled from, Node, runc
 * (asked only here: `--version` must stay instant) and the host platform.
 */
import { execFile } from 'node:child_process';
import type { Argv, CommandModule } from 'yargs';
import { runCommand, type BuilderArgs } from './run-command.js';
import { COMMIT, VERSION } from './version-info.js';

function builder(y: Argv) {
  return y.option('format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'text, or one JSON object' });
}

type VersionArgs = BuilderArgs<typeof builder>;

export const versionCommand: CommandModule<{}, VersionArgs> = {
  command: 'version',
  describe: 'Show version information (stowage, commit, Node, runc, platform)',
  builder,
  handler: (args) => runCommand(false, () => runVersion(args)),
};

export interface VersionInfo {
  version: string;
  commit: string | null;
  node: string;
  runc: { version: string; commit: string | null } | null;
  platform: string;
}

/** `runc --version`: "runc version 1.1.5+ds1\ncommit: …\nspec: …"; null when runc is missing. */
export function parseRuncVersion(out: string): VersionInfo['runc'] {
  const version = /^runc version (\S+)/m.exec(out)?.[1];
  if (version === undefined) return null;
  return { version, commit: /^commit: (\S+)/m.exec(out)?.[1] ?? null };
}

function runcVersion(): Promise<VersionInfo['runc']> {
  return new Promise((resolve) => {
    execFile('runc', ['--version'], { timeout: 5000 }, (err, stdout) => resolve(err ? null : parseRuncVersion(stdout)));
  });
}

/** Docker's names for Node's architectures. */
function hostPlatform(): string {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return `${process.platform}/${arch[process.arch] ?? process.arch}`;
}

export async function runVersion(args: VersionArgs): Promise<number> {
  const info: VersionInfo = { version: VERSION, commit: COMMIT ?? null, node: process.version, runc: await runcVersion(), platform: hostPlatform() };
  if (args.format === 'json') {
    process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
    return 0;
  }
  const runc = info.runc ? `${info.runc.version}${info.runc.commit ? ` (commit ${info.runc.commit})` : ''}` : 'not found';
  process.stdout.write(
    [`Version:   ${info.version}`, `Commit:    ${info.commit ?? 'unknown'}`, `Node:      ${info.node}`, `runc:      ${runc}`, `Platform:  ${info.platform}`, ''].join('\n'),
  );
  return 0;
}
