/**
 * `stowage inspect IMAGE`: an image in a registry, or in an OCI/docker
 * archive, described (inspect-format.ts) or printed raw. Registry lookups go
 * through a throwaway content store, so --root is never touched.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import type { Descriptor, ImageIndex, Platform } from '@stowage/registry-client';
import type { InspectInput } from './inspect-format.js';
import { classifyImageArgument } from './archive-argument.js';
import { runCommand, type BuilderArgs } from './run-command.js';

function builder(y: Argv) {
  return y
    .positional('image', {
      type: 'string',
      demandOption: true,
      describe: 'A registry reference (NAME[:TAG] or NAME@DIGEST), oci-archive:PATH[:NAME], docker-archive:PATH[:NAME], or the path of an existing archive file',
    })
    .option('format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'text for people; json: one JSON document with stable fields (see README)' })
    .option('platform', { type: 'string', describe: 'Platform to describe from a multi-platform image, os/arch[/variant] (default: this host, else the first listed)' })
    .option('raw', { type: 'boolean', default: false, describe: 'Print the manifest as stored, byte for byte: the index for a multi-platform image unless --platform is given (a docker-archive: the manifest stowage push would make)' })
    .option('name', { type: 'string', describe: 'For an archive holding several images: which one (as stowage push --name)' })
    .option('insecure-registry', { type: 'string', array: true, nargs: 1, default: [] as string[], describe: 'Reach HOST[:PORT] over plain HTTP (repeatable; loopback always is)' })
    .option('debug', { type: 'boolean', default: false, describe: 'Print stack traces on error' })
    .example('$0 inspect busybox', 'Describe docker.io/library/busybox:latest for this host')
    .example('$0 inspect --format json app.tar', 'The image in an OCI archive, as JSON')
    .example('$0 inspect --raw --platform linux/arm64 registry.example.com/app:1', 'The arm64 manifest as the registry serves it');
}

type InspectArgs = BuilderArgs<typeof builder>;

export const inspectCommand: CommandModule<{}, InspectArgs> = {
  command: 'inspect <image>',
  describe: 'Show an image\'s manifest, config, layers and history (registry or archive)',
  builder,
  handler: (args) => runCommand(args.debug, () => runInspect(args)),
};

/** Reads blobs of one image, wherever it lives; each checked against its digest. */
interface Reader {
  name: string | null;
  source: InspectInput['source'];
  top: Descriptor;
  bytes(desc: Descriptor): Promise<Buffer>;
}

export async function runInspect(args: InspectArgs): Promise<number> {
  const rc = await import('@stowage/registry-client');
  const { InvalidOptionError } = await import('../errors.js');
  let want: Platform | undefined;
  if (args.platform !== undefined) {
    const { parsePlatform } = await import('../engine/platform.js');
    try {
      want = rc.normalizePlatform(parsePlatform(args.platform));
    } catch (err) {
      throw new InvalidOptionError(`--platform: ${(err as Error).message}`);
    }
  }
  const target = await classifyImageArgument(args.image);
  let scratch: string | undefined;
  try {
    let reader: Reader;
    if (target.kind === 'archive') {
      const { ImageArchive } = await import('../image-archive/image-archive.js');
      const archive = await ImageArchive.open(resolve(target.path));
      const name = args.name ?? target.name;
      const image = archive.select(name);
      reader = {
        name: name ?? image.names[0] ?? null,
        source: archive.format === 'oci' ? 'oci-archive' : 'docker-archive',
        top: image.descriptor,
        bytes: (d) => archive.readBlob(d.digest),
      };
    } else {
      if (args.name !== undefined) throw new InvalidOptionError('--name applies to archives only');
      scratch = await mkdtemp(join(tmpdir(), 'stowage-inspect-'));
      const store = await rc.ContentStore.open(scratch);
      const client = new rc.RegistryClient({ store, insecureRegistries: args['insecure-registry'], ...(args.debug ? { log: (l: string) => process.stderr.write(`${l}\n`) } : {}) });
      const top = await client.fetchManifest(target.ref);
      const ref = top.reference;
      reader = {
        name: ref.toString(),
        source: 'registry',
        top: { mediaType: top.mediaType, digest: top.digest, size: top.bytes.byteLength },
        bytes: async (d) => {
          if (d.digest === top.digest) return top.bytes;
          if ([...rc.MANIFEST_MEDIA_TYPES, ...rc.INDEX_MEDIA_TYPES].includes(d.mediaType)) return (await client.fetchManifest(rc.withDigest(ref, d.digest))).bytes;
          await client.fetchBlob(ref, d);
          return store.readBlob(d.digest);
        },
      };
    }
    const json = async (d: Descriptor): Promise<unknown> => JSON.parse((await reader.bytes(d)).toString('utf8'));
    let index: ImageIndex | undefined;
    let manifestDesc = reader.top;
    if ((rc.INDEX_MEDIA_TYPES as readonly string[]).includes(reader.top.mediaType)) {
      index = rc.parseImageIndex(await json(reader.top));
      manifestDesc = choosePlatform(index, want ?? rc.hostPlatform(), want !== undefined, rc);
    }
    if (args.raw) {
      process.stdout.write(await reader.bytes(want !== undefined || index === undefined ? manifestDesc : reader.top));
      return 0;
    }
    const manifestBytes = await reader.bytes(manifestDesc);
    const manifest = rc.parseImageManifest(JSON.parse(manifestBytes.toString('utf8')) as unknown);
    const config = rc.parseImageConfig(await json(manifest.config));
    const manifestSize = manifestBytes.byteLength;
    const { inspectDocument, inspectText } = await import('./inspect-format.js');
    const doc = inspectDocument({
      name: reader.name,
      source: reader.source,
      top: reader.top,
      ...(index !== undefined ? { index } : {}),
      manifest: { digest: manifestDesc.digest, mediaType: manifest.mediaType ?? manifestDesc.mediaType, size: manifestSize, json: manifest },
      config,
    });
    process.stdout.write(args.format === 'json' ? `${JSON.stringify(doc, null, 2)}\n` : inspectText(doc));
    return 0;
  } finally {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  }
}

/** The index entry for `want`; without an explicit --platform, the first image entry when none fits the host. */
function choosePlatform(index: ImageIndex, want: Platform, explicit: boolean, rc: typeof import('@stowage/registry-client')): Descriptor {
  let best: Descriptor | undefined;
  let bestScore = 0;
  const images = index.manifests.filter((d) => rc.MANIFEST_MEDIA_TYPES.includes(d.mediaType) && d.platform?.os !== 'unknown');
  for (const d of images) {
    const score = d.platform ? rc.platformScore(rc.normalizePlatform(want), d.platform) : 0;
    if (score > bestScore) {
      best = d;
      bestScore = score;
    }
  }
  if (best !== undefined) return best;
  if (!explicit && images[0] !== undefined) return images[0];
  const available = images.map((d) => (d.platform ? rc.formatPlatform(d.platform) : '?')).join(', ');
  throw new rc.PlatformNotFoundError(`no image for platform ${rc.formatPlatform(want)} in the index (available: ${available || 'none'})`);
}
