import { dirname, resolve } from 'node:path';
import { lstat, mkdtemp, rm, stat } from 'node:fs/promises';
import { buildImage } from '../engine/builder.js';
import { Progress, type ProgressStep } from '../engine/progress.js';
import { defaultStateRoot } from '../engine/state-root.js';
import { noSpaceError } from '../engine/disk-space.js';
import { InvalidOptionError } from '../errors.js';
import type { Entitlement } from '../engine/entitlements.js';
import { BuildError } from '../errors.js';
import { abortAll, commitAll, prepareSmallFile, removeTemporaries, type PendingOutput } from '../export/atomic.js';
import { prepareDockerArchive } from '../export/docker-archive.js';
import { taggedDescriptors, writeImage } from '../export/image.js';
import { localDestState, prepareLocal } from '../export/local.js';
import { iidFileContent, metadataFileContent } from '../export/metadata-file.js';
import { prepareOciArchive, stagingWrites, StagingNoSpaceError } from '../export/oci-archive.js';
import { applyImageLayers, type RootfsTree } from '../export/rootfs.js';
import { prepareRootfsTar } from '../export/tar-rootfs.js';
import { pushOutputs } from '../export/registry.js';
import { interruption, onInterrupt, setInterruptNotice } from '../interrupt.js';
import { currentMappingMode, runInUserNamespace } from '../rootless/reexec.js';
import { isRegistryOutput, parseBuildArgs, parseMirrors, parseOutput, parseSecrets, registryNames, type FileOutputSpec, type OutputSpec } from './options.js';
import { createProgressOutput, type ProgressMode, type ProgressOutput } from './progress/select.js';
import { loadHttpClient, parseReference } from '@stowage/registry-client';

export interface BuildCommandArgs {
  context: string;
  file?: string;
  tags: string[];
  target?: string;
  buildArgs: string[];
  outputs: string[];
  platform?: string;
  mirrors: string[];
  insecureRegistries: string[];
  network: 'default' | 'host' | 'none';
  /** `--allow`: entitlements the Dockerfile may use. */
  allow?: Entitlement[];
  snapshotter: 'auto' | 'overlay' | 'native';
  noCache?: boolean;
  /** `--no-cache-filter`: stages whose steps ignore the cache. */
  noCacheFilter?: string[];
  root?: string;
  /** `--iidfile`: the image ID (config digest) is written there. */
  iidfile?: string;
  /** `--metadata-file`: buildx-style JSON about the image. */
  metadataFile?: string;
  /** `--push`: shorthand for `-o type=registry` (push to the `-t` names). */
  push?: boolean;
  /** `--progress` (default auto). */
  progress?: ProgressMode;
  /** `--debug`: stack traces with errors. */
  debug?: boolean;
  /** `--secret id=ID[,src=PATH|,env=VAR]` (repeatable), for RUN --mount=type=secret. */
  secrets?: string[];
}

const outputText = (o: FileOutputSpec) => `-o type=${o.type},dest=${o.dest}`;

/**
 * Destinations are checked before the build so that a mistake costs nothing:
 * each parent directory exists, no two outputs share a path, a file output
 * does not name a directory, and a `type=local` directory is new or empty.
 */
export async function checkDestinations(outputs: OutputSpec[], iidfile?: string, metadataFile?: string): Promise<void> {
  const all: { text: string; dest: string; dir: boolean }[] = [
    ...outputs.filter((o): o is FileOutputSpec => !isRegistryOutput(o)).map((o) => ({ text: outputText(o), dest: o.dest, dir: o.type === 'local' })),
    ...(iidfile !== undefined ? [{ text: `--iidfile ${iidfile}`, dest: iidfile, dir: false }] : []),
    ...(metadataFile !== undefined ? [{ text: `--metadata-file ${metadataFile}`, dest: metadataFile, dir: false }] : []),
  ];
  const seen = new Map<string, string>();
  for (const { text, dest, dir } of all) {
    if (dest === '') throw new InvalidOptionError(`${text}: empty path`);
    const abs = resolve(dest);
    const other = seen.get(abs);
    if (other !== undefined) throw new InvalidOptionError(`${text}: ${dest} is also the destination of ${other}`);
    seen.set(abs, text);
    const parent = await stat(dirname(abs)).catch(() => undefined);
    if (!parent?.isDirectory()) throw new InvalidOptionError(`${text}: directory ${dirname(abs)} does not exist`);
    if (dir) {
      try {
        await localDestState(abs);
      } catch (err) {
        throw new InvalidOptionError(`${text}: ${(err as Error).message}`);
      }
    } else if ((await lstat(abs).catch(() => undefined))?.isDirectory()) {
      throw new InvalidOptionError(`${text}: ${dest} is a directory; give a file name`);
    }
  }
}

/**
 * `stowage build`: resolves with the exit code. Everything it writes goes
 * through the chosen progress format, the final error included (with
 * rawjson, as an `error` event carrying code and Dockerfile location).
 */
export async function runBuild(args: BuildCommandArgs): Promise<number> {
  const output = createProgressOutput(args.progress ?? 'auto');
  // process.exit() after an interrupt still gets the live view's last frame.
  const closeOnExit = () => output.close();
  process.once('exit', closeOnExit);
  setInterruptNotice((line) => output.message(line));
  try {
    const code = await buildAndExport(args, output);
    output.close();
    return code;
  } catch (err) {
    const interrupted = interruption();
    if (interrupted) {
      // The failure is the interrupt's doing (its container was killed): let the cleanups finish and exit 130/143.
      await interrupted.done;
      output.close();
      return interrupted.exitCode;
    }
    output.fail(err, args.debug ?? false);
    return 1;
  } finally {
    process.off('exit', closeOnExit);
  }
}

/**
 * Options are checked before anything else so that mistakes fail fast; then
 * the command re-executes itself inside the build's user namespace (unless
 * already there) and runs the build and the exports.
 */
async function buildAndExport(args: BuildCommandArgs, output: ProgressOutput): Promise<number> {
  const outputs = args.outputs.map(parseOutput);
  if (args.push) outputs.push({ type: 'registry' });
  const fileOutputs = outputs.filter((o): o is FileOutputSpec => !isRegistryOutput(o));
  const buildArgs = parseBuildArgs(args.buildArgs);
  const mirrors = parseMirrors(args.mirrors);
  const secrets = parseSecrets(args.secrets ?? []);
  for (const tag of args.tags) {
    try {
      parseReference(tag);
    } catch (err) {
      throw new InvalidOptionError(`-t ${tag}: ${(err as Error).message}`);
    }
  }
  const pushNames = registryNames(outputs, args.tags);
  await checkDestinations(outputs, args.iidfile, args.metadataFile);
  const context = resolve(args.context);
  const contextStat = await stat(context).catch(() => undefined);
  if (!contextStat?.isDirectory()) throw new InvalidOptionError(`build context ${args.context} is not a directory`);

  const mode = currentMappingMode();
  if (mode === undefined) {
    // The child inherits stdio: stderr stays a terminal, so auto/tty decide the same inside.
    return runInUserNamespace(process.argv.slice(1), (line) => output.message(line));
  }

  // Modes in layers must not depend on the user's umask (BuildKit creates 0755 directories whatever it is).
  process.umask(0o022);
  // A build FROM scratch would otherwise first call fetch when pushing, on top of its peak memory.
  if (pushNames.length > 0) await loadHttpClient().catch(() => undefined);
  const progress = new Progress(output.listener);
  if (outputs.length === 0) progress.note('warning: no output given (-o type=oci,dest=FILE): the result stays in the build state only');
  const started = Date.now();
  const result = await buildImage({
    contextDir: context,
    dockerfile: args.file ? resolve(args.file) : undefined,
    target: args.target,
    buildArgs,
    stateRoot: resolve(args.root ?? defaultStateRoot()),
    mirrors,
    insecureRegistries: args.insecureRegistries,
    platform: args.platform,
    network: args.network,
    allow: args.allow ?? [],
    snapshotter: args.snapshotter,
    noCache: args.noCache ?? false,
    noCacheFilter: args.noCacheFilter ?? [],
    ignoreOwnership: mode === 'single',
    progress,
    secrets,
  });
  const unregister = onInterrupt(removeTemporaries);
  const pending: PendingOutput[] = [];
  let scratchTree: string | undefined;
  let step: ProgressStep | undefined;
  try {
    step = progress.start(`exporting stage ${result.stageName}`);
    const exportStep = step;
    const root = result.state.root;
    const bytesTo = (out: FileOutputSpec) => byteReporter(exportStep, out.dest);
    const written = await writeImage(result.store, result.image).catch((err: unknown) => Promise.reject(noSpaceError(err, root)));
    const { architecture, os, variant } = result.image.config;
    const platform = { os, architecture, ...(variant ? { variant } : {}) };
    const ignoreOwnership = mode === 'single';
    const layers = result.image.layers;
    const warnings = new Set<string>();
    const notes: string[] = [];
    // Every output is prepared under a temporary name first and committed only when all are ready.
    const prepared = new Map<FileOutputSpec, PendingOutput>();
    let tree: RootfsTree | undefined;
    for (const out of fileOutputs) {
      if (out.type !== 'local') continue;
      const local = await withOutput(out, root, () => prepareLocal(result.store, layers, resolve(out.dest), ignoreOwnership, { preserveSpecial: out.preserveSpecial === true }));
      prepared.set(out, local);
      pending.push(local);
      // A tree whose setuid/setgid bits were dropped is not the image's: a type=tar applies its own.
      if (local.dropped === 0) tree ??= local.tree;
      if (local.note !== undefined) notes.push(local.note);
      for (const w of local.tree.warnings) warnings.add(w);
    }
    for (const out of fileOutputs) {
      if (out.type === 'local') continue;
      const dest = resolve(out.dest);
      let p: PendingOutput;
      if (out.type === 'oci') {
        const entries = taggedDescriptors(written.manifest, out.names ?? args.tags, platform);
        const bytes = bytesTo(out);
        p = await withOutput(out, root, () => prepareOciArchive(result.store, entries, [written.config, written.manifest, ...written.layers], dest, result.state.buildTmp, bytes.onBytes));
        bytes.finish();
      } else if (out.type === 'docker') {
        const bytes = bytesTo(out);
        p = await withOutput(out, root, () => prepareDockerArchive(result.store, { config: written.config, layers }, out.names ?? args.tags, dest, result.state.buildTmp, bytes.onBytes));
        bytes.finish();
      } else {
        if (!tree) {
          scratchTree = await mkdtemp(resolve(result.state.buildTmp, 'rootfs-'));
          const into = scratchTree;
          tree = await withOutput(out, root, () => stagingWrites(() => applyImageLayers(result.store, layers, into, ignoreOwnership)));
          for (const w of tree.warnings) warnings.add(w);
        }
        const from = tree;
        const bytes = bytesTo(out);
        p = await withOutput(out, root, () => prepareRootfsTar(from, dest, bytes.onBytes));
        bytes.finish();
      }
      prepared.set(out, p);
      pending.push(p);
    }
    for (const w of warnings) step.log(`warning: ${w}`);
    for (const n of notes) step.log(n);
    if (args.iidfile !== undefined) pending.push(await prepareSmallFile(resolve(args.iidfile), 'image ID', iidFileContent(written)));
    if (args.metadataFile !== undefined) pending.push(await prepareSmallFile(resolve(args.metadataFile), 'build metadata', metadataFileContent(written, imageNames(args.tags, pushNames))));
    await commitAll(pending);
    for (const out of fileOutputs) step.log(`wrote ${out.dest} (${prepared.get(out)!.kind})`);
    if (args.iidfile !== undefined) step.log(`wrote ${args.iidfile} (image ID)`);
    if (args.metadataFile !== undefined) step.log(`wrote ${args.metadataFile} (build metadata)`);
    step.log(`manifest ${written.manifest.digest}`);
    step.log(`config ${written.config.digest}`);
    step.done();
    step = undefined;
    // The file outputs are in place from here on: a failed push leaves them.
    pending.length = 0;
    if (pushNames.length > 0) {
      await pushOutputs({ store: result.store, written, names: pushNames, insecureRegistries: args.insecureRegistries, baseImages: result.baseImages, progress });
    }
    const size = written.manifest.size + written.config.size + written.layers.reduce((sum, l) => sum + l.size, 0);
    progress.emit({ type: 'summary', digest: written.manifest.digest, size, durationMs: Date.now() - started });
  } catch (err) {
    step?.fail(err instanceof Error ? err.message : String(err));
    await abortAll(pending);
    throw err;
  } finally {
    unregister();
    if (scratchTree !== undefined) await rm(scratchTree, { recursive: true, force: true }).catch(() => undefined);
    await result.close();
  }
  return 0;
}

/** The `-t` tags and the pushed names, without duplicates (compared fully qualified), for `image.name`. */
export function imageNames(tags: string[], pushed: string[]): string[] {
  const seen = new Set<string>();
  return [...tags, ...pushed].filter((n) => {
    const key = parseReference(n).toString();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Byte counts of an output file as `step.bytes` events (id: the destination); the total once it is known. */
function byteReporter(step: ProgressStep, id: string): { onBytes: (n: number) => void; finish: () => void } {
  let written = 0;
  return {
    onBytes: (n) => {
      written = n;
      step.bytes(id, n);
    },
    finish: () => step.bytes(id, written, written),
  };
}

/**
 * Runs one output's preparation; errors without a code name the output they
 * belong to. Space that ran out in the staging area is --root's (`root`).
 */
async function withOutput<T>(out: FileOutputSpec, root: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StagingNoSpaceError) err = noSpaceError(err.cause, root, "for the export's staging");
    const code = err instanceof BuildError ? err.code : 'E_EXPORT';
    throw Object.assign(new BuildError(code, `${outputText(out)}: ${(err as Error).message}`), { cause: err });
  }
}
