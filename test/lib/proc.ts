// Running processes as the unprivileged test user, and running the stowage CLI.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { testEnv } from './env.js';

export interface RunResult {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the process was killed because timeoutMs elapsed. */
  timedOut: boolean;
}

export interface RunOptions {
  /** Working directory; must be accessible to the user when running as the user. */
  cwd?: string;
  /** Added to (and overriding) the base environment. */
  env?: Record<string, string>;
  /** Kill the whole process group after this long (default 300 000 ms). */
  timeoutMs?: number;
  /** Written to stdin (stdin is /dev/null otherwise). */
  input?: string | Buffer;
}

export const DEFAULT_TIMEOUT_MS = 300_000;
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Runs argv as root (the test process) with a captured stdout/stderr; never rejects for a non-zero exit. */
export function run(argv: string[], opts: RunOptions & { inheritEnv?: boolean } = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('run: empty argv');
  const env = opts.inheritEnv === false ? { ...opts.env } : { ...process.env, ...opts.env };
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: true, // own process group, so a timeout kills everything it started
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') + (timedOut ? `\n[killed after ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms]\n` : ''),
        timedOut,
      });
    });
  });
}

/** The environment every process run as the test user starts from (nothing else is inherited). */
export function userBaseEnv(): Record<string, string> {
  const e = testEnv();
  return {
    PATH: `${path.dirname(e.nodePath)}:${SYSTEM_PATH}`,
    HOME: e.home,
    USER: e.user,
    LOGNAME: e.user,
    LANG: 'C.UTF-8',
  };
}

/**
 * Runs argv as the test user (setpriv: real+effective uid/gid, its supplementary
 * groups, no capabilities) with a clean environment: {@link userBaseEnv} + opts.env.
 */
export function runAsUser(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const e = testEnv();
  const env = { ...userBaseEnv(), ...opts.env };
  return run(
    [
      'setpriv',
      `--reuid=${e.uid}`,
      `--regid=${e.gid}`,
      '--init-groups',
      '--',
      'env',
      '-i',
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      ...argv,
    ],
    { ...opts, env: {}, inheritEnv: false },
  );
}

export interface StowageOptions extends RunOptions {
  cwd: string;
}

/**
 * `node <cliPath> ...args` as the test user in opts.cwd, HOME = the user's home.
 * Pass a per-test `--root` in args (see WorkDir.root).
 */
export function runStowage(args: string[], opts: StowageOptions): Promise<RunResult> {
  const e = testEnv();
  if (!fs.existsSync(e.cliPath)) {
    throw new Error(
      `the stowage CLI bundle is missing (${e.cliPath}); build it with \`pnpm run build\` (packages/builder/dist/stowage.mjs)`,
    );
  }
  return runAsUser([e.nodePath, '--enable-source-maps', e.cliPath, ...args], opts);
}
