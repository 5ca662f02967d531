import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { posix, resolve as resolvePath, basename, dirname } from 'node:path';
import { Readable } from 'node:stream';
import type { Stats } from 'node:fs';
import {
  ContentStore, IngestInterruptedError, MediaTypes, RegistryClient, Semaphore, hostPlatform, parseReference, withDigest,
  type Descriptor, type ImageConfig, type Platform,
  crashPoint,
} from '@stowage/registry-client';
import { Snapshotter, applyLayer, applyLayerFile, type ApplyResult, type SnapshotterBackend } from '@stowage/snapshotter';
import { DownloadFeeds } from './download-feeds.js';
import { MAX_DOCKERFILE_BYTES, ShellLex, parseInstructions, type Command, type DockerfileInstructions } from '../frontend/index.js';
import { readBounded } from './bounded-read.js';
import { BuildError, CopySourceError, StageNotFoundError, InstructionError, InvalidOptionError, NotSupportedError, RunFailedError, StepCancelledError, withLocation } from '../errors.js';
import { onInterrupt } from '../interrupt.js';
import type { NetworkMode, RuntimeMount } from '../runtime/spec.js';
import { isolatedNetworkSupport } from '../runtime/network.js';
import { insecureStep, requestedNetwork, type BuildNetwork, type Entitlement } from './entitlements.js';
import { nextChainId } from './chain-id.js';
import { copyInto, mkdirOwned, CopyError } from './copy.js';
import { BuildCache, canonicalJson, changedInputs, type CacheRecord, type StepIdentity, type StepTrace } from './cache.js';
import { indexContext, sourcePrefix, type ContextIndex } from './context-index.js';
import { parseChmod, ChmodError } from './chmod.js';
import { loadDockerignore, IgnorePatternError, type IgnoreMatcher } from './dockerignore.js';
import { ArchiveError } from './archive.js';
import { prepareAddSources, refuseRemoteForCopy, toBuildError, type AddSources } from './add-remote.js';
import { redactUrl, redactUrlsIn } from './redact-url.js';
import { EnvList, DEFAULT_PATH, addHistory, cloneConfig, containerConfig, exposedPorts, PortSpecError, scratchConfig } from './image-config.js';
import { planBuild, stageNamedLike, type BuildPlan, type PlannedStage, type Source } from './plan.js';
import { formatPlatform, platformArgs, parsePlatform } from './platform.js';
import { BuildArgScope } from './args.js';
import { availableParallelism } from 'node:os';
import { Progress, type ProgressStep } from './progress.js';
import { LinkEscapeError, realpathWithin } from './secure-path.js';
import { openStateRoot, type StateRoot } from './state-root.js';
import { ImageStore, imageRecord } from './images.js';
import { acquireLease } from './leases.js';
import { lockSharedWork } from './shared-work.js';
import { resolveOwner, resolveUser } from './users.js';
import { buildLinkedLayer, linkedChown, type LinkedLayer } from './link.js';
import { diffIntoStore } from './step-layer.js';
import { RunMounts, runStepWithMounts, type MountFrom } from './run-mounts.js';
import { SecretStore, type SecretSource } from './secrets.js';
import { fullRootNote, noSpaceError } from './disk-space.js';

export interface BuildOptions {
  contextDir: string;
  /** Path of the Dockerfile; defaults to `<context>/Dockerfile`. */
  dockerfile?: string;
  target?: string;
  buildArgs?: Record<string, string>;
  stateRoot: string;
  mirrors?: Record<string, string[]>;
  insecureRegistries?: string[];
  /** Target platform, default the host's. */
  platform?: string;
  /** `default`: the sandbox network when this user can have one, else the host's with a warning. */
  network?: 'default' | 'host' | 'none';
  /** `--allow`: what the Dockerfile may lift of the sandbox. */
  allow?: Entitlement[];
  snapshotter?: SnapshotterBackend | 'auto';
  /** Files owned by other ids cannot be created (single-id user namespace). */
  ignoreOwnership?: boolean;
  progress: Progress;
  /** Steps and pulls running at once; default: the number of CPUs. */
  parallelism?: number;
  /** Run every step, ignoring the build cache (results are still recorded). */
  noCache?: boolean;
  /** Stages (by name or index) whose steps ignore the build cache. */
  noCacheFilter?: string[];
  /** Secrets for `RUN --mount=type=secret` (`--secret`). */
  secrets?: SecretSource[];
}

/** A layer of the image being built, with what the config and manifest need. */
export interface LayerRef {
  descriptor: Descriptor;
  diffID: string;
}

/** The result of a stage: a committed snapshot (none for an empty scratch), its layers and config. */
export interface StageResult {
  snapshot: string | undefined;
  layers: LayerRef[];
  config: ImageConfig;
  /** ARGs declared in the stage, which a stage built FROM it inherits (empty for images). */
  args: ReadonlyMap<string, string>;
  /**
   * ARGs whose declaration came after an ENV of the same name: from there on
   * their value is what instructions expand and RUN sees, while the config
   * keeps ENV's (BuildKit adds both to one environment, the later wins).
   */
  argsOverEnv?: ReadonlySet<string>;
  /**
   * Why this result may differ from the last build's, for explaining cache
   * misses of steps that build on it: the stage's latest miss, else its base's.
   */
  changeReason?: string;
}

export interface BuildResult {
  image: StageResult;
  store: ContentStore;
  state: StateRoot;
  stageName: string;
  /** Every image the build pulled (FROM, COPY --from), as written: a push can mount their layers. */
  baseImages: string[];
  close(): Promise<void>;
}

/** Mutable state while a stage's instructions run. */
interface StageState extends StageResult {
  /** ARGs declared in this stage, with their values. */
  args: Map<string, string>;
  argsOverEnv: Set<string>;
  /** Shell for shell-form RUN/CMD/ENTRYPOINT, from SHELL. */
  shell: string[];
  /** The stage's name, or its index. */
  label: string;
  /** Index of the instruction being run in the stage (ONBUILD triggers first). */
  position: number;
}

/** What a cache miss can say about inputs that changed, beyond their names. */
interface ChangeHints {
  /** The context paths a COPY/ADD reads, to name the files that changed. */
  contextPrefixes?: string[];
  /** Why a `--from` stage's result changed. */
  from?: string;
  /** RUN bind mounts from the context: target → source path, to name the files that changed. */
  contextBinds?: Map<string, string>;
}

const DEFAULT_SHELL = ['/bin/sh', '-c'];

/** Two traced lists of objects compared by `field` (a heredoc's name, a mount's target): each entry added, removed or changed, sorted. */
function changedEntries(before: unknown, after: unknown, field: string): { id: string; change: 'added' | 'removed' | 'changed' }[] {
  const byId = (list: unknown) => new Map((Array.isArray(list) ? list : []).map((e) => [String((e as Record<string, unknown>)[field] ?? ''), canonicalJson(e)] as const));
  const a = byId(before);
  const b = byId(after);
  return [...new Set([...a.keys(), ...b.keys()])]
    .sort()
    .filter((id) => a.get(id) !== b.get(id))
    .map((id) => ({ id, change: !a.has(id) ? 'added' : !b.has(id) ? 'removed' : 'changed' }));
}

/** The COPY/ADD heredocs whose body changed, by name (`heredoc <<EOF changed`). */
function changedHeredocs(before: unknown, after: unknown): string[] {
  const changed = changedEntries(before, after, 'name');
  return changed.length > 0 ? changed.map((e) => `heredoc <<${e.id} changed`) : ['heredocs changed'];
}

/** Docker-schema layer media types become their byte-identical OCI names on export. */
function ociLayerMediaType(mediaType: string): string {
  switch (mediaType) {
    case MediaTypes.DOCKER_LAYER_GZIP: return MediaTypes.OCI_LAYER_GZIP;
    case 'application/vnd.docker.image.rootfs.diff.tar': return MediaTypes.OCI_LAYER_TAR;
    default: return mediaType;
  }
}

/**
 * Runs a Dockerfile build: plans the stages the target needs, runs them
 * (independent stages concurrently), and returns the target stage's image.
 * The caller exports it and then calls `close()`.
 */
export async function buildImage(opts: BuildOptions): Promise<BuildResult> {
  const progress = opts.progress;
  const contextDir = resolvePath(opts.contextDir);
  const dockerfilePath = resolvePath(opts.dockerfile ?? posix.join(contextDir, 'Dockerfile'));
  const file = basename(dockerfilePath);
  let text: string;
  try {
    // One byte over the limit is enough for the parser to refuse it with a line number.
    // Read from its own directory only, as BuildKit does: never through a link out of it.
    text = await readBounded(await realpathWithin(dockerfilePath, dirname(dockerfilePath)), MAX_DOCKERFILE_BYTES + 1);
  } catch (err) {
    if (err instanceof LinkEscapeError) throw new BuildError('E_DOCKERFILE_LINK', `Dockerfile: ${err.message}`);
    const code = (err as NodeJS.ErrnoException).code;
    // The cause in words first; the path as the OS saw it (relative -f paths are resolved from the current directory).
    if (code === 'ENOENT') throw new BuildError('E_DOCKERFILE_NOT_FOUND', `Dockerfile not found: ${dockerfilePath} does not exist${opts.dockerfile === undefined ? ' (give another with -f)' : ''}`);
    if (code === 'EISDIR') throw new BuildError('E_DOCKERFILE_NOT_FOUND', `Dockerfile not found: ${dockerfilePath} is a directory`);
    throw new BuildError('E_DOCKERFILE_NOT_FOUND', `cannot read Dockerfile ${dockerfilePath}: ${code ?? (err as Error).message}`);
  }
  const df = withFile(() => parseInstructions(text, { file }), file);
  // `<Dockerfile>.dockerignore` beside the Dockerfile, else `.dockerignore` at the context root.
  const ignore = await loadDockerignore(contextDir, dockerfilePath).catch((err: Error) => {
    throw err instanceof IgnorePatternError ? new InvalidOptionError(`.dockerignore: ${err.message}`) : err;
  });

  const build = hostPlatform();
  let target = build;
  if (opts.platform) {
    try {
      target = parsePlatform(opts.platform);
    } catch (err) {
      throw new InvalidOptionError(`--platform: ${(err as Error).message}`);
    }
  }
  const epoch = sourceDateEpoch(opts.buildArgs ?? {});
  const lex = new ShellLex(df.escapeToken);
  const args = new BuildArgScope(opts.buildArgs ?? {}, platformArgs(target, build), df.metaArgs, (w, env) => lex.processWord(w, env), file);
  const plan = planBuild(df, args.global, file, opts.target);
  const noCacheFilter = new Set(opts.noCacheFilter ?? []);
  for (const name of noCacheFilter) {
    if (!df.stages.some((s) => s.name === name.toLowerCase() || String(s.index) === name)) {
      throw new InvalidOptionError(`--no-cache-filter ${name}: no stage of that name in ${file}`);
    }
  }

  // A lease for the build's lifetime: `stowage prune` waits for it (and the build for a running prune).
  const releaseLease = await acquireLease(opts.stateRoot, (pid) => progress.note(`waiting for stowage prune (pid ${pid}) to finish`));
  const state = await openStateRoot(opts.stateRoot);
  const store = await ContentStore.open(state.content);
  // Partial downloads of builds that died long ago are never resumed: drop them.
  await store.cleanupIngest();
  const snapshots = await Snapshotter.open(state.snapshots, { backend: opts.snapshotter ?? 'auto' });
  const registries = new Map<string, RegistryClient>();
  // One client per platform: `FROM --platform=…` may ask for another one than the target.
  const registryFor = (platform: Platform): RegistryClient => {
    const key = formatPlatform(platform);
    let client = registries.get(key);
    if (!client) {
      client = new RegistryClient({ store, platform, mirrors: opts.mirrors ?? {}, insecureRegistries: opts.insecureRegistries ?? [], log: (line) => progress.note(line) });
      registries.set(key, client);
    }
    return client;
  };
  // The context's files after .dockerignore, indexed once per build when a COPY/ADD or a bind mount needs them.
  let contextIndexRun: Promise<ContextIndex> | undefined;
  const contextIndex = (): Promise<ContextIndex> => {
    contextIndexRun ??= indexContext(contextDir, ignore, posix.join(state.root, 'cache', 'contexts'), state.buildTmp);
    return contextIndexRun;
  };
  const runMounts = new RunMounts({
    contextDir, ignore, buildTmp: state.buildTmp, cacheRoot: state.cacheMounts, snapshots, secrets: new SecretStore(opts.secrets ?? []),
    contextDigest: async (rel) => (await contextIndex()).digestFor([rel]),
  });
  const close = async () => {
    removeInterruptHook();
    await runMounts.close();
    await snapshots.close();
    await rm(state.buildTmp, { recursive: true, force: true });
    await releaseLease();
  };
  // Interrupted (SIGINT/SIGTERM): after the running container is killed, release mounts and scratch space too.
  // Everything this build holds goes, as the next start would remove it after a crash: active
  // snapshots (also one a pull is unpacking into), partial downloads, the lease.
  const removeInterruptHook = onInterrupt(async () => {
    await runMounts.close().catch(() => undefined);
    await snapshots.discardActive().catch(() => undefined);
    await snapshots.close().catch(() => undefined);
    await store.discardOwnIngest().catch(() => undefined);
    await rm(state.buildTmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
    await releaseLease();
  });
  progress.note(`stowage: snapshotter ${snapshots.backend}, state ${state.root}`);

  const engine = new Engine({
    df, plan, file, contextDir, ignore, args, target, state, store, snapshots, registryFor, progress, runMounts, images: new ImageStore(posix.join(state.root, 'images')),
    network: opts.network ?? 'default', allow: opts.allow ?? [], ignoreOwnership: opts.ignoreOwnership ?? false,
    steps: new Semaphore(Math.max(1, opts.parallelism ?? availableParallelism())),
    cache: new BuildCache(posix.join(state.root, 'cache'), state.buildTmp),
    cacheBypass: (stage) => {
      if (opts.noCache) return '--no-cache';
      return noCacheFilter.has(stage) ? `--no-cache-filter ${stage}` : undefined;
    },
    dockerfilePath, epoch, contextIndex,
  });
  try {
    const image = await engine.stage(plan.target);
    // SOURCE_DATE_EPOCH is the build's own argument (BuildKit's too): never "unused".
    const unused = args.unused().filter((name) => name !== 'SOURCE_DATE_EPOCH');
    if (unused.length > 0) progress.note(`warning: build arguments not consumed by any instruction: ${unused.join(', ')}`);
    const targetStage = plan.stages[plan.target]!.stage;
    return { image, store, state, stageName: targetStage.name ?? String(targetStage.index), baseImages: engine.pulledImages(), close };
  } catch (err) {
    // Let running stages reach their next instruction before their snapshots go away.
    await engine.settle();
    await close().catch(() => undefined);
    // A RUN cancelled because another stage failed may reach here first: that other failure is the build's error.
    throw noSpaceError(err instanceof StepCancelledError ? engine.firstFailure() ?? err : err, state.root);
  }
}

/**
 * The build's time, in seconds since 1970: image `created`, history times,
 * and the clamp for file times in new layers. SOURCE_DATE_EPOCH from
 * `--build-arg` or the environment; else 0, so that the same inputs give the
 * same image digest on any machine and any day (reproducible by default).
 */
function sourceDateEpoch(buildArgs: Record<string, string>): number {
  const raw = buildArgs.SOURCE_DATE_EPOCH ?? process.env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return 0;
  if (!/^\d{1,12}$/.test(raw)) throw new InvalidOptionError(`SOURCE_DATE_EPOCH=${raw}: expected whole seconds since 1970`);
  return Number(raw);
}

function withFile<T>(fn: () => T, file: string): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof Error) (err as Error & { file?: string }).file ??= file;
    throw err;
  }
}

interface EngineContext {
  df: DockerfileInstructions;
  plan: BuildPlan;
  file: string;
  contextDir: string;
  /** What .dockerignore leaves out of the context (COPY/ADD from the context only). */
  ignore: IgnoreMatcher;
  args: BuildArgScope;
  target: Platform;
  state: StateRoot;
  store: ContentStore;
  snapshots: Snapshotter;
  registryFor: (platform: Platform) => RegistryClient;
  /** Images on this root: those `stowage pull` fetched are used without asking the registry. */
  images: ImageStore;
  progress: Progress;
  /** Bounds the steps and pulls running at once across concurrent stages. */
  steps: Semaphore;
  cache: BuildCache;
  contextIndex: () => Promise<ContextIndex>;
  /** Why the build cache is not used for a stage's steps (`--no-cache`…), or undefined when it is. */
  cacheBypass: (stage: string) => string | undefined;
  dockerfilePath: string;
  /** SOURCE_DATE_EPOCH, or 0: see sourceDateEpoch(). */
  epoch: number;
  network: BuildNetwork;
  allow: readonly Entitlement[];
  ignoreOwnership: boolean;
  runMounts: RunMounts;
}

class Engine {
  private sandboxNetwork: Promise<NetworkMode> | undefined;
  private readonly stageRuns = new Map<number, Promise<StageResult>>();
  private readonly imageRuns = new Map<string, Promise<StageResult>>();
  private readonly lex: ShellLex;
  /**
   * Unquoted COPY/ADD heredoc bodies: variables expand, quotes are plain text,
   * and a backslash escapes the next character (`\$` gives `$`, `\\` gives
   * `\`) whatever the escape directive says, as BuildKit's ExpandRaw does.
   */
  private readonly heredocLex: ShellLex;
  private stepCounter = 0;
  /** The first error of any stage; set so that concurrent stages stop early. */
  private failure: unknown;
  /** Aborted with the first failure: a RUN running in another stage has its container killed instead of running to its end. */
  private readonly cancel = new AbortController();

  constructor(private readonly ctx: EngineContext) {
    this.lex = new ShellLex(ctx.df.escapeToken);
    this.heredocLex = new ShellLex('\\', { skipProcessQuotes: true });
  }

  /** The first error of any stage or pull, which is the build's error; undefined while none failed. */
  firstFailure(): unknown {
    return this.failure;
  }

  /** Records a failure; the first one also stops the RUN steps running in other stages. */
  private fail(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    const where = err instanceof BuildError ? err.location() : undefined;
    this.cancel.abort(new StepCancelledError(`cancelled: another stage failed${where !== undefined ? ` (${where})` : ''}`));
  }

  /** The references of the images pulled so far. */
  pulledImages(): string[] {
    return [...new Set([...this.imageRuns.keys()].map((key) => key.split(' ')[0]!))];
  }

  private contextIndex(): Promise<ContextIndex> {
    return this.ctx.contextIndex();
  }

  /** Resolves once every stage and pull that was started has finished, failed or not. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.stageRuns.values(), ...this.imageRuns.values()]);
  }

  /** Each needed stage runs once; stages that do not depend on each other run concurrently. */
  stage(index: number): Promise<StageResult> {
    let run = this.stageRuns.get(index);
    if (!run) {
      run = this.runStage(this.ctx.plan.stages[index]!);
      this.stageRuns.set(index, run);
    }
    return run;
  }

  private async runStage(planned: PlannedStage): Promise<StageResult> {
    // Start dependencies together so independent stages overlap; Promise.all
    // observes every one at once, so a failing stage is never left unhandled.
    const line = planned.stage.range.start;
    const platform = this.stagePlatform(planned);
    const [base] = await Promise.all([this.source(planned.base, line, platform), ...[...planned.deps].map((d) => this.stage(d))]);
    const label = planned.stage.name ?? String(planned.stage.index);
    const st: StageState = {
      snapshot: base.snapshot,
      layers: [...base.layers],
      config: cloneConfig(base.config),
      // A stage based on another stage inherits its ARGs; an image brings none.
      args: new Map(base.args),
      argsOverEnv: new Set(base.argsOverEnv ?? []),
      shell: base.config.config?.Shell ?? DEFAULT_SHELL,
      label,
      position: 0,
      ...(base.changeReason !== undefined ? { changeReason: base.changeReason } : {}),
    };
    // ONBUILD triggers of the base run first, then leave the config: they are not inherited further.
    const triggers = this.onBuildTriggers(st, planned);
    const commands = [...triggers, ...planned.stage.commands];
    const total = commands.length;
    for (const [i, cmd] of commands.entries()) {
      // Once any stage failed, the others stop at their next instruction.
      if (this.failure) throw this.failure;
      const step = this.ctx.progress.start(`[${label} ${i + 2}/${total + 1}] ${redactUrlsIn(cmd.original.split('\n')[0]!)}`);
      st.position = i;
      try {
        await this.dispatch(cmd, st, planned, step);
        step.done();
      } catch (err) {
        step.fail(err instanceof Error ? err.message : String(err));
        const located = err instanceof Error ? withLocation(err, { file: this.ctx.file, line: cmd.range.start }) : err;
        this.fail(located);
        throw located;
      }
    }
    st.config.created = this.created();
    return { snapshot: st.snapshot, layers: st.layers, config: st.config, args: st.args, argsOverEnv: st.argsOverEnv, ...(st.changeReason !== undefined ? { changeReason: st.changeReason } : {}) };
  }

  /** `FROM --platform=…` (expanded with the global ARGs), else the build's target platform. */
  private stagePlatform(planned: PlannedStage): Platform {
    const raw = planned.stage.platform;
    if (raw === undefined) return this.ctx.target;
    const where = { file: this.ctx.file, line: planned.stage.range.start };
    try {
      return parsePlatform(this.lex.processWord(raw, this.ctx.args.global));
    } catch (err) {
      throw new InstructionError(`FROM --platform=${raw}: ${(err as Error).message}`, where);
    }
  }

  /**
   * Parses the base image's ONBUILD triggers into commands located at this
   * stage's FROM line, which is where a user looks when one fails.
   */
  private onBuildTriggers(st: StageState, planned: PlannedStage): Command[] {
    const cfg = st.config.config;
    const triggers = cfg?.OnBuild ?? [];
    if (!cfg || triggers.length === 0) return [];
    delete cfg.OnBuild;
    const where = { file: this.ctx.file, line: planned.stage.range.start };
    return triggers.map((trigger) => {
      let parsed: DockerfileInstructions;
      try {
        parsed = parseInstructions(`FROM scratch\n${trigger}\n`);
      } catch (err) {
        throw new InstructionError(`ONBUILD trigger "${trigger}" of the base image: ${(err as Error).message}`, where);
      }
      const cmd = parsed.stages[0]?.commands[0];
      if (!cmd) throw new InstructionError(`ONBUILD trigger "${trigger}" of the base image is empty`, where);
      return { ...cmd, range: { ...planned.stage.range }, original: `ONBUILD ${cmd.original}` } as Command;
    });
  }

  /**
   * `--from` of an ONBUILD trigger, which planning could not see: an earlier
   * stage by name or index, else an image.
   */
  private lateCopySource(from: string, planned: PlannedStage, line: number): Source {
    const value = this.lex.processWord(from, this.ctx.args.global);
    const stages = this.ctx.plan.stages;
    const named = stages.find((p) => p.stage.name === value.toLowerCase())
      ?? (/^\d+$/.test(value) ? stages[Number(value)] : undefined);
    if (named) {
      if (named.stage.index >= planned.stage.index) {
        throw new StageNotFoundError(`ONBUILD COPY --from=${value}: the stage must be defined before this one`, { file: this.ctx.file, line });
      }
      return { kind: 'stage', index: named.stage.index };
    }
    return { kind: 'image', ref: value };
  }

  private async source(src: Source, line: number, platform: Platform = this.ctx.target): Promise<StageResult> {
    switch (src.kind) {
      case 'scratch':
        return { snapshot: undefined, layers: [], config: scratchConfig(platform), args: new Map() };
      case 'stage':
        return this.stage(src.index);
      case 'image': {
        const key = `${parseReference(src.ref).toString()} ${formatPlatform(platform)}`;
        let run = this.imageRuns.get(key);
        if (!run) {
          run = this.ctx.steps.run(() => this.pullImage(src.ref, platform)).catch((err: unknown) => {
            const stage = stageNamedLike(this.ctx.df, src.ref);
            // A typo of a stage name is the likelier cause than the registry's answer: say it first.
            const cause = stage !== undefined && err instanceof Error
              ? new StageNotFoundError(`no stage named "${src.ref}" (did you mean ${stage}?), and no image ${src.ref} could be pulled: ${err.message}`)
              : err;
            const located = cause instanceof Error ? withLocation(cause, { file: this.ctx.file, line }) : cause;
            this.fail(located);
            throw located;
          });
          this.imageRuns.set(key, run);
        }
        return run;
      }
    }
  }

  /** Pulls an image and applies each of its layers once per chain ID, shared by all builds on this root. */
  private async pullImage(ref: string, platform: Platform): Promise<StageResult> {
    const step = this.ctx.progress.start(`[internal] load ${ref}`);
    try {
      return await this.pullInto(step, ref, platform);
    } catch (err) {
      step.fail(err instanceof Error ? err.message : String(err));
      throw err;
    }
  }

  private async pullInto(step: ProgressStep, ref: string, platform: Platform): Promise<StageResult> {
    const name = parseReference(ref).toString();
    const platformKey = formatPlatform(platform);
    // An image `stowage pull` fetched is used as pulled (by digest, from the store: no network).
    const local = await this.ctx.images.get(name, platformKey);
    const pulled = local?.source === 'pull' ? await this.ctx.images.usable(name, platformKey, this.ctx.store) : undefined;
    const registry = this.ctx.registryFor(platform);
    const image = await registry.resolve(pulled ? withDigest(parseReference(name), pulled.digest) : ref);
    const feeds = new DownloadFeeds();
    const downloads = await registry.downloadLayers(image, { onBytes: (digest, n, total) => step.bytes(digest, n, total), onIngest: feeds.started });
    if (pulled) {
      step.log(`using ${name}@${pulled.digest} as pulled on ${pulled.pulled}`);
      await this.ctx.images.touch(name, platformKey);
    } else {
      await this.ctx.images.put(imageRecord(image, name, platformKey, local?.source ?? 'build'));
    }
    step.log(`resolved ${image.reference.toString()}@${image.manifestDigest} (${image.platform.os}/${image.platform.architecture}${image.platform.variant ? `/${image.platform.variant}` : ''})`);
    const diffIds = image.config.rootfs.diff_ids;
    if (diffIds.length !== image.manifest.layers.length) {
      throw new BuildError('E_MANIFEST_INVALID', `${ref}: the config lists ${diffIds.length} layers but the manifest has ${image.manifest.layers.length}`);
    }
    let parent: string | undefined;
    const layers: LayerRef[] = [];
    for (const [i, desc] of image.manifest.layers.entries()) {
      const diffID = diffIds[i]!;
      const chain = await this.stackLayer(parent, desc, diffID, step, ref, { download: downloads.get(desc.digest), feeds, position: `${i + 1}/${image.manifest.layers.length}` });
      parent = chain;
      layers.push({ descriptor: { mediaType: ociLayerMediaType(desc.mediaType), digest: desc.digest, size: desc.size }, diffID });
    }
    // Layers already unpacked on this root still download: the export needs their blobs.
    await Promise.all(downloads.values());
    step.done();
    return { snapshot: parent, layers, config: image.config, args: new Map(), changeReason: `base image ${ref} changed (now ${image.manifestDigest})` };
  }

  /**
   * The snapshot of `parent` plus one layer, named by its chain ID and applied
   * once per root: a layer of a pulled image (while it downloads, when it
   * does) or a linked layer from the store. `what` names the layer's origin
   * in errors.
   */
  private async stackLayer(parent: string | undefined, desc: Descriptor, diffID: string, step: ProgressStep, what: string, pull?: { download: Promise<void> | undefined; feeds: DownloadFeeds; position: string }): Promise<string> {
    const chain = nextChainId(parent, diffID);
    if (await this.ctx.snapshots.exists(chain)) return chain;
    // Another build on this root unpacking the same layer is waited for; then its snapshot is used.
    const lock = await lockSharedWork(this.ctx.state.lockScope, `unpack ${chain}`, `unpacking layer ${desc.digest}`, (line) => step.log(line));
    try {
      if (await this.ctx.snapshots.exists(chain)) return chain;
      const { key, applied } = await this.unpackBaseLayer(parent, desc, pull?.download, pull?.feeds ?? new DownloadFeeds(), step);
      try {
        if (applied.diffID !== diffID) {
          throw new BuildError('E_DIGEST_MISMATCH', `${what}: layer ${desc.digest} unpacks to ${applied.diffID}, but ${pull ? 'the image config says' : 'the build cache says'} ${diffID}`);
        }
        // Single-id namespace: the owners the layer asked for live in snapshot metadata.
        if (applied.owners) await this.ctx.snapshots.recordOwners(key, applied.owners);
        await this.ctx.snapshots.commit(chain, key);
        crashPoint('unpack:committed');
      } catch (err) {
        await this.ctx.snapshots.release(key).catch(() => undefined);
        throw err;
      }
      if (pull) step.log(`unpacked layer ${pull.position} ${desc.digest}`);
      return chain;
    } finally {
      await lock?.release();
    }
  }

  /**
   * Unpacks one base layer into a new active snapshot on `parent`: while it
   * downloads when it is downloading now, else from the store. A streamed
   * snapshot is returned only after the download verified the blob's digest;
   * a download that starts over (or fails over to another endpoint) throws
   * the streamed work away and the layer is unpacked from the store.
   */
  private async unpackBaseLayer(parent: string | undefined, desc: Descriptor, download: Promise<void> | undefined, feeds: DownloadFeeds, step: ProgressStep): Promise<{ key: string; applied: ApplyResult }> {
    const opts = { ignoreOwnership: this.ctx.ignoreOwnership };
    const prepare = async (apply: (dir: string) => Promise<ApplyResult>) => {
      const key = `extract-${process.pid}-${++this.stepCounter}`;
      const dir = await this.ctx.snapshots.prepare(key, parent);
      try {
        return { key, applied: await apply(dir) };
      } catch (err) {
        await this.ctx.snapshots.release(key).catch(() => undefined);
        throw err;
      }
    };
    if (download !== undefined) {
      const arriving = await feeds.follow(desc.digest, download);
      if (arriving !== undefined) {
        try {
          return await prepare(async (dir) => {
            const applied = await applyLayer(dir, Readable.from(arriving), opts);
            await download; // nothing built from these bytes is used before they are verified
            return applied;
          });
        } catch (err) {
          // Bytes that fail to unpack may be bytes that fail to verify: the download's verdict comes first.
          await download;
          if (!(err instanceof IngestInterruptedError)) throw err;
          step.log(`${err.message}: unpacking ${desc.digest} from the store once downloaded`);
        }
      } else {
        await download;
      }
    }
    return prepare((dir) => applyLayerFile(dir, this.ctx.store.blobPath(desc.digest), opts));
  }

  /** What `$VAR` means in an instruction: the stage's ARGs, overridden by ENV, overridden by ARGs declared after that ENV. */
  private expansionEnv(st: StageState): Record<string, string> {
    const env = { ...Object.fromEntries(st.args), ...new EnvList(st.config.config?.Env ?? []).toRecord() };
    for (const k of st.argsOverEnv) if (st.args.has(k)) env[k] = st.args.get(k)!;
    return env;
  }

  private expand(word: string, st: StageState): string {
    return this.lex.processWord(word, this.expansionEnv(st));
  }

  private async dispatch(cmd: Command, st: StageState, planned: PlannedStage, step: ProgressStep): Promise<void> {
    const cfg = containerConfig(st.config);
    switch (cmd.kind) {
      case 'ARG':
        for (const { key, value } of cmd.args) {
          const v = this.ctx.args.declare(key, value, this.expansionEnv(st), (w, env) => this.lex.processWord(w, env));
          // Declared but unset stays out of the environment: `${X-default}` must see it unset.
          if (v === undefined) st.args.delete(key);
          else {
            st.args.set(key, v);
            st.argsOverEnv.add(key);
          }
        }
        return this.metadataOnly(st, cmd.original);
      case 'ENV': {
        const env = new EnvList(cfg.Env ?? []);
        // Every pair expands against the environment from before the instruction
        // (the reference's `ENV abc=bye def=$abc` gives def the old abc).
        const before = this.expansionEnv(st);
        for (const { key, value } of cmd.pairs) {
          env.set(key, this.lex.processWord(value, before));
          st.argsOverEnv.delete(key);
        }
        cfg.Env = env.toList();
        return this.metadataOnly(st, cmd.original);
      }
      case 'LABEL': {
        cfg.Labels ??= {};
        for (const { key, value } of cmd.pairs) cfg.Labels[this.expand(key, st)] = this.expand(value, st);
        return this.metadataOnly(st, cmd.original);
      }
      case 'EXPOSE': {
        cfg.ExposedPorts ??= {};
        for (const port of cmd.ports) {
          for (const p of this.lex.processWords(port, this.expansionEnv(st))) {
            let keys: string[];
            try {
              keys = exposedPorts(p);
            } catch (err) {
              throw err instanceof PortSpecError ? new InstructionError(`EXPOSE: ${err.message}`) : err;
            }
            for (const key of keys) cfg.ExposedPorts[key] = {};
          }
        }
        return this.metadataOnly(st, cmd.original);
      }
      case 'USER':
        cfg.User = this.expand(cmd.user, st);
        return this.metadataOnly(st, cmd.original);
      case 'CMD':
        cfg.Cmd = cmd.shellForm ? [...st.shell, cmd.cmd.join(' ')] : [...cmd.cmd];
        return this.metadataOnly(st, cmd.original);
      case 'ENTRYPOINT':
        cfg.Entrypoint = cmd.shellForm ? [...st.shell, cmd.cmd.join(' ')] : [...cmd.cmd];
        // Docker: a new ENTRYPOINT drops a CMD inherited from the base, not one set in this stage.
        if (!this.cmdSetInStage(planned, cmd)) cfg.Cmd = null;
        return this.metadataOnly(st, cmd.original);
      case 'SHELL':
        st.shell = [...cmd.shell];
        cfg.Shell = [...cmd.shell];
        return this.metadataOnly(st, cmd.original);
      case 'STOPSIGNAL':
        cfg.StopSignal = this.expand(cmd.signal, st);
        return this.metadataOnly(st, cmd.original);
      case 'VOLUME':
        cfg.Volumes ??= {};
        for (const v of cmd.volumes) cfg.Volumes[this.expand(v, st)] = {};
        return this.metadataOnly(st, cmd.original);
      case 'MAINTAINER':
        st.config.author = cmd.maintainer;
        return this.metadataOnly(st, cmd.original);
      case 'ONBUILD':
        cfg.OnBuild = [...(cfg.OnBuild ?? []), cmd.expression];
        return this.metadataOnly(st, cmd.original);
      case 'HEALTHCHECK':
        if (cmd.test === 'NONE') cfg.Healthcheck = { Test: ['NONE'] };
        else {
          cfg.Healthcheck = { Test: [...cmd.test] };
          if (cmd.interval !== undefined) cfg.Healthcheck.Interval = cmd.interval;
          if (cmd.timeout !== undefined) cfg.Healthcheck.Timeout = cmd.timeout;
          if (cmd.startPeriod !== undefined) cfg.Healthcheck.StartPeriod = cmd.startPeriod;
          if (cmd.startInterval !== undefined) cfg.Healthcheck.StartInterval = cmd.startInterval;
          if (cmd.retries !== undefined) cfg.Healthcheck.Retries = cmd.retries;
        }
        return this.metadataOnly(st, cmd.original);
      case 'WORKDIR':
        return this.workdir(cmd.path, st, step);
      case 'COPY':
      case 'ADD':
        return this.copy(cmd, st, planned, step);
      case 'RUN':
        return this.run(cmd, st, planned, step);
      default: {
        // Every instruction kind is handled above; this catches a new one added to the frontend.
        const unhandled: never = cmd;
        throw new NotSupportedError(`${(unhandled as Command).kind} is not supported yet`);
      }
    }
  }

  private cmdSetInStage(planned: PlannedStage, entrypoint: Command): boolean {
    const cmds = planned.stage.commands;
    return cmds.slice(0, cmds.indexOf(entrypoint)).some((c) => c.kind === 'CMD');
  }

  private metadataOnly(st: StageState, createdBy: string): void {
    addHistory(st.config, { created: this.created(), created_by: createdBy, comment: 'stowage.dockerfile.v0', empty_layer: true });
  }

  /** Every time this build writes (config, history) is the build's epoch, so equal inputs give equal digests. */
  private created(): string {
    return new Date(this.ctx.epoch * 1000).toISOString();
  }

  /**
   * Runs `mutate` on a writable snapshot of the stage, then turns what it
   * changed into a layer. An empty change adds no layer (as BuildKit does for
   * a WORKDIR that already exists).
   */
  /**
   * `inputs` is everything besides the parent filesystem that the step's result
   * depends on; with it the step is looked up in the build cache first.
   */
  private filesystemStep(st: StageState, createdBy: string, step: ProgressStep, mutate: (rootfs: string, key: string) => Promise<void>, inputs?: Record<string, unknown>, hints: ChangeHints = {}, linked = false): Promise<void> {
    return this.ctx.steps.run(async () => {
      if (inputs === undefined) {
        await this.runFilesystemStep(st, createdBy, step, mutate);
        return;
      }
      const parent = st.snapshot ?? null;
      const cacheKey = this.ctx.cache.stepKey({ parent, platform: this.ctx.target, createdBy, inputs, linked });
      const identity: StepIdentity = { dockerfile: this.ctx.dockerfilePath, stage: st.label, position: st.position, platform: formatPlatform(this.ctx.target), createdBy };
      // A linked step does not start from its parent: a new parent alone never explains its miss.
      const trace: StepTrace = { createdBy, parent: linked ? null : parent, inputs };
      const bypass = this.ctx.cacheBypass(st.label);
      const reuse = () => (linked ? this.reuseLinked(cacheKey, st, createdBy, step) : this.reuseCached(cacheKey, st, createdBy, step));
      if (bypass === undefined && (await reuse())) {
        await this.ctx.cache.saveTrace(identity, trace);
        return;
      }
      // Another build on this root running the same step is waited for; then its result is a cache hit.
      const lock = bypass === undefined ? await lockSharedWork(this.ctx.state.lockScope, `step ${cacheKey}`, `running ${clip(createdBy)}`, (line) => step.log(line)) : undefined;
      try {
        if (lock !== undefined && (await reuse())) {
          await this.ctx.cache.saveTrace(identity, trace);
          return;
        }
        const reason = bypass ?? (await this.explainMiss(identity, trace, st, hints));
        step.cacheMiss(reason);
        st.changeReason = reason;
        const record = linked ? await this.runLinkedStep(st, createdBy, step, mutate) : await this.runFilesystemStep(st, createdBy, step, mutate);
        await this.ctx.cache.put(cacheKey, record);
        await this.ctx.cache.saveTrace(identity, trace);
      } finally {
        await lock?.release();
      }
    });
  }

  /**
   * Why a step missed the cache, from the last run of the same step on this
   * root: the instruction, the filesystem it starts from (named by the earlier
   * change that caused it), a context file, an argument…
   */
  private async explainMiss(identity: StepIdentity, trace: StepTrace, st: StageState, hints: ChangeHints): Promise<string> {
    const last = await this.ctx.cache.lastTrace(identity);
    if (!last) return 'no earlier build of this step on this --root';
    if (last.samePosition) return `instruction changed (was: ${clip(last.trace.createdBy)})`;
    const before = last.trace;
    if (before.parent !== trace.parent) return st.changeReason ?? 'the filesystem it starts from changed';
    const changed = changedInputs(before.inputs, trace.inputs);
    if (changed.length === 0) return 'no cache record (pruned, or written by an interrupted build)';
    const reasons: string[] = [];
    for (const input of changed) {
      if (input.startsWith('env:')) {
        const name = input.slice(4);
        const declaredArg = st.args.has(name) && !new EnvList(st.config.config?.Env ?? []).has(name);
        reasons.push(`${declaredArg ? 'build arg' : 'ENV'} ${name} changed`);
      } else if (input === 'context') {
        const described = hints.contextPrefixes ? (await this.contextIndex()).describeChange(hints.contextPrefixes) : undefined;
        reasons.push(described ?? 'build context files changed');
      } else if (input === 'from') {
        reasons.push(hints.from ?? 'the --from source changed');
      } else if (input === 'inline') {
        reasons.push(...changedHeredocs(before.inputs.inline, trace.inputs.inline));
      } else if (input === 'mounts') {
        reasons.push(...(await this.changedMounts(before.inputs.mounts, trace.inputs.mounts, hints)));
      } else {
        reasons.push(`${input} changed`);
      }
    }
    return reasons.join('; ');
  }

  /** Each RUN --mount whose key changed, by target; a context bind names the files that changed under it. */
  private async changedMounts(before: unknown, after: unknown, hints: ChangeHints): Promise<string[]> {
    const out: string[] = [];
    for (const { id: target, change } of changedEntries(before, after, 'target')) {
      if (change !== 'changed') {
        out.push(`mount ${target} ${change}`);
        continue;
      }
      const source = hints.contextBinds?.get(target);
      const files = source !== undefined ? (await this.contextIndex()).describeChange([sourcePrefix(source)]) : undefined;
      out.push(`mount ${target} changed${files !== undefined ? `: ${files}` : ''}`);
    }
    return out.length > 0 ? out : ['mounts changed'];
  }

  /** A cache hit: the step's snapshot and layer, when both still exist on this root. */
  private async reuseCached(cacheKey: string, st: StageState, createdBy: string, step: ProgressStep): Promise<boolean> {
    const hit = await this.ctx.cache.get(cacheKey);
    if (!hit) return false;
    if (hit.snapshot !== null && !(await this.ctx.snapshots.exists(hit.snapshot))) return false;
    if (hit.layer && !(await this.ctx.store.has(hit.layer.descriptor.digest))) return false;
    if (hit.snapshot === null || !hit.layer) {
      addHistory(st.config, { created: hit.created, created_by: createdBy, comment: 'stowage.dockerfile.v0', empty_layer: true });
    } else {
      st.snapshot = hit.snapshot;
      st.layers.push(hit.layer);
      st.config.rootfs.diff_ids.push(hit.layer.diffID);
      addHistory(st.config, { created: hit.created, created_by: createdBy, comment: 'stowage.dockerfile.v0' });
    }
    step.cached();
    return true;
  }

  /**
   * A hit of a linked step needs only its layer blob: the layer is stacked on
   * whatever parent the step has now (applied once per chain ID). The record
   * then names the snapshot of this parent, which prune keeps with it.
   */
  private async reuseLinked(cacheKey: string, st: StageState, createdBy: string, step: ProgressStep): Promise<boolean> {
    const hit = await this.ctx.cache.get(cacheKey);
    if (!hit) return false;
    if (hit.snapshot === null || !hit.layer) {
      addHistory(st.config, { created: hit.created, created_by: createdBy, comment: 'stowage.dockerfile.v0', empty_layer: true });
    } else {
      if (!(await this.ctx.store.has(hit.layer.descriptor.digest))) return false;
      const record = await this.stackLinked(st, hit.layer, hit.created, createdBy, step);
      if (record.snapshot !== hit.snapshot) await this.ctx.cache.put(cacheKey, record);
    }
    step.cached();
    return true;
  }

  /** A linked step that has to run: its layer is built on an empty tree (link.ts), then stacked. */
  private async runLinkedStep(st: StageState, createdBy: string, step: ProgressStep, mutate: (rootfs: string, key: string) => Promise<void>): Promise<CacheRecord> {
    const built = await buildLinkedLayer(this.ctx, `link-${process.pid}-${++this.stepCounter}`, mutate);
    const created = this.created();
    if (!built) {
      addHistory(st.config, { created, created_by: createdBy, comment: 'stowage.dockerfile.v0', empty_layer: true });
      return { snapshot: null, created };
    }
    const record = await this.stackLinked(st, built.layer, created, createdBy, step);
    step.layer({ digest: built.layer.descriptor.digest, size: built.layer.descriptor.size, files: built.entries });
    return record;
  }

  private async stackLinked(st: StageState, layer: LinkedLayer, created: string, createdBy: string, step: ProgressStep): Promise<CacheRecord> {
    st.snapshot = await this.stackLayer(st.snapshot, layer.descriptor, layer.diffID, step, createdBy);
    st.layers.push(layer);
    st.config.rootfs.diff_ids.push(layer.diffID);
    addHistory(st.config, { created, created_by: createdBy, comment: 'stowage.dockerfile.v0' });
    return { snapshot: st.snapshot, layer, created };
  }

  private async runFilesystemStep(st: StageState, createdBy: string, step: ProgressStep, mutate: (rootfs: string, key: string) => Promise<void>): Promise<CacheRecord> {
    const key = `step-${process.pid}-${++this.stepCounter}`;
    const rootfs = await this.ctx.snapshots.prepare(key, st.snapshot);
    let committed = false;
    try {
      await mutate(rootfs, key);
      const layer = await diffIntoStore(this.ctx, key);
      const created = this.created();
      if (layer.empty) {
        addHistory(st.config, { created, created_by: createdBy, comment: 'stowage.dockerfile.v0', empty_layer: true });
        return { snapshot: null, created };
      }
      crashPoint('step:imported');
      const chain = nextChainId(st.snapshot, layer.diffID);
      await this.ctx.snapshots.commit(chain, key);
      committed = true;
      crashPoint('step:committed');
      st.snapshot = chain;
      const layerRef: LayerRef = { descriptor: { mediaType: MediaTypes.OCI_LAYER_GZIP, digest: layer.digest, size: layer.size }, diffID: layer.diffID };
      st.layers.push(layerRef);
      st.config.rootfs.diff_ids.push(layer.diffID);
      addHistory(st.config, { created, created_by: createdBy, comment: 'stowage.dockerfile.v0' });
      step.layer({ digest: layer.digest, size: layer.size, files: layer.entries });
      return { snapshot: chain, layer: layerRef, created };
    } finally {
      if (!committed) await this.ctx.snapshots.release(key).catch(() => undefined);
    }
  }

  private async workdir(path: string, st: StageState, step: ProgressStep): Promise<void> {
    const cfg = containerConfig(st.config);
    const expanded = this.expand(path, st);
    const dir = posix.resolve(cfg.WorkingDir || '/', expanded);
    cfg.WorkingDir = dir;
    const user = cfg.User ?? '';
    await this.filesystemStep(st, `WORKDIR ${dir}`, step, async (rootfs, key) => {
      // Missing directories (parents too) belong to the current USER, as BuildKit makes them (moby/buildkit#1002).
      const owner = user === '' ? { uid: 0, gid: 0 } : await resolveOwner(rootfs, user).catch((err: Error) => {
        throw new InstructionError(`WORKDIR ${dir}: USER ${user}: ${err.message}`);
      });
      const recorded = new Map<string, { uid: number; gid: number }>();
      const record = async (path: string, o: { uid: number; gid: number }) => {
        if (o.uid !== 0 || o.gid !== 0) recorded.set(posix.relative(rootfs, path), o);
      };
      await mkdirOwned(rootfs, dir, owner, this.ctx.ignoreOwnership ? record : undefined);
      if (recorded.size > 0) await this.ctx.snapshots.recordOwners(key, { set: recorded, removed: [] });
    }, { op: 'workdir', dir, ...(user !== '' ? { user } : {}) });
  }

  /**
   * How COPY --from learns a source file's owner: from disk, or in a single-id
   * namespace (where disk shows only root) from what the source snapshot's
   * chain recorded. `rel` is relative to the source root.
   */
  private async sourceOwnerReader(snapshot: string | undefined): Promise<(rel: string, st: Stats) => { uid: number; gid: number }> {
    if (!this.ctx.ignoreOwnership) return (_rel, st) => ({ uid: st.uid, gid: st.gid });
    if (snapshot === undefined) return () => ({ uid: 0, gid: 0 });
    const lookup = await this.ctx.snapshots.recordedOwners(snapshot);
    return (rel) => lookup(rel) ?? { uid: 0, gid: 0 };
  }

  /** COPY, and ADD of local files (where tar archives unpack), URLs and git repositories (add-remote.ts). */
  private async copy(cmd: Extract<Command, { kind: 'COPY' | 'ADD' }>, st: StageState, planned: PlannedStage, step: ProgressStep): Promise<void> {
    const name = cmd.kind;
    const cfg = containerConfig(st.config);
    const env = this.expansionEnv(st);
    const heredocNames = new Set(cmd.heredocs.map((h) => h.name));
    const inline = cmd.heredocs.map((h) => ({ name: h.name, content: h.expand ? this.heredocLex.processWord(h.content, env) : h.content }));
    const sources = cmd.sources.filter((s) => !isHeredocSource(s, heredocNames)).map((s) => this.lex.processWord(s, env));
    const destRaw = this.expand(cmd.dest, st);
    // `.`, `x/` and `x/.` name a directory; keep that visible after joining with WORKDIR.
    const dirLike = destRaw === '.' || destRaw.endsWith('/') || destRaw.endsWith('/.');
    const joined = posix.isAbsolute(destRaw) ? destRaw : posix.join(cfg.WorkingDir || '/', destRaw);
    const dest = dirLike && !joined.endsWith('/') ? `${joined}/` : joined;
    let chmod;
    try {
      chmod = cmd.chmod !== undefined ? parseChmod(this.expand(cmd.chmod, st)) : undefined;
    } catch (err) {
      throw err instanceof ChmodError ? new InstructionError(`${name} --chmod: ${err.message}`) : err;
    }
    const exclude = cmd.exclude.map((e) => this.expand(e, st));
    const parents = cmd.parents === true;
    // A --link step sees an empty tree: no /etc/passwd, so names are refused before anything runs.
    const linkedOwner = cmd.link && cmd.chown !== undefined ? linkedChown(this.expand(cmd.chown, st), name) : undefined;
    const inlineMtime = this.ctx.epoch;
    // Remote sources are resolved before the cache lookup: their key is a digest or a commit.
    let added: AddSources | undefined;
    if (cmd.kind === 'COPY') refuseRemoteForCopy(sources);
    else {
      added = await prepareAddSources(sources, {
        dest, inlineCount: inline.length, keepGitDir: cmd.keepGitDir === true, tmp: this.ctx.state.buildTmp,
        // The builder fetches on the host's network: this machine's own services only when the user allows the host network.
        allowHostOnly: this.ctx.network === 'host' || this.ctx.allow.includes('network.host'),
        ...(cmd.checksum !== undefined ? { checksum: this.expand(cmd.checksum, st) } : {}),
        ...(cmd.unpack !== undefined ? { unpack: cmd.unpack } : {}),
        log: (line) => step.log(line), bytes: (id, current, total) => step.bytes(id, current, total),
      });
    }
    const localSources = added?.local ?? sources;
    const remote = added?.remote ?? [];

    let sourceRoot = this.ctx.contextDir;
    let sourceKind: 'context' | 'rootfs' = 'context';
    let fromIdentity: string | undefined;
    let fromReason: string | undefined;
    let release: (() => Promise<void>) | undefined;
    // Mounted only when the step runs: a cache hit is keyed on the stage's chain ID and reads nothing.
    let sourceSnapshot: string | undefined;
    if (cmd.from !== undefined) {
      const src = planned.copySources.get(cmd.from) ?? this.lateCopySource(cmd.from, planned, cmd.range.start);
      const result = await this.source(src, cmd.range.start);
      fromIdentity = result.snapshot ?? 'empty';
      fromReason = result.changeReason !== undefined ? `--from=${cmd.from} changed: ${result.changeReason}` : undefined;
      sourceKind = 'rootfs';
      if (result.snapshot === undefined) {
        sourceRoot = posix.join(this.ctx.state.buildTmp, `empty-${++this.stepCounter}`);
        await mkdir(sourceRoot, { recursive: true });
      } else {
        sourceSnapshot = result.snapshot;
      }
    }
    const contextPrefixes = localSources.map(sourcePrefix);
    try {
      await this.filesystemStep(st, `${name} ${cmd.from !== undefined ? `--from=${cmd.from} ` : ''}${[...sources.map(redactUrl), ...inline.map((i) => `<<${i.name}`)].join(' ')} ${dest}`, step, async (rootfs, key) => {
        const chown = linkedOwner ?? (cmd.chown !== undefined && !cmd.link
          ? await resolveOwner(rootfs, this.expand(cmd.chown, st)).catch((err: Error) => {
            throw new InstructionError(`${name} --chown: ${err.message}`);
          })
          : undefined);
        const owner = chown ?? { uid: 0, gid: 0 };
        // --from without --chown keeps each file's owner from the stage or image (single-id: as recorded there).
        const sourceOwner = cmd.from !== undefined && chown === undefined
          ? await this.sourceOwnerReader(sourceSnapshot)
          : undefined;
        // Single-id namespace: only root exists on disk, so owners are recorded for the layer instead.
        const recorded = new Map<string, { uid: number; gid: number }>();
        const setOwner = this.ctx.ignoreOwnership
          ? async (path: string, o: { uid: number; gid: number }) => {
            if (o.uid !== 0 || o.gid !== 0) recorded.set(posix.relative(rootfs, path), o);
          }
          : undefined;
        const unpackArchives = cmd.kind === 'ADD' && cmd.unpack !== false
          ? { ...(chown ? { chown } : {}), ignoreOwnership: this.ctx.ignoreOwnership }
          : undefined;
        const warn = (m: string) => step.log(`warning: ${m}`);
        if (sourceSnapshot !== undefined && release === undefined) {
          const viewPath = await this.ctx.snapshots.view(sourceSnapshot);
          sourceRoot = viewPath;
          release = () => this.ctx.snapshots.release(viewPath);
        }
        try {
          if (localSources.length > 0 || inline.length > 0 || remote.length === 0) {
            await copyInto(rootfs, {
              sourceRoot, sourceKind, sources: localSources, inline, dest, owner, chmod, inlineMtime, exclude, parents,
              ...(sourceKind === 'context' ? { ignore: this.ctx.ignore } : {}), ...(unpackArchives ? { unpackArchives } : {}),
              ...(setOwner ? { setOwner } : {}),
              ...(sourceOwner ? { sourceOwner: (path: string, s: Stats) => sourceOwner(posix.relative(sourceRoot, path), s) } : {}),
            }, warn);
          }
          for (const r of remote) {
            const files = await r.materialize();
            const unpack = files.unpack ? { ...(chown ? { chown } : {}), ignoreOwnership: this.ctx.ignoreOwnership } : undefined;
            await copyInto(rootfs, { sourceRoot: files.sourceRoot, sourceKind: 'rootfs', sources: files.sources, inline: [], dest: files.dest, owner, chmod, inlineMtime, exclude, ...(unpack ? { unpackArchives: unpack } : {}), ...(setOwner ? { setOwner } : {}) }, warn);
          }
          if (recorded.size > 0) await this.ctx.snapshots.recordOwners(key, { set: recorded, removed: [] });
        } catch (err) {
          if (err instanceof CopyError) throw new CopySourceError(`${name} failed: ${err.message}`);
          if (err instanceof ArchiveError) throw new InstructionError(`${name} failed: ${err.message}`);
          throw toBuildError(err);
        }
      }, {
        op: name, sources: localSources, inline, dest, chown: cmd.chown !== undefined ? this.expand(cmd.chown, st) : undefined,
        chmod: cmd.chmod !== undefined ? this.expand(cmd.chmod, st) : undefined, exclude, parents,
        unpack: cmd.kind === 'ADD' && cmd.unpack !== false, ownership: this.ctx.ignoreOwnership ? 'recorded' : 'chown',
        // A stage or image is named by its chain ID (its content); the context by a digest of the files the sources can read.
        from: fromIdentity,
        context: fromIdentity === undefined && localSources.length > 0 ? (await this.contextIndex()).digestFor(contextPrefixes) : undefined,
        // Remote sources by content digest, checksum or commit: never by URL credentials.
        remote: remote.length > 0 ? remote.map((r) => r.identity) : undefined,
        link: cmd.link ? true : undefined,
      }, { contextPrefixes, ...(fromReason !== undefined ? { from: fromReason } : {}) }, cmd.link);
    } finally {
      await release?.();
      await added?.cleanup();
    }
  }

  private async run(cmd: Extract<Command, { kind: 'RUN' }>, st: StageState, planned: PlannedStage, step: ProgressStep): Promise<void> {
    // Checked before the cache is looked at: a cached step must not lift the sandbox either.
    const insecure = insecureStep(cmd.flags.security, this.ctx.allow);
    // `default` is the build's own network (--network), as in BuildKit.
    const requested = requestedNetwork(cmd.flags.network, this.ctx.network, this.ctx.allow);
    const network: NetworkMode = requested === 'default' ? await this.defaultNetwork() : requested;
    const cfg = containerConfig(st.config);
    const { args, scripts } = await this.runArgs(cmd, st);
    const env = new EnvList(cfg.Env ?? []);
    // Build args reach RUN as environment, unless ENV set the same name.
    for (const [k, v] of st.args) if (!env.has(k) || st.argsOverEnv.has(k)) env.set(k, v);
    for (const [k, v] of Object.entries(this.ctx.args.proxyEnv())) if (!env.has(k)) env.set(k, v);
    if (!env.has('PATH')) env.set('PATH', DEFAULT_PATH);
    const createdBy = `RUN ${args.join(' ')}`;
    const mounts = await this.ctx.runMounts.prepare(cmd.flags.mounts, {
      expand: (w) => this.expand(w, st), workdir: cfg.WorkingDir || '/', resolveFrom: (from) => this.mountSource(from, planned, cmd.range.start),
    });
    await this.filesystemStep(st, createdBy, step, async (rootfs) => {
      const user = await resolveUser(rootfs, cfg.User || '0').catch((err: Error) => {
        throw new InstructionError(err.message);
      });
      if (this.ctx.ignoreOwnership && (user.uid !== 0 || user.gid !== 0)) {
        throw new InstructionError(`USER ${cfg.User}: a step cannot run as uid ${user.uid} gid ${user.gid} with a single-id mapping (only root exists in the build's user namespace); give this user a range in /etc/subuid and /etc/subgid`);
      }
      if (!env.has('HOME')) env.set('HOME', user.home);
      const code = await runStepWithMounts(mounts, rootfs, {
        // The primary group is a supplementary one too (`id` shows groups=1000(app)), as BuildKit sets it.
        args, env: env.toList(), cwd: cfg.WorkingDir || '/', uid: user.uid, gid: user.gid, additionalGids: [user.gid, ...user.additionalGids],
      }, { stateDir: this.ctx.state.buildTmp, network, insecure, output: (line) => step.log(line), extraMounts: scripts, signal: this.cancel.signal });
      if (code !== 0) {
        // Checked before the step's snapshot is released: what it wrote still fills the device.
        const note = await fullRootNote(this.ctx.state.root);
        throw new RunFailedError(`RUN ${cmd.shellForm ? cmd.cmd.join(' ') : JSON.stringify(cmd.cmd)}: process did not complete successfully: exit code ${code}${note}`, code);
      }
    }, {
      op: 'run', args, env: env.toList(), user: cfg.User ?? '', cwd: cfg.WorkingDir ?? '', network, ...(insecure ? { security: 'insecure' } : {}),
      scripts: await Promise.all(scripts.map(async (m) => (m.source ? readFile(m.source, 'utf8') : ''))),
      ownership: this.ctx.ignoreOwnership ? 'recorded' : 'chown',
      mounts: mounts.keyInputs.length > 0 ? mounts.keyInputs : undefined,
    }, { contextBinds: mounts.contextBinds }).finally(() => mounts.release());
  }

  /**
   * The build's default network: the sandbox (own namespace, slirp4netns)
   * when this user can have one, else the host's, with a warning once per
   * build that says why, since steps can then reach the runner's loopback.
   */
  private defaultNetwork(): Promise<NetworkMode> {
    this.sandboxNetwork ??= isolatedNetworkSupport().then((support) => {
      if (support.usable) return 'sandbox';
      this.ctx.progress.note(`warning: RUN steps share this machine's network, so they can reach its 127.0.0.1 services: ${support.reason}. --network host or none silences this`);
      return 'host';
    });
    return this.sandboxNetwork;
  }

  /**
   * `from=` of a RUN --mount: a stage (planned, or named by an ONBUILD
   * trigger) or an image. A name that is neither a stage nor pullable fails
   * naming both possibilities.
   */
  private async mountSource(from: string, planned: PlannedStage, line: number): Promise<MountFrom> {
    const src = planned.mountSources.get(from) ?? this.lateCopySource(from, planned, line);
    try {
      const result = await this.source(src, line);
      return { snapshot: result.snapshot, identity: result.snapshot ?? 'empty' };
    } catch (err) {
      if (src.kind !== 'image') throw err;
      const stages = this.ctx.plan.stages.filter((p) => p.stage.index < planned.stage.index).map((p) => p.stage.name ?? String(p.stage.index));
      throw new InstructionError(`RUN --mount from=${from}: no earlier stage has that name (${stages.length > 0 ? `stages: ${stages.join(', ')}` : 'no earlier stages'}), and it cannot be pulled as an image: ${(err as Error).message}`);
    }
  }

  /**
   * The process for a RUN. A heredoc that is the whole command (`RUN <<EOF`)
   * is a script: run by its shebang interpreter, or by the shell. Otherwise
   * heredocs are handed to the shell with the command line, so `cmd <<EOF`
   * gets its stdin exactly as a shell would give it.
   */
  private async runArgs(cmd: Extract<Command, { kind: 'RUN' }>, st: StageState): Promise<{ args: string[]; scripts: RuntimeMount[] }> {
    if (!cmd.shellForm) return { args: [...cmd.cmd], scripts: [] };
    const line = cmd.cmd.join(' ');
    if (cmd.heredocs.length === 0) return { args: [...st.shell, line], scripts: [] };
    const only = cmd.heredocs[0]!;
    if (cmd.heredocs.length === 1 && /^<<-?\s*["']?\w+["']?\s*$/.test(line.trim())) {
      // The shell expands a RUN heredoc when it runs it; expanding here too would do it twice.
      const content = only.content;
      if (!content.startsWith('#!')) return { args: [...st.shell, content], scripts: [] };
      // A shebang script runs as a file, like BuildKit's /dev/pipes/<name>; /dev is a tmpfs, so nothing leaks into the layer.
      const hostPath = posix.join(this.ctx.state.buildTmp, `script-${++this.stepCounter}`);
      await writeFile(hostPath, content, { mode: 0o755 });
      const inContainer = `/dev/pipes/${only.name}`;
      return { args: [inContainer], scripts: [{ destination: inContainer, type: 'bind', source: hostPath, options: ['rbind', 'ro'] }] };
    }
    const script = [line, ...cmd.heredocs.map((h) => `${h.content.endsWith('\n') ? h.content : `${h.content}\n`}${h.name}`)].join('\n');
    return { args: [...st.shell, script], scripts: [] };
  }
}

/** A long instruction shortened for a one-line message. */
function clip(text: string): string {
  const line = text.split('\n')[0]!;
  return line.length > 80 ? `${line.slice(0, 77)}...` : line;
}

/** A COPY source naming a heredoc: `<<EOF`, `<<-EOF`, `<<"EOF"`. */
function isHeredocSource(source: string, names: Set<string>): boolean {
  const m = /^<<-?(["']?)(.+)\1$/.exec(source);
  return (m !== null && names.has(m[2]!)) || names.has(source);
}
