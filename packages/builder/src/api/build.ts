/**
 * `build()`: the programmatic API of `stowage build`.
 *
 * A build needs a user namespace with a mount namespace, and a Node process
 * cannot unshare itself (it is multi-threaded), so the API runs the bundled
 * CLI as a child process (`process.execPath` + the CLI entry), the way the
 * CLI itself re-executes into the namespace. The child runs with
 * `--progress rawjson` and a `--metadata-file` in a temporary directory; its
 * stderr is read line by line, each JSON line is a `ProgressEvent` handed to
 * the caller, a final `error` event becomes a `BuildFailedError`, and the
 * summary event plus the metadata file give the result.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseReference } from '@stowage/registry-client';
import type { ProgressEvent } from '../engine/progress.js';
import { BuildError, InvalidOptionError } from '../errors.js';
import { isRegistryOutput, parseOutput, type OutputSpec } from '../cli/options.js';

export interface StowageBuildOptions {
  /** The build context directory (relative to `cwd`). */
  context: string;
  /** `-f`: the Dockerfile (default `<context>/Dockerfile`). */
  file?: string;
  /** `-t` names. */
  tags?: string[];
  /** `--target` stage. */
  target?: string;
  /** `--build-arg K=V`. */
  buildArgs?: Record<string, string>;
  /** `-o`: typed specs, or strings as on the command line (`type=oci,dest=out.tar`). */
  outputs?: Array<OutputSpec | string>;
  /** `--push`: push to each tag. */
  push?: boolean;
  /** `--platform os/arch[/variant]`. */
  platform?: string;
  /** `--registry-mirror`: registry (e.g. `docker.io`) → mirror hosts, tried in order. */
  registryMirrors?: Record<string, string[]>;
  /** `--insecure-registry` hosts (plain HTTP). */
  insecureRegistries?: string[];
  /** `--network` for RUN steps. */
  network?: 'default' | 'host' | 'none';
  /** `--allow`: `network.host` (RUN --network=host), `security.insecure` (RUN --security=insecure). */
  allow?: ('network.host' | 'security.insecure')[];
  snapshotter?: 'auto' | 'overlay' | 'native';
  /** `--no-cache`. */
  noCache?: boolean;
  /** `--secret`: `id=ID,src=PATH` or `id=ID,env=VAR` specs for `RUN --mount=type=secret` (values never reach events). */
  secrets?: string[];
  /** `--no-cache-filter`: stages (names or indices) built without the cache. */
  noCacheFilter?: string[];
  /** `--root`: the state directory. */
  root?: string;
  /** `--iidfile`. */
  iidfile?: string;
  /** `--metadata-file`: kept where given (else a temporary one is used and removed). */
  metadataFile?: string;
  /** Every progress event, in order, as the CLI's rawjson stream gives them. */
  onEvent?: (event: ProgressEvent) => void;
  /** Aborting sends SIGTERM: the CLI stops runc and cleans up, then the promise rejects with an {@link AbortError}. */
  signal?: AbortSignal;
  /** Working directory for relative paths (default: `process.cwd()`). */
  cwd?: string;
  /** Environment of the CLI (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** The CLI entry to run (default: the bundled `stowage.mjs` of this package). */
  cli?: string;
  /** The node binary (default: `process.execPath`). */
  node?: string;
  /** After an abort, SIGKILL the CLI if it has not exited after this long (default 30 000 ms). */
  killAfterMs?: number;
}

export interface StowageBuildResult {
  /** The image manifest's digest (`containerimage.digest`). */
  digest: string;
  /** The config's digest: the image ID. */
  configDigest: string;
  /** Manifest + config + layers, in bytes. */
  size: number;
  /** What was written: file outputs with absolute paths, registry outputs with the names pushed to. */
  outputs: OutputSpec[];
  /** Wall-clock time of the whole call, namespace setup included. */
  durationMs: number;
}

/** The build failed: `code`, `file`, `line` as the CLI reported them in its `error` event. */
export class BuildFailedError extends BuildError {
  /** The CLI's exit code. */
  readonly exitCode: number;
  /** Text the CLI wrote that was not JSON (usage errors, crashes), at most 64 KiB. */
  readonly stderr: string;

  constructor(message: string, exitCode: number, stderr: string, where: { code?: string; file?: string; line?: number } = {}) {
    super(where.code ?? 'E_BUILD_FAILED', message, where);
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** The build was aborted through `signal` (name and code as Node's own AbortError). */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';

  constructor(message = 'The build was aborted', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

/** A running build: iterate it for its events; `result` settles when the CLI has exited. */
export interface BuildJob extends AsyncIterable<ProgressEvent> {
  readonly result: Promise<StowageBuildResult>;
  /** The CLI's process id (undefined when it could not start). */
  readonly pid: number | undefined;
}

const STDERR_KEEP = 64 * 1024;

/** The CLI shipped with this package: the bundle, else the compiled entry (a build without bundling). */
export function defaultCliPath(): string {
  const bundle = fileURLToPath(new URL('../../stowage.mjs', import.meta.url));
  return existsSync(bundle) ? bundle : fileURLToPath(new URL('../cli/main.js', import.meta.url));
}

/** Options as the CLI's arguments; values that `-o` cannot carry fail here, before anything runs. */
export function buildArgv(opts: StowageBuildOptions, metadataFile: string): string[] {
  const argv = ['build', '--progress', 'rawjson', '--metadata-file', metadataFile];
  if (opts.file !== undefined) argv.push('--file', opts.file);
  for (const t of opts.tags ?? []) argv.push('--tag', t);
  if (opts.target !== undefined) argv.push('--target', opts.target);
  for (const [k, v] of Object.entries(opts.buildArgs ?? {})) {
    if (k === '' || k.includes('=')) throw new InvalidOptionError(`buildArgs: invalid name ${JSON.stringify(k)}`);
    argv.push('--build-arg', `${k}=${v}`);
  }
  for (const o of opts.outputs ?? []) argv.push('--output', typeof o === 'string' ? o : outputText(o));
  if (opts.push) argv.push('--push');
  if (opts.platform !== undefined) argv.push('--platform', opts.platform);
  for (const [registry, hosts] of Object.entries(opts.registryMirrors ?? {})) for (const h of hosts) argv.push('--registry-mirror', `${registry}=${h}`);
  for (const h of opts.insecureRegistries ?? []) argv.push('--insecure-registry', h);
  if (opts.network !== undefined) argv.push('--network', opts.network);
  for (const e of opts.allow ?? []) argv.push('--allow', e);
  if (opts.snapshotter !== undefined) argv.push('--snapshotter', opts.snapshotter);
  if (opts.noCache) argv.push('--no-cache');
  for (const stage of opts.noCacheFilter ?? []) argv.push('--no-cache-filter', stage);
  for (const secret of opts.secrets ?? []) argv.push('--secret', secret);
  if (opts.root !== undefined) argv.push('--root', opts.root);
  if (opts.iidfile !== undefined) argv.push('--iidfile', opts.iidfile);
  argv.push(opts.context.startsWith('-') ? `./${opts.context}` : opts.context);
  return argv;
}

/** `-o` text of a typed spec; the CLI splits on commas, so no value may hold one. */
function outputText(o: OutputSpec): string {
  const parts = [`type=${o.type}`];
  if (!isRegistryOutput(o)) parts.push(`dest=${o.dest}`);
  if ('names' in o && o.names) for (const n of o.names) parts.push(`name=${n}`);
  if ('preserveSpecial' in o && o.preserveSpecial === true) parts.push('preserve-special=true');
  for (const p of parts) {
    if (p.includes(',')) throw new InvalidOptionError(`outputs: ${JSON.stringify(p)} contains a comma, which -o cannot carry`);
  }
  return parts.join(',');
}

/** The outputs a successful build wrote, as typed specs with absolute paths. */
function writtenOutputs(opts: StowageBuildOptions, cwd: string): OutputSpec[] {
  const specs = (opts.outputs ?? []).map((o) => (typeof o === 'string' ? parseOutput(o) : o));
  if (opts.push) specs.push({ type: 'registry' });
  return specs.map((o): OutputSpec => {
    if (isRegistryOutput(o)) return { type: 'registry', names: (o.names ?? opts.tags ?? []).map((n) => parseReference(n).toString()) };
    return { ...o, dest: resolve(cwd, o.dest) };
  });
}

/** Runs a build; resolves with its result, rejects with {@link BuildFailedError} or {@link AbortError}. */
export function build(opts: StowageBuildOptions): Promise<StowageBuildResult> {
  return startBuild(opts).result;
}

/**
 * Starts a build and returns at once. `for await (const event of job)`
 * yields the events from the moment the iterator is created (create it in
 * the same tick to see them all) and, if the build failed, throws its error
 * after the last one; `job.result` is the same promise `build()` returns.
 */
export function startBuild(opts: StowageBuildOptions): BuildJob {
  const subscribers = new Set<(e: ProgressEvent | null, err?: unknown) => void>();
  let finished: { err?: unknown } | undefined;
  let pid: number | undefined;
  const publish = (e: ProgressEvent) => {
    opts.onEvent?.(e);
    for (const s of subscribers) s(e);
  };
  const result = run(opts, publish, (p) => (pid = p));
  result.then(
    () => {
      finished = {};
      for (const s of subscribers) s(null);
    },
    (err: unknown) => {
      finished = { err };
      for (const s of subscribers) s(null, err);
    },
  );
  return {
    result,
    get pid() {
      return pid;
    },
    [Symbol.asyncIterator]: () => iterate(subscribers, () => finished),
  };
}

async function* iterate(
  subscribers: Set<(e: ProgressEvent | null, err?: unknown) => void>,
  finished: () => { err?: unknown } | undefined,
): AsyncGenerator<ProgressEvent> {
  const queue: ProgressEvent[] = [];
  let end: { err?: unknown } | undefined = finished();
  let wake: (() => void) | undefined;
  const sub = (e: ProgressEvent | null, err?: unknown) => {
    if (e) queue.push(e);
    else end = err === undefined ? {} : { err };
    wake?.();
  };
  subscribers.add(sub);
  try {
    for (;;) {
      while (queue.length > 0) yield queue.shift()!;
      if (end) {
        if ('err' in end) throw end.err;
        return;
      }
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
  } finally {
    subscribers.delete(sub);
  }
}

async function run(opts: StowageBuildOptions, publish: (e: ProgressEvent) => void, onPid: (pid: number | undefined) => void): Promise<StowageBuildResult> {
  const started = Date.now();
  const signal = opts.signal;
  if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
  const cwd = resolve(opts.cwd ?? process.cwd());
  const tmp = opts.metadataFile === undefined ? await mkdtemp(join(tmpdir(), 'stowage-build-')) : undefined;
  try {
    const metadataFile = opts.metadataFile !== undefined ? resolve(cwd, opts.metadataFile) : join(tmp!, 'metadata.json');
    const argv = buildArgv(opts, metadataFile);
    const outputs = writtenOutputs(opts, cwd);
    const exit = await runCli(opts, argv, cwd, publish, onPid);
    if (exit.aborted && exit.code !== 0) throw new AbortError(undefined, { cause: signal?.reason });
    if (exit.listenerError !== undefined) throw exit.listenerError;
    if (exit.code !== 0 || !exit.summary) {
      const e = exit.error;
      const text = exit.stderr.trim();
      const message = e?.message ?? (text ? text.split('\n').slice(-5).join('\n') : `stowage exited with ${exit.signal ?? `code ${exit.code}`}`);
      throw new BuildFailedError(message, exit.code ?? 128 + (exit.signal ? (constants.signals[exit.signal] ?? 0) : 0), exit.stderr, {
        ...(e?.code !== undefined ? { code: e.code } : {}),
        ...(e?.file !== undefined ? { file: e.file } : {}),
        ...(e?.line !== undefined ? { line: e.line } : {}),
      });
    }
    const meta = JSON.parse(await readFile(metadataFile, 'utf8')) as Record<string, unknown>;
    const configDigest = meta['containerimage.config.digest'];
    if (typeof configDigest !== 'string' || meta['containerimage.digest'] !== exit.summary.digest) {
      throw new BuildFailedError(`the build's metadata file ${metadataFile} does not match its summary`, 0, exit.stderr);
    }
    return { digest: exit.summary.digest, configDigest, size: exit.summary.size, outputs, durationMs: Date.now() - started };
  } finally {
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  }
}

interface CliExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  aborted: boolean;
  summary?: Extract<ProgressEvent, { type: 'summary' }>;
  error?: Extract<ProgressEvent, { type: 'error' }>;
  stderr: string;
  /** `onEvent` threw: the build was stopped and this is the rejection. */
  listenerError?: unknown;
}

function runCli(opts: StowageBuildOptions, argv: string[], cwd: string, publish: (e: ProgressEvent) => void, onPid: (pid: number | undefined) => void): Promise<CliExit> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(opts.node ?? process.execPath, [opts.cli ?? defaultCliPath(), ...argv], {
      cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onPid(child.pid);
    const exit: CliExit = { code: null, signal: null, aborted: false, stderr: '' };
    const keepText = (line: string) => {
      if (exit.stderr.length < STDERR_KEEP) exit.stderr += `${line.slice(0, STDERR_KEEP - exit.stderr.length)}\n`;
    };
    let killTimer: NodeJS.Timeout | undefined;
    const stop = () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      killTimer ??= setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs ?? 30_000);
      killTimer.unref();
    };
    const onAbort = () => {
      exit.aborted = true;
      stop();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const lines = createInterface({ input: child.stderr, crlfDelay: Infinity });
    lines.on('line', (line) => {
      const event = parseEvent(line);
      if (!event) return keepText(line);
      if (event.type === 'summary') exit.summary = event;
      if (event.type === 'error') exit.error = event;
      if (exit.listenerError !== undefined) return;
      try {
        publish(event);
      } catch (err) {
        exit.listenerError = err;
        stop();
      }
    });
    child.stdout.on('data', (chunk: Buffer) => keepText(chunk.toString('utf8').trimEnd()));

    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      if (killTimer) clearTimeout(killTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolvePromise(exit);
    };
    child.on('error', (err) => {
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      reject(new BuildFailedError(`cannot start the stowage CLI: ${err.message}`, 1, ''));
    });
    child.on('exit', (code, sig) => {
      exit.code = code;
      exit.signal = sig;
      // Normally stderr ends with the process; a descendant holding it open must not hang the caller.
      setTimeout(finish, 2000).unref();
    });
    lines.on('close', () => {
      if (child.exitCode !== null || child.signalCode !== null) finish();
      else child.once('exit', () => setImmediate(finish));
    });
  });
}

/** One rawjson line as an event; anything else (not JSON, not an event) is plain text. */
function parseEvent(line: string): ProgressEvent | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const v = JSON.parse(line) as unknown;
    if (typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string' && typeof (v as { time?: unknown }).time === 'number') {
      return v as ProgressEvent;
    }
  } catch {
    // not an event
  }
  return undefined;
}
