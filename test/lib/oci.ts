// Inspecting and running OCI image archives (tar of an OCI image layout).
import fs from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';
import { testEnv } from './env.js';
import { run, runAsUser, type RunOptions, type RunResult } from './proc.js';
import { chownTree, makeUserTempDir, removeTree } from './workdir.js';

export const MEDIA_TYPES = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;
export const REF_NAME = 'org.opencontainers.image.ref.name';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  [k: string]: unknown;
}
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  [k: string]: unknown;
}
export interface OciIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
  [k: string]: unknown;
}
export interface OciManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
  [k: string]: unknown;
}
export interface OciConfig {
  created?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    Labels?: Record<string, string> | null;
    ExposedPorts?: Record<string, object>;
    Volumes?: Record<string, object>;
    StopSignal?: string;
    [k: string]: unknown;
  };
  rootfs: { type: string; diff_ids: string[] };
  history?: { created?: string; created_by?: string; comment?: string; empty_layer?: boolean }[];
  [k: string]: unknown;
}

export interface LayerEntry {
  /** Normalized: no leading `./` or `/`, no trailing `/`. */
  path: string;
  /** Path as stored in the tar header. */
  rawPath: string;
  /** node-tar's type name: File, Directory, SymbolicLink, Link, CharacterDevice, ... */
  type: string;
  /** Permission bits incl. setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linkpath?: string;
  mtime?: Date;
}
export interface UnpackedLayer {
  descriptor: Descriptor;
  /** Path of the (compressed) layer blob inside the extracted layout. */
  blobPath: string;
  entries: LayerEntry[];
}
export interface UnpackedOci {
  /** Directory holding the extracted layout. */
  dir: string;
  /** Contents of the `oci-layout` file. */
  ociLayout: { imageLayoutVersion: string };
  /** The layout's index.json. */
  layout: OciIndex;
  /** The descriptor in index.json that was followed. */
  topDescriptor: Descriptor;
  /** Set when that descriptor is an image index (multi-platform image). */
  index?: OciIndex;
  /** The manifest chosen (by platform when there is an index). */
  manifestDescriptor: Descriptor;
  manifest: OciManifest;
  config: OciConfig;
  layers: UnpackedLayer[];
  /** Path of a blob inside the layout. */
  blobPath(digest: string): string;
  /** Parses a JSON blob. */
  readJson<T = unknown>(digest: string): Promise<T>;
}

export interface SelectOptions {
  /** "os/arch[/variant]" used when the layout holds an image index (default linux/amd64). */
  platform?: string;
  /** Pick the index.json entry with this org.opencontainers.image.ref.name (default: the only / first one). */
  ref?: string;
}

/** `skopeo inspect oci-archive:PATH` (or `--config` / `--raw`), parsed. */
export async function skopeoInspect(ociTarPath: string, opts: { config?: boolean; raw?: boolean } = {}): Promise<any> {
  const flags = [...(opts.config ? ['--config'] : []), ...(opts.raw ? ['--raw'] : [])];
  const r = await run(['skopeo', 'inspect', ...flags, `oci-archive:${ociTarPath}`], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`skopeo inspect ${flags.join(' ')} oci-archive:${ociTarPath} failed (${r.code}):\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** `skopeo inspect docker://REF` against the loopback registry (REF like `library/busybox:latest`). */
export async function skopeoInspectRegistry(ref: string, opts: { config?: boolean; raw?: boolean } = {}): Promise<any> {
  const { registry } = testEnv();
  const flags = [...(opts.config ? ['--config'] : []), ...(opts.raw ? ['--raw'] : [])];
  const r = await run(['skopeo', 'inspect', '--tls-verify=false', ...flags, `docker://${registry}/${ref}`], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`skopeo inspect docker://${registry}/${ref} failed (${r.code}):\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

/**
 * Copies REF (e.g. `library/busybox:latest`) from the loopback registry into an
 * oci-archive at DEST (`all`: every platform of an index, else the host's).
 */
export async function pullToOciArchive(ref: string, dest: string, opts: { all?: boolean; tag?: string } = {}): Promise<void> {
  const { registry } = testEnv();
  const r = await run(
    [
      'skopeo',
      'copy',
      '--quiet',
      '--src-tls-verify=false',
      ...(opts.all ? ['--all'] : []),
      `docker://${registry}/${ref}`,
      `oci-archive:${dest}:${opts.tag ?? 'latest'}`,
    ],
    { timeoutMs: 300_000 },
  );
  if (r.code !== 0) throw new Error(`skopeo copy ${ref} -> ${dest} failed (${r.code}):\n${r.stderr}`);
}

function parsePlatform(p: string): Platform {
  const [os = '', architecture = '', variant] = p.split('/');
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** Picks the index.json descriptor, following an image index to the manifest for the platform. */
async function selectManifest(
  dir: string,
  layout: OciIndex,
  opts: SelectOptions,
): Promise<{ top: Descriptor; index?: OciIndex; manifestDescriptor: Descriptor }> {
  const blob = (d: string) => blobPathIn(dir, d);
  let top: Descriptor | undefined;
  if (opts.ref !== undefined) top = layout.manifests.find((m) => m.annotations?.[REF_NAME] === opts.ref);
  else top = layout.manifests[0];
  if (!top) throw new Error(`no manifest${opts.ref ? ` with ref ${opts.ref}` : ''} in ${dir}/index.json: ${JSON.stringify(layout)}`);
  if (top.mediaType !== MEDIA_TYPES.index && top.mediaType !== MEDIA_TYPES.dockerList) {
    return { top, manifestDescriptor: top };
  }
  const index = JSON.parse(await fs.readFile(blob(top.digest), 'utf8')) as OciIndex;
  const want = parsePlatform(opts.platform ?? 'linux/amd64');
  const candidates = index.manifests.filter(
    (m) =>
      m.platform &&
      m.platform.os === want.os &&
      m.platform.architecture === want.architecture &&
      (!want.variant || m.platform.variant === want.variant),
  );
  const chosen = candidates[0] ?? (index.manifests.length === 1 ? index.manifests[0] : undefined);
  if (!chosen) throw new Error(`no ${opts.platform ?? 'linux/amd64'} manifest in image index ${top.digest}: ${JSON.stringify(index)}`);
  return { top, index, manifestDescriptor: chosen };
}

function blobPathIn(dir: string, digest: string): string {
  const [alg, hex] = digest.split(':');
  if (!alg || !hex) throw new Error(`bad digest ${digest}`);
  return path.join(dir, 'blobs', alg, hex);
}

const normalize = (p: string) => p.replace(/^(\.\/)+/, '').replace(/^\/+/, '').replace(/\/+$/, '');

/** Lists a (gzip/uncompressed) layer tar with node-tar. */
export async function listLayer(blobPath: string): Promise<LayerEntry[]> {
  const entries: LayerEntry[] = [];
  await tar.t({
    file: blobPath,
    onReadEntry: (e) => {
      entries.push({
        path: normalize(e.path),
        rawPath: e.path,
        type: e.type,
        mode: (e.mode ?? 0) & 0o7777,
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        size: e.size,
        ...(e.linkpath ? { linkpath: e.linkpath } : {}),
        ...(e.mtime ? { mtime: e.mtime } : {}),
      });
    },
  });
  return entries;
}

/** Content of the file at ENTRYPATH (normalized as in LayerEntry.path) in a layer blob, or undefined. */
export async function readLayerFile(blobPath: string, entryPath: string): Promise<Buffer | undefined> {
  const want = normalize(entryPath);
  let found: Buffer | undefined;
  await tar.t({
    file: blobPath,
    onReadEntry: (e) => {
      if (normalize(e.path) !== want || e.type !== 'File') return;
      const chunks: Buffer[] = [];
      e.on('data', (c: Buffer) => chunks.push(c));
      e.on('end', () => {
        found = Buffer.concat(chunks);
      });
    },
  });
  return found;
}

/**
 * Extracts the OCI archive at TARPATH into DIR (created if needed) and parses
 * index.json, the image index (if any), the manifest (for opts.platform, default
 * linux/amd64), the config and every layer's entries.
 */
export async function unpackOciTar(tarPath: string, dir: string, opts: SelectOptions = {}): Promise<UnpackedOci> {
  await fs.mkdir(dir, { recursive: true });
  await tar.x({ file: tarPath, cwd: dir, preserveOwner: false });
  const ociLayout = JSON.parse(await fs.readFile(path.join(dir, 'oci-layout'), 'utf8')) as { imageLayoutVersion: string };
  const layout = JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8')) as OciIndex;
  const { top, index, manifestDescriptor } = await selectManifest(dir, layout, opts);
  const readJson = async <T>(digest: string) => JSON.parse(await fs.readFile(blobPathIn(dir, digest), 'utf8')) as T;
  const manifest = await readJson<OciManifest>(manifestDescriptor.digest);
  const config = await readJson<OciConfig>(manifest.config.digest);
  const layers: UnpackedLayer[] = [];
  for (const d of manifest.layers) {
    const blobPath = blobPathIn(dir, d.digest);
    layers.push({ descriptor: d, blobPath, entries: await listLayer(blobPath) });
  }
  return {
    dir,
    ociLayout,
    layout,
    topDescriptor: top,
    ...(index ? { index } : {}),
    manifestDescriptor,
    manifest,
    config,
    layers,
    blobPath: (digest: string) => blobPathIn(dir, digest),
    readJson,
  };
}

export interface RunImageOptions extends SelectOptions {
  /** Replaces the process args (the image's Entrypoint + Cmd). */
  args?: string[];
  /** Added to / overriding the image's Env inside the container. */
  env?: Record<string, string>;
  /** Working directory inside the container (default: the image's WorkingDir). */
  cwd?: string;
  /** Overrides the image's User: a rootless umoci bundle maps only uid 0, so other users cannot be entered. */
  user?: { uid: number; gid: number };
  timeoutMs?: number;
  input?: RunOptions['input'];
}

let runSeq = 0;

/**
 * `umoci unpack --rootless` of the archive's image (chosen by opts) as the
 * test user into `<base>/bundle` (rootfs in `<base>/bundle/rootfs`); `base`
 * must be a directory owned by the test user (makeUserTempDir).
 */
export async function umociUnpack(ociTarPath: string, base: string, opts: SelectOptions = {}): Promise<string> {
  const e = testEnv();
  const bundle = path.join(base, 'bundle');
  const layoutDir = path.join(base, 'layout');
  const img = await unpackOciTar(ociTarPath, layoutDir, opts);
  // umoci wants a tag pointing straight at a manifest: rewrite our copy of index.json.
  const desc: Descriptor = { ...img.manifestDescriptor, annotations: { ...img.manifestDescriptor.annotations, [REF_NAME]: 'run' } };
  delete desc.platform;
  await fs.writeFile(path.join(layoutDir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [desc] }));
  await chownTree(base, e.uid, e.gid);
  const unpack = await runAsUser(['umoci', 'unpack', '--rootless', '--image', `${layoutDir}:run`, bundle], { cwd: base, timeoutMs: 300_000 });
  if (unpack.code !== 0) throw new Error(`umoci unpack failed (${unpack.code}):\n${unpack.stderr}${unpack.stdout}`);
  return bundle;
}

/**
 * Runs the image in the OCI archive as the test user: `umoci unpack --rootless`
 * into a bundle, then `runc --root <tmp> run` (no tty). Returns the container's
 * exit code and output; removes everything afterwards. Throws when umoci fails.
 */
export async function runImage(ociTarPath: string, opts: RunImageOptions = {}): Promise<RunResult> {
  const e = testEnv();
  const base = await makeUserTempDir('stowage-run-');
  const id = `stowage-e2e-${process.pid}-${++runSeq}`;
  const runcRoot = path.join(base, 'runc');
  const bundle = path.join(base, 'bundle');
  try {
    await umociUnpack(ociTarPath, base, opts);

    const cfgPath = path.join(bundle, 'config.json');
    const spec = JSON.parse(await fs.readFile(cfgPath, 'utf8'));
    spec.process.terminal = false;
    if (opts.args) spec.process.args = opts.args;
    if (opts.cwd) spec.process.cwd = opts.cwd;
    if (opts.user) spec.process.user = { uid: opts.user.uid, gid: opts.user.gid };
    if (opts.env) {
      const env: string[] = (spec.process.env ?? []).filter((kv: string) => !(kv.split('=')[0]! in opts.env!));
      for (const [k, v] of Object.entries(opts.env)) env.push(`${k}=${v}`);
      spec.process.env = env;
    }
    await fs.writeFile(cfgPath, JSON.stringify(spec, null, 2));
    await fs.chown(cfgPath, e.uid, e.gid);

    return await runAsUser(['runc', '--root', runcRoot, 'run', '--bundle', bundle, id], {
      cwd: base,
      timeoutMs: opts.timeoutMs ?? 120_000,
      ...(opts.input !== undefined ? { input: opts.input } : {}),
    });
  } finally {
    await runAsUser(['runc', '--root', runcRoot, 'delete', '--force', id], { cwd: base, timeoutMs: 30_000 }).catch(() => undefined);
    await removeTree(base);
  }
}
