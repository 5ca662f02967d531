/**
 * `stowage push ARCHIVE REF`: an OCI image layout tar (or a docker-archive)
 * to a registry, blobs streamed from the tar and checked against their
 * digests on the way (image-archive/), with the registry client's push:
 * blobs the registry has are skipped, then the manifest (and an index's
 * manifests, then the index) under REF's tag.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { runCommand, type BuilderArgs } from './run-command.js';

function builder(y: Argv) {
  return y
    .positional('archive', { type: 'string', demandOption: true, describe: 'OCI image layout tar (stowage build -o type=oci), or a docker-archive tar; oci-archive:PATH[:NAME] and docker-archive:PATH[:NAME] work too' })
    .positional('ref', { type: 'string', demandOption: true, describe: 'Where to push: REGISTRY/REPOSITORY[:TAG] (default tag latest)' })
    .option('name', { type: 'string', describe: 'The image to push when the archive holds several (its org.opencontainers.image.ref.name, io.containerd.image.name or docker RepoTag)' })
    .option('insecure-registry', { type: 'string', array: true, nargs: 1, default: [] as string[], describe: 'Reach HOST[:PORT] over plain HTTP (repeatable; loopback always is)' })
    .option('debug', { type: 'boolean', default: false, describe: 'Print stack traces on error' })
    .epilog(
      'Blobs are read from the tar in place and checked against their digests while they stream; blobs the registry already has are skipped. ' +
      'A multi-platform archive (an index) is pushed whole. A docker-archive gets an OCI manifest over its config and (uncompressed) layers. ' +
      'Credentials come from Docker\'s config.json. Prints NAME@DIGEST on stdout.',
    )
    .example('$0 push app.tar registry.example.com/team/app:1', 'Push the image in app.tar')
    .example('$0 push --name app:2 both.tar registry.example.com/team/app:2', 'Push one image of an archive that holds several');
}

type PushArgs = BuilderArgs<typeof builder>;

export const pushCommand: CommandModule<{}, PushArgs> = {
  command: 'push <archive> <ref>',
  describe: 'Push an OCI image tar to a registry',
  builder,
  handler: (args) => runCommand(args.debug, () => runPush(args)),
};

export async function runPush(args: PushArgs): Promise<number> {
  const [rc, { ImageArchive }, { pushError }, { classifyImageArgument }, { InvalidOptionError }] = await Promise.all([
    import('@stowage/registry-client'),
    import('../image-archive/image-archive.js'),
    import('../export/registry.js'),
    import('./archive-argument.js'),
    import('../errors.js'),
  ]);
  const ref = rc.parseReference(args.ref);
  const target = await classifyImageArgument(args.archive);
  if (target.kind !== 'archive') throw new InvalidOptionError(`${args.archive}: no such file`);
  const archive = await ImageArchive.open(resolve(target.path));
  const image = archive.select(args.name ?? target.name);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const fullName = ref.toString();

  // Every blob the image needs must be in the archive before the first byte goes out.
  const manifests: import('@stowage/registry-client').Descriptor[] = [];
  if ((rc.INDEX_MEDIA_TYPES as readonly string[]).includes(image.descriptor.mediaType)) {
    const index = rc.parseImageIndex(JSON.parse((await archive.readBlob(image.descriptor.digest)).toString('utf8')) as unknown);
    for (const d of index.manifests) {
      if (!rc.MANIFEST_MEDIA_TYPES.includes(d.mediaType)) throw new rc.ManifestInvalidError(`${args.archive}: nested index ${d.digest} is not supported`);
      manifests.push(d);
    }
    if (manifests.length === 0) throw new rc.ManifestInvalidError(`${args.archive}: index ${image.descriptor.digest} lists no manifest`);
  } else {
    manifests.push(image.descriptor);
  }
  for (const m of manifests) {
    const manifest = rc.parseImageManifest(JSON.parse((await archive.readBlob(m.digest)).toString('utf8')) as unknown);
    for (const b of [manifest.config, ...manifest.layers]) {
      if (!(await archive.has(b.digest))) throw new rc.BlobNotFoundError(`${args.archive}: blob ${b.digest} of manifest ${m.digest} is not in the archive`);
    }
  }

  // The client wants a content store; nothing is written to it (blobs come from the archive).
  const scratch = await mkdtemp(join(tmpdir(), 'stowage-push-'));
  try {
    const store = await rc.ContentStore.open(scratch);
    const client = new rc.RegistryClient({ store, insecureRegistries: args['insecure-registry'], log });
    const counts = { exists: 0, mounted: 0, uploaded: 0 };
    const onProgress = (e: import('@stowage/registry-client').PushProgress) => {
      if (e.bytes !== e.total) return;
      counts[e.action]++;
      log(`blob ${e.digest} ${e.action}`);
    };
    const tags = ref.tag !== undefined ? [ref.tag] : [];
    log(`pushing ${archive.path} (${image.names.join(', ') || image.descriptor.digest}) to ${fullName}`);
    let digest: string;
    try {
      if (manifests.length === 1 && manifests[0] === image.descriptor) {
        digest = (await client.push(ref, { manifest: image.descriptor, blobs: [] }, { source: archive, tags, onProgress })).digest;
      } else {
        // An index: its manifests first (by digest), then the index under the tag.
        for (const m of manifests) await client.push(rc.withDigest(ref, m.digest), { manifest: m, blobs: [] }, { source: archive, tags: [], onProgress });
        digest = (await client.push(ref, { manifest: manifests[0]!, index: image.descriptor, blobs: [] }, { source: archive, tags, onProgress })).digest;
      }
    } catch (err) {
      throw pushError(fullName, err);
    }
    log(`pushed ${fullName}@${digest} (blobs: ${counts.uploaded} uploaded, ${counts.mounted} mounted, ${counts.exists} existing)`);
    process.stdout.write(`${ref.registry}/${ref.repository}@${digest}\n`);
    return 0;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
