import { resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import { buildImage } from '../engine/builder.js';
import { Progress } from '../engine/progress.js';
import { defaultStateRoot } from '../engine/state-root.js';
import { InvalidOptionError } from '../errors.js';
import { taggedDescriptors, writeImage } from '../export/image.js';
import { writeOciArchive } from '../export/oci-archive.js';
import { currentMappingMode, runInUserNamespace } from '../rootless/reexec.js';
import { parseBuildArgs, parseMirrors, parseOutput } from './options.js';
import { parseReference } from '@stowage/registry-client';

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
  network: 'host' | 'none';
  snapshotter: 'auto' | 'overlay' | 'native';
  root?: string;
}

/**
 * `stowage build`. Options are checked before anything else so that mistakes
 * fail fast; then the command re-executes itself inside the build's user
 * namespace (unless already there) and runs the build and the exports.
 */
export async function runBuild(args: BuildCommandArgs): Promise<number> {
  const outputs = args.outputs.map(parseOutput);
  const buildArgs = parseBuildArgs(args.buildArgs);
  const mirrors = parseMirrors(args.mirrors);
  for (const tag of args.tags) {
    try {
      parseReference(tag);
    } catch (err) {
      throw new InvalidOptionError(`-t ${tag}: ${(err as Error).message}`);
    }
  }
  const context = resolve(args.context);
  const contextStat = await stat(context).catch(() => undefined);
  if (!contextStat?.isDirectory()) throw new InvalidOptionError(`build context ${args.context} is not a directory`);

  const mode = currentMappingMode();
  if (mode === undefined) {
    return runInUserNamespace(process.argv.slice(1), (line) => process.stderr.write(`${line}\n`));
  }

  // Modes in layers must not depend on the user's umask (BuildKit creates 0755 directories whatever it is).
  process.umask(0o022);
  const progress = new Progress((line) => process.stderr.write(`${line}\n`));
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
    snapshotter: args.snapshotter,
    ignoreOwnership: mode === 'single',
    progress,
  });
  try {
    const step = progress.start(`exporting stage ${result.stageName}`);
    const written = await writeImage(result.store, result.image);
    const { architecture, os, variant } = result.image.config;
    for (const out of outputs) {
      const entries = taggedDescriptors(written.manifest, args.tags, { os, architecture, ...(variant ? { variant } : {}) });
      await writeOciArchive(result.store, entries, [written.config, written.manifest, ...written.layers], resolve(out.dest), result.state.buildTmp);
      step.log(`wrote ${out.dest} (oci image layout tar)`);
    }
    step.log(`manifest ${written.manifest.digest}`);
    step.log(`config ${written.config.digest}`);
    step.done();
    progress.note(`built ${written.manifest.digest} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  } finally {
    await result.close();
  }
  return 0;
}
