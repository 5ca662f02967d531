import { stepBounds } from '../runtime/bounds.js';
import { execFile } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { promisify } from 'node:util';
import type { Snapshotter } from '@stowage/snapshotter';
import { InstructionError, NotSupportedError } from '../errors.js';
import { runStep, type RunStepOptions } from '../runtime/runc.js';
import type { RuntimeMount, StepProcess } from '../runtime/spec.js';
import { openSecretScratch, type SecretScratch } from '../runtime/secret-scratch.js';
import { BindSourceError, resolveContextSource, stageContextSource } from './bind-source.js';
import { CacheMounts, type CacheLease } from './cache-mounts.js';
import type { IgnoreMatcher } from './dockerignore.js';
import { MountSpecError, parseMountSpec, type BindMountSpec, type CacheMountSpec, type MountSpec, type SecretMountSpec } from './mount-spec.js';
import type { SecretStore } from './secrets.js';
import { resolveInRoot } from './secure-path.js';

const execFileAsync = promisify(execFile);

/** What a mount's `from=` names, once built or pulled: its snapshot (none for scratch) and its identity for the cache key. */
export interface MountFrom {
  snapshot: string | undefined;
  /** The chain ID, or `empty`: names the content exactly. */
  identity: string;
}

export interface RunMountsOptions {
  contextDir: string;
  ignore: IgnoreMatcher;
  /** This build's scratch space (removed when the build ends). */
  buildTmp: string;
  /** `<root>/cache-mounts`, shared by every build on the root. */
  cacheRoot: string;
  snapshots: Snapshotter;
  secrets: SecretStore;
  /**
   * Digest of the context below `rel` as the build's context index has it
   * (files unchanged since the last build are not read again).
   */
  contextDigest?: (rel: string) => Promise<string>;
}

export interface PrepareOptions {
  expand: (value: string) => string;
  workdir: string;
  /** Builds or pulls what `from=` names; the engine knows stages and images. */
  resolveFrom: (from: string) => Promise<MountFrom>;
}

/** The mounts of one RUN, live while its container runs. */
export interface ActiveMounts {
  mounts: RuntimeMount[];
  /** `NAME=value` of `env=` secrets, for the process only (never the cache key or history). */
  env: string[];
  /** Set when `env` is not empty: a tmpfs directory for the bundle that carries those values. */
  privateDir?: string;
  release(): Promise<void>;
}

/** The mounts of one RUN, parsed and with their sources resolved, before the cache lookup. */
export interface PreparedMounts {
  /** What the cache key takes from the mounts: types, targets, options, source digests; never a secret value. */
  keyInputs: unknown[];
  /** Bind mounts from the build context: target → source path in the context, to name changed files. */
  contextBinds: Map<string, string>;
  /** Sets the mounts up for the step (cache locks, secret files, views); `release` after the run. */
  activate(log: (line: string) => void): Promise<ActiveMounts>;
  /** Drops what `prepare` staged (context copies). */
  release(): Promise<void>;
}

type Planned =
  | { spec: BindMountSpec; context?: { path: string }; from?: MountFrom }
  | { spec: CacheMountSpec; from?: MountFrom }
  | { spec: SecretMountSpec }
  | { spec: Extract<MountSpec, { type: 'tmpfs' }> };

const depth = (target: string): number => target.split('/').filter(Boolean).length;

/**
 * `RUN --mount` for one build: parses the specs, stages bind sources, hands
 * out cache directories and secret files, and cleans up after each step.
 * Nothing a mount brings in is written to the rootfs; runc.ts removes the
 * mount points it had to create.
 */
export class RunMounts {
  private readonly caches: CacheMounts;
  private secretScratch: Promise<SecretScratch> | undefined;
  private counter = 0;

  constructor(private readonly opts: RunMountsOptions) {
    this.caches = new CacheMounts(opts.cacheRoot, opts.buildTmp);
  }

  /** Releases the secrets tmpfs; called when the build ends (also when interrupted). */
  async close(): Promise<void> {
    const scratch = this.secretScratch;
    this.secretScratch = undefined;
    if (scratch) await (await scratch.catch(() => undefined))?.close();
  }

  private scratch(log: (line: string) => void): Promise<SecretScratch> {
    this.secretScratch ??= openSecretScratch(this.opts.buildTmp).then((s) => {
      if (s.kind === 'disk') log('warning: no tmpfs could be mounted or found ($XDG_RUNTIME_DIR, /dev/shm): secrets are staged on disk under the build\'s scratch directory for the duration of the build');
      return s;
    });
    return this.secretScratch;
  }

  async prepare(raws: readonly string[], p: PrepareOptions): Promise<PreparedMounts> {
    const planned: Planned[] = [];
    const staged: string[] = [];
    const release = async () => {
      for (const dir of staged) await rm(dir, { recursive: true, force: true });
    };
    try {
      const targets = new Set<string>();
      for (const raw of raws) {
        let spec: MountSpec;
        try {
          spec = parseMountSpec(raw, { expand: p.expand, workdir: p.workdir });
        } catch (err) {
          if (err instanceof MountSpecError) throw new InstructionError(`RUN --mount=${raw}: ${err.message}`);
          throw err;
        }
        if (spec.type === 'ssh') throw new NotSupportedError('RUN --mount=type=ssh is not supported yet');
        const target = 'target' in spec ? spec.target : undefined;
        if (target !== undefined) {
          if (targets.has(target)) throw new InstructionError(`RUN --mount=${raw}: target ${target} is mounted more than once`);
          targets.add(target);
        }
        switch (spec.type) {
          case 'bind':
            if (spec.from !== undefined) planned.push({ spec, from: await p.resolveFrom(spec.from) });
            else {
              try {
                const rel = await resolveContextSource(this.opts.contextDir, spec.source);
                // Read-only and nothing to filter out: the context itself, bound read-only. Else a staged copy.
                const direct = spec.readonly && this.opts.ignore.empty;
                let path = posix.join(this.opts.contextDir, rel);
                if (!direct) {
                  const dir = await mkdtemp(posix.join(this.opts.buildTmp, 'bind-'));
                  staged.push(dir);
                  path = posix.join(dir, 'src');
                }
                // The context itself needs no staging: its digest comes from the build's context index when there is one.
                const digest = direct && this.opts.contextDigest
                  ? await this.opts.contextDigest(rel)
                  : await stageContextSource(this.opts.contextDir, rel, this.opts.ignore, direct ? undefined : path, !spec.readonly);
                planned.push({ spec, context: { path }, from: { snapshot: undefined, identity: digest } });
              } catch (err) {
                if (err instanceof BindSourceError) throw new InstructionError(`RUN --mount=${raw}: ${err.message}`);
                throw err;
              }
            }
            break;
          case 'cache':
            planned.push(spec.from !== undefined ? { spec, from: await p.resolveFrom(spec.from) } : { spec });
            break;
          case 'secret':
            // Checked before the cache lookup, so a missing required secret fails the same way every time.
            if (spec.required && !this.opts.secrets.has(spec.id)) {
              throw new InstructionError(`secret "${spec.id}" is required but was not given: pass --secret id=${spec.id},src=FILE or --secret id=${spec.id},env=VARIABLE`);
            }
            planned.push({ spec });
            break;
          case 'tmpfs':
            planned.push({ spec });
            break;
        }
      }
    } catch (err) {
      await release();
      throw err;
    }
    return {
      keyInputs: planned.map(keyInput),
      contextBinds: new Map(planned.flatMap((p) => (p.spec.type === 'bind' && 'context' in p && p.context ? [[p.spec.target, p.spec.source] as const] : []))),
      activate: (log) => this.activate(planned, log),
      release,
    };
  }

  private async activate(planned: Planned[], log: (line: string) => void): Promise<ActiveMounts> {
    const mounts: RuntimeMount[] = [];
    const env: string[] = [];
    const cleanups: (() => Promise<void>)[] = [];
    let privateDir: string | undefined;
    // One lease per cache id: a second mount of the same id in this step must not wait for the first's lock.
    const leases = new Map<string, CacheLease>();
    const release = async () => {
      for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
    };
    try {
      // Locks in one order (by id), so two steps that lock the same caches cannot deadlock.
      const order = [...planned].sort((a, b) => {
        const ka = a.spec.type === 'cache' ? a.spec.id : '';
        const kb = b.spec.type === 'cache' ? b.spec.id : '';
        return ka < kb ? -1 : ka > kb ? 1 : 0;
      });
      for (const item of order) {
        switch (item.spec.type) {
          case 'bind': {
            const bind = item as Extract<Planned, { spec: BindMountSpec }>;
            const spec = bind.spec;
            let source: string;
            if (bind.context) source = bind.context.path;
            else {
              const view = await this.viewOf(bind.from!, cleanups);
              source = await resolveInRoot(view, spec.source);
              if (!(await stat(source).then(() => true, () => false))) throw new InstructionError(`RUN --mount=type=bind,from=${spec.from}: source ${spec.source} not found in ${spec.from}`);
              if (!spec.readonly) {
                // Writes are allowed but must reach neither the stage's snapshot nor anything else: a throwaway copy.
                const dir = await mkdtemp(posix.join(this.opts.buildTmp, 'bind-rw-'));
                cleanups.push(() => rm(dir, { recursive: true, force: true }));
                await execFileAsync('cp', ['-a', '--reflink=auto', '--', source, posix.join(dir, 'src')]);
                source = posix.join(dir, 'src');
              }
            }
            mounts.push({ destination: spec.target, type: 'bind', source, options: ['rbind', spec.readonly ? 'ro' : 'rw'] });
            break;
          }
          case 'cache': {
            const spec = item.spec;
            const from = 'from' in item ? item.from : undefined;
            let lease = leases.get(spec.id);
            if (lease) {
              mounts.push({ destination: spec.target, type: 'bind', source: lease.path, options: ['rbind', spec.readonly ? 'ro' : 'rw'] });
              break;
            }
            try {
              lease = await this.caches.acquire(spec, {
                ...(from ? { seed: async () => this.seedPath(from, spec, cleanups) } : {}),
                onWait: () => log(`waiting for the lock on cache mount id=${spec.id} (sharing=locked)`),
              });
            } catch (err) {
              if (err instanceof InstructionError) throw err;
              throw new InstructionError(`RUN --mount=type=cache,id=${spec.id}: ${(err as Error).message}`);
            }
            const held = lease;
            leases.set(spec.id, held);
            cleanups.push(() => held.release());
            mounts.push({ destination: spec.target, type: 'bind', source: lease.path, options: ['rbind', spec.readonly ? 'ro' : 'rw'] });
            break;
          }
          case 'secret': {
            const spec = item.spec;
            const value = await this.opts.secrets.read(spec.id);
            if (value === undefined) break; // not required (checked in prepare): no mount, as in BuildKit
            const scratch = await this.scratch(log);
            if (spec.env !== undefined) {
              env.push(`${spec.env}=${value.toString('utf8')}`);
              privateDir = scratch.path;
            }
            if (spec.target !== undefined) {
              const file = posix.join(scratch.path, `secret-${process.pid}-${++this.counter}`);
              cleanups.push(() => rm(file, { force: true }));
              await writeFile(file, value, { mode: 0o600 });
              await chmod(file, spec.mode);
              try {
                await chown(file, spec.uid, spec.gid);
              } catch (err) {
                throw new InstructionError(`RUN --mount=type=secret,id=${spec.id}: cannot give the secret to uid ${spec.uid} gid ${spec.gid}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
              }
              mounts.push({ destination: spec.target, type: 'bind', source: file, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
            }
            break;
          }
          case 'tmpfs': {
            const spec = item.spec;
            // Bounded like /tmp (runtime/bounds.ts): without size= the kernel allows half of the RAM.
            const options = ['nosuid', 'nodev', 'mode=1777', `size=${spec.size ?? stepBounds().tmpfsBytes}`, ...(spec.readonly ? ['ro'] : [])];
            mounts.push({ destination: spec.target, type: 'tmpfs', source: 'tmpfs', options });
            break;
          }
        }
      }
    } catch (err) {
      await release();
      throw err;
    }
    // Parents before children (a cache inside a bound directory), otherwise in the order written.
    const sorted = mounts.map((m, i) => ({ m, i })).sort((a, b) => depth(a.m.destination) - depth(b.m.destination) || a.i - b.i).map((x) => x.m);
    return { mounts: sorted, env, ...(privateDir !== undefined ? { privateDir } : {}), release };
  }

  /** A read-only view of what `from=` built (an empty directory for scratch), released with the step. */
  private async viewOf(from: MountFrom, cleanups: (() => Promise<void>)[]): Promise<string> {
    if (from.snapshot === undefined) {
      const dir = await mkdtemp(posix.join(this.opts.buildTmp, 'empty-'));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      return dir;
    }
    const view = await this.opts.snapshots.view(from.snapshot);
    cleanups.push(() => this.opts.snapshots.release(view));
    return view;
  }

  /** The seed of a new cache directory: `source` inside what `from=` names. */
  private async seedPath(from: MountFrom, spec: CacheMountSpec, cleanups: (() => Promise<void>)[]): Promise<string | undefined> {
    const view = await this.viewOf(from, cleanups);
    const path = await resolveInRoot(view, spec.source);
    if (!(await stat(path).then(() => true, () => false))) throw new InstructionError(`RUN --mount=type=cache,from=${spec.from}: source ${spec.source} not found in ${spec.from}`);
    return path;
  }
}

/** The cache-key part of one mount. Secrets by id and placement only, as BuildKit keys them. */
function keyInput(item: Planned): unknown {
  const spec = item.spec;
  switch (spec.type) {
    case 'bind':
      return { type: 'bind', target: spec.target, source: spec.source, readonly: spec.readonly, from: 'from' in item ? item.from?.identity : undefined };
    case 'cache':
      return {
        type: 'cache', target: spec.target, id: spec.id, sharing: spec.sharing, mode: spec.mode, uid: spec.uid, gid: spec.gid,
        readonly: spec.readonly, ...('from' in item && item.from ? { from: item.from.identity, source: spec.source } : {}),
      };
    case 'secret':
      return { type: 'secret', id: spec.id, target: spec.target, env: spec.env, required: spec.required, mode: spec.mode, uid: spec.uid, gid: spec.gid };
    case 'tmpfs':
      return { type: 'tmpfs', target: spec.target, size: spec.size, readonly: spec.readonly };
  }
}

/**
 * Runs a RUN step with its mounts set up around it: cache leases, secret
 * files and views held only while the container runs. `env=` secrets are
 * added to the process environment here and nowhere else; the container's
 * config then lives on the secrets tmpfs.
 */
export async function runStepWithMounts(mounts: PreparedMounts, rootfs: string, proc: StepProcess, opts: RunStepOptions & { output: (line: string) => void }): Promise<number> {
  const active = await mounts.activate(opts.output);
  try {
    let env = proc.env;
    if (active.env.length > 0) {
      const names = new Set(active.env.map((kv) => kv.slice(0, kv.indexOf('='))));
      env = [...proc.env.filter((kv) => !names.has(kv.slice(0, kv.indexOf('=')))), ...active.env];
    }
    return await runStep(rootfs, { ...proc, env }, {
      ...opts,
      extraMounts: [...(opts.extraMounts ?? []), ...active.mounts],
      ...(active.privateDir !== undefined ? { privateDir: active.privateDir } : {}),
    });
  } finally {
    await active.release();
  }
}
