// Environment of the end-to-end tests: the loopback registry, the unprivileged
// test user and the state directory prepared by scripts/setup (run by scripts/test).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface TestEnv {
  /** host:port of the loopback registry, e.g. `127.0.0.1:5055` (STOWAGE_TEST_REGISTRY). */
  registry: string;
  /** Name of the unprivileged user the CLI and containers run as (STOWAGE_TEST_USER). */
  user: string;
  uid: number;
  gid: number;
  /** The user's home directory (HOME of every process run as the user). */
  home: string;
  /** scripts/setup's state directory (STOWAGE_TEST_STATE). */
  stateDir: string;
  /** The bundled CLI (packages/builder/dist/stowage.mjs) copied where the user can read it. */
  cliPath: string;
  /** A node binary the user can execute. */
  nodePath: string;
  /** Root of the repository checkout. */
  repoRoot: string;
}

/** Root of the checkout: this file is test/lib/env.ts, compiled to test/dist/lib/env.js. */
export const repoRoot: string = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export const DEFAULTS = {
  registry: '127.0.0.1:5055',
  user: 'stowage-ci',
  stateDir: '/var/lib/stowage-test',
} as const;

export class TestEnvError extends Error {
  constructor(problem: string) {
    super(
      `end-to-end test environment not ready: ${problem}\n` +
        `Run \`scripts/test\` (or \`sudo scripts/setup\`, then \`pnpm run test:e2e\` as root) from the repository root; ` +
        `it installs the tools, creates the test user and starts the loopback registry with its fixture images.`,
    );
    this.name = 'TestEnvError';
  }
}

let cached: TestEnv | undefined;

/**
 * Reads STOWAGE_TEST_REGISTRY / STOWAGE_TEST_USER / STOWAGE_TEST_STATE (defaults:
 * 127.0.0.1:5055, stowage-ci, /var/lib/stowage-test), checks that the registry
 * answers and the user exists, and copies the CLI bundle to `<stateDir>/cli/`.
 * Throws a {@link TestEnvError} telling to run scripts/test otherwise. Memoized.
 */
export function testEnv(): TestEnv {
  if (cached) return cached;
  const registry = process.env.STOWAGE_TEST_REGISTRY || DEFAULTS.registry;
  const user = process.env.STOWAGE_TEST_USER || DEFAULTS.user;
  const stateDir = process.env.STOWAGE_TEST_STATE || DEFAULTS.stateDir;

  if (process.getuid?.() !== 0) {
    throw new TestEnvError(`the e2e tests must run as root (they switch to the user '${user}'), not as uid ${process.getuid?.()}`);
  }
  const pw = spawnSync('getent', ['passwd', user], { encoding: 'utf8' });
  const fields = pw.status === 0 ? pw.stdout.trim().split(':') : [];
  if (fields.length < 7) throw new TestEnvError(`the test user '${user}' does not exist`);
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  const home = fields[5]!;
  if (!fs.existsSync(stateDir)) throw new TestEnvError(`the state directory ${stateDir} does not exist`);

  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      `const ac = new AbortController(); setTimeout(() => ac.abort(), 3000).unref();
       fetch(process.argv[1], { signal: ac.signal }).then(r => process.exit(r.status === 200 ? 0 : 3), e => { console.error(String(e.cause ?? e)); process.exit(4); });`,
      `http://${registry}/v2/`,
    ],
    { encoding: 'utf8', timeout: 10_000 },
  );
  if (probe.status !== 0) {
    throw new TestEnvError(`the registry at http://${registry}/v2/ does not answer 200 (${(probe.stderr || `exit ${probe.status}`).trim()})`);
  }

  // One copy per checkout: test runs of two checkouts at once must not run each other's CLI.
  const cliDir = path.join(stateDir, 'cli', sha(Buffer.from(repoRoot)).slice(0, 12));
  fs.mkdirSync(cliDir, { recursive: true, mode: 0o755 });
  fs.chmodSync(path.dirname(cliDir), 0o755);
  fs.chmodSync(cliDir, 0o755);
  const cliPath = path.join(cliDir, 'stowage.mjs');
  const bundle = path.join(repoRoot, 'packages', 'builder', 'dist', 'stowage.mjs');
  if (fs.existsSync(bundle)) {
    copyIfChanged(bundle, cliPath);
    if (fs.existsSync(`${bundle}.map`)) copyIfChanged(`${bundle}.map`, `${cliPath}.map`);
    // The commands' code is in chunks/ next to the entry (scripts/bundle.mjs).
    syncDir(path.join(path.dirname(bundle), 'chunks'), path.join(cliDir, 'chunks'));
  }
  const nodePath = userNode(user, uid, gid, cliDir);
  cached = { registry, user, uid, gid, home, stateDir, cliPath, nodePath, repoRoot };
  return cached;
}

/** Copies SRC to DEST (mode 0644) unless DEST already has the same content; atomic rename. */
export function copyIfChanged(src: string, dest: string, mode = 0o644): void {
  const data = fs.readFileSync(src);
  try {
    const old = fs.readFileSync(dest);
    if (sha(old) === sha(data)) {
      fs.chmodSync(dest, mode);
      return;
    }
  } catch {
    // missing
  }
  const tmp = `${dest}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, dest);
}

/** Makes DEST (mode 0755) hold exactly SRC's files (0644), copying only what changed. */
function syncDir(src: string, dest: string): void {
  if (!fs.existsSync(src)) return;
  fs.mkdirSync(dest, { recursive: true, mode: 0o755 });
  fs.chmodSync(dest, 0o755);
  const names = new Set(fs.readdirSync(src));
  for (const name of names) copyIfChanged(path.join(src, name), path.join(dest, name));
  for (const name of fs.readdirSync(dest)) if (!names.has(name)) fs.rmSync(path.join(dest, name), { force: true });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The node running the tests if the user can execute it, else a copy in DIR. */
function userNode(user: string, uid: number, gid: number, dir: string): string {
  const canRun = (p: string) =>
    spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--init-groups', '--', p, '--version'], {
      encoding: 'utf8',
      timeout: 10_000,
    }).status === 0;
  if (canRun(process.execPath)) return process.execPath;
  const copy = path.join(dir, 'node');
  copyIfChanged(process.execPath, copy, 0o755);
  if (!canRun(copy)) throw new TestEnvError(`the user '${user}' can run neither ${process.execPath} nor ${copy}`);
  return copy;
}
