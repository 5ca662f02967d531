/**
 * `stowage pull REF`: the image's index/manifest, config and layers into the
 * content store of --root, each verified against its digest; recorded so
 * that a build FROM it uses it without asking the registry again. Nothing
 * is unpacked (the first build does that), so no user namespace is needed.
 */
import { join, resolve } from 'node:path';
import { mkdir } from 'node:fs/promises';
import type { Argv, CommandModule } from 'yargs';
import { runCommand, type BuilderArgs } from './run-command.js';

function builder(y: Argv) {
  return y
    .positional('ref', { type: 'string', demandOption: true, describe: 'Image reference: NAME[:TAG] or NAME@DIGEST (e.g. busybox, registry.example.com/team/app:1)' })
    .option('platform', { type: 'string', describe: 'Platform to pull from an index, os/arch[/variant] (default: this host)' })
    .option('root', { type: 'string', describe: 'State directory (default: $XDG_DATA_HOME/stowage or ~/.local/share/stowage)' })
    .option('registry-mirror', { type: 'string', array: true, nargs: 1, default: [] as string[], describe: 'Mirror for a registry, REGISTRY=HOST[:PORT] (repeatable)' })
    .option('insecure-registry', { type: 'string', array: true, nargs: 1, default: [] as string[], describe: 'Reach HOST[:PORT] over plain HTTP (repeatable; loopback always is)' })
    .option('debug', { type: 'boolean', default: false, describe: 'Print stack traces on error' })
    .epilog(
      'Fetches blobs only: layers are unpacked into snapshots by the first build that uses the image. ' +
      'A build whose FROM names a pulled image (same name and platform) uses it as pulled, without contacting the registry; ' +
      'pull again to update it. Prints NAME@DIGEST (the index digest for a multi-platform image) on stdout.',
    )
    .example('$0 pull busybox:latest', 'Pull docker.io/library/busybox:latest for this host')
    .example('$0 pull --platform linux/arm64 --root ./state ghcr.io/org/app:1', 'The arm64 image, into ./state');
}

type PullArgs = BuilderArgs<typeof builder>;

export const pullCommand: CommandModule<{}, PullArgs> = {
  command: 'pull <ref>',
  describe: 'Pull an image into the content store (no unpacking)',
  builder,
  handler: (args) => runCommand(args.debug, () => runPull(args)),
};

export async function runPull(args: PullArgs): Promise<number> {
  const [rc, { parseMirrors }, { parsePlatform, formatPlatform }, { defaultStateRoot }, { acquireLease }, { ImageStore, imageRecord }, { InvalidOptionError }, { formatSize }] = await Promise.all([
    import('@stowage/registry-client'),
    import('./options.js'),
    import('../engine/platform.js'),
    import('../engine/state-root.js'),
    import('../engine/leases.js'),
    import('../engine/images.js'),
    import('../errors.js'),
    import('./size.js'),
  ]);
  const ref = rc.parseReference(args.ref);
  let platform = rc.hostPlatform();
  if (args.platform !== undefined) {
    try {
      platform = parsePlatform(args.platform);
    } catch (err) {
      throw new InvalidOptionError(`--platform: ${(err as Error).message}`);
    }
  }
  const mirrors = parseMirrors(args['registry-mirror']);
  const root = resolve(args.root ?? defaultStateRoot());
  const log = (line: string) => process.stderr.write(`${line}\n`);
  await mkdir(root, { recursive: true, mode: 0o700 });
  const release = await acquireLease(root, (pid) => log(`waiting for stowage prune (pid ${pid}) to finish`));
  try {
    const store = await rc.ContentStore.open(join(root, 'content'));
    const client = new rc.RegistryClient({ store, platform, mirrors, insecureRegistries: args['insecure-registry'], log });
    const image = await client.pull(ref);
    await new ImageStore(join(root, 'images')).put(imageRecord(image, ref.toString(), formatPlatform(platform), 'pull'));
    const digest = image.index?.digest ?? image.manifestDigest;
    const size = image.manifest.config.size + image.manifest.layers.reduce((n, l) => n + l.size, 0);
    log(`pulled ${ref.toString()} (${formatPlatform(image.platform)}): ${image.manifest.layers.length} layers, ${formatSize(size)}`);
    process.stdout.write(`${ref.registry}/${ref.repository}@${digest}\n`);
    return 0;
  } finally {
    await release();
  }
}
