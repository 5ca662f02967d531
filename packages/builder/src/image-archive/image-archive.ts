/**
 * An image archive read in place: an OCI image layout tar (what
 * `stowage build -o type=oci` and `skopeo copy … oci-archive:` write) or a
 * docker-archive tar (`docker save`, `-o type=docker`). Blobs are byte ranges
 * of the tar, checked against their digest while they are read; the archive
 * is the `BlobSource` a push reads from.
 *
 * A docker-archive has no manifest: one is made (OCI media types; the config
 * bytes as they are; the layer files, uncompressed as docker saves them, as
 * `…layer.v1.tar` layers, or `+gzip` when a file is gzip).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  BlobNotFoundError, DigestMismatchError, MediaTypes, isValidDigest, parseDigest, parseReference,
  type BlobSource, type Descriptor, type ImageManifest,
} from '@stowage/registry-client';
import { InvalidOptionError } from '../errors.js';
import { indexTar, resolveTarFile, type TarEntry } from './tar-index.js';

export const REF_NAME = 'org.opencontainers.image.ref.name';
export const CONTAINERD_NAME = 'io.containerd.image.name';
/** Manifests, indexes and configs are read whole; nothing real comes near this. */
const MAX_JSON_BYTES = 32 * 1024 * 1024;

/** One image of the archive: its top-level descriptor (manifest or index) and the names it carries. */
export interface ArchiveImage {
  descriptor: Descriptor;
  names: string[];
}

type Blob = { entry: TarEntry } | { bytes: Buffer };

export class ImageArchive implements BlobSource {
  private readonly blobs = new Map<string, Blob>();
  /** Per digest: the hash of the bytes handed out so far, while a blob is read from its start in order. */
  private readonly reading = new Map<string, { hash: ReturnType<typeof createHash>; next: number }>();
  readonly images: ArchiveImage[] = [];

  private constructor(readonly path: string, readonly format: 'oci' | 'docker', private readonly index: Map<string, TarEntry>) {}

  static async open(path: string): Promise<ImageArchive> {
    let index: Map<string, TarEntry>;
    try {
      index = await indexTar(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new InvalidOptionError(`${path}: no such file`);
      throw err;
    }
    if (index.has('oci-layout') && index.has('index.json')) {
      const a = new ImageArchive(path, 'oci', index);
      await a.loadOci();
      return a;
    }
    if (index.has('manifest.json')) {
      const a = new ImageArchive(path, 'docker', index);
      await a.loadDocker();
      return a;
    }
    throw new InvalidOptionError(`${path}: neither an OCI image layout (oci-layout, index.json) nor a docker-archive (manifest.json)`);
  }

  private async fileBytes(entry: TarEntry, what: string): Promise<Buffer> {
    if (entry.size > MAX_JSON_BYTES) throw new InvalidOptionError(`${this.path}: ${what} is ${entry.size} bytes, too large`);
    const fh = await open(this.path, 'r');
    try {
      const buf = Buffer.alloc(entry.size);
      const { bytesRead } = await fh.read(buf, 0, entry.size, entry.offset);
      if (bytesRead !== entry.size) throw new InvalidOptionError(`${this.path}: truncated ${what}`);
      return buf;
    } finally {
      await fh.close();
    }
  }

  private async json(path: string): Promise<unknown> {
    const entry = resolveTarFile(this.index, path);
    if (entry === undefined) throw new InvalidOptionError(`${this.path}: ${path} is missing`);
    try {
      return JSON.parse((await this.fileBytes(entry, path)).toString('utf8'));
    } catch (err) {
      if (err instanceof SyntaxError) throw new InvalidOptionError(`${this.path}: ${path} is not valid JSON`);
      throw err;
    }
  }

  private async loadOci(): Promise<void> {
    for (const e of this.index.values()) {
      const m = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(e.path);
      if (m === null || !isValidDigest(`${m[1]}:${m[2]}`)) continue;
      const file = resolveTarFile(this.index, e.path);
      if (file !== undefined) this.blobs.set(`${m[1]}:${m[2]}`, { entry: file });
    }
    const layout = (await this.json('index.json')) as { manifests?: unknown };
    if (!Array.isArray(layout.manifests)) throw new InvalidOptionError(`${this.path}: index.json has no manifests`);
    const byDigest = new Map<string, ArchiveImage>();
    for (const raw of layout.manifests as Descriptor[]) {
      if (typeof raw?.digest !== 'string' || typeof raw.mediaType !== 'string' || typeof raw.size !== 'number') {
        throw new InvalidOptionError(`${this.path}: index.json has a malformed descriptor`);
      }
      parseDigest(raw.digest);
      let img = byDigest.get(raw.digest);
      if (img === undefined) {
        const descriptor: Descriptor = { mediaType: raw.mediaType, digest: raw.digest, size: raw.size, ...(raw.platform ? { platform: raw.platform } : {}) };
        img = { descriptor, names: [] };
        byDigest.set(raw.digest, img);
        this.images.push(img);
      }
      for (const n of [raw.annotations?.[CONTAINERD_NAME], raw.annotations?.[REF_NAME]]) if (n !== undefined && !img.names.includes(n)) img.names.push(n);
    }
  }

  private async loadDocker(): Promise<void> {
    const list = await this.json('manifest.json');
    if (!Array.isArray(list)) throw new InvalidOptionError(`${this.path}: manifest.json is not a list`);
    for (const item of list as Array<{ Config?: unknown; RepoTags?: unknown; Layers?: unknown }>) {
      if (typeof item?.Config !== 'string' || !Array.isArray(item.Layers)) throw new InvalidOptionError(`${this.path}: manifest.json has a malformed entry`);
      const cfgEntry = resolveTarFile(this.index, item.Config);
      if (cfgEntry === undefined) throw new InvalidOptionError(`${this.path}: ${item.Config} is missing`);
      const cfgBytes = await this.fileBytes(cfgEntry, item.Config);
      const cfgDigest = `sha256:${createHash('sha256').update(cfgBytes).digest('hex')}`;
      this.blobs.set(cfgDigest, { bytes: cfgBytes });
      const layers: Descriptor[] = [];
      for (const p of item.Layers as unknown[]) {
        if (typeof p !== 'string') throw new InvalidOptionError(`${this.path}: manifest.json has a malformed layer path`);
        const entry = resolveTarFile(this.index, p);
        if (entry === undefined) throw new InvalidOptionError(`${this.path}: layer ${p} is missing`);
        // Docker 25 names layers by digest (checked as they are read); older archives must be hashed.
        const named = /(?:^|\/)blobs\/sha256\/([a-f0-9]{64})$/.exec(entry.path);
        const digest = named !== null ? `sha256:${named[1]}` : await this.hashEntry(entry);
        this.blobs.set(digest, { entry });
        layers.push({ mediaType: (await this.gzipped(entry)) ? MediaTypes.OCI_LAYER_GZIP : MediaTypes.OCI_LAYER_TAR, digest, size: entry.size });
      }
      const manifest: ImageManifest = {
        schemaVersion: 2,
        mediaType: MediaTypes.OCI_MANIFEST,
        config: { mediaType: MediaTypes.OCI_CONFIG, digest: cfgDigest, size: cfgBytes.byteLength },
        layers,
      };
      const bytes = Buffer.from(JSON.stringify(manifest));
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      this.blobs.set(digest, { bytes });
      const names = Array.isArray(item.RepoTags) ? (item.RepoTags as unknown[]).filter((t): t is string => typeof t === 'string') : [];
      this.images.push({ descriptor: { mediaType: MediaTypes.OCI_MANIFEST, digest, size: bytes.byteLength }, names });
    }
  }

  private async gzipped(entry: TarEntry): Promise<boolean> {
    if (entry.size < 2) return false;
    const fh = await open(this.path, 'r');
    try {
      const b = Buffer.alloc(2);
      await fh.read(b, 0, 2, entry.offset);
      return b[0] === 0x1f && b[1] === 0x8b;
    } finally {
      await fh.close();
    }
  }

  private async hashEntry(entry: TarEntry): Promise<string> {
    const h = createHash('sha256');
    if (entry.size > 0) for await (const chunk of createReadStream(this.path, { start: entry.offset, end: entry.offset + entry.size - 1 })) h.update(chunk as Buffer);
    return `sha256:${h.digest('hex')}`;
  }

  /**
   * The image to use: the one named `name` (a full name, a tag annotation,
   * or a docker-archive RepoTag; compared normalised too), else the only one.
   */
  select(name?: string): ArchiveImage {
    if (this.images.length === 0) throw new InvalidOptionError(`${this.path}: the archive holds no image`);
    const listed = () => this.images.map((i) => (i.names.length > 0 ? i.names.join(', ') : i.descriptor.digest)).join('; ');
    if (name === undefined) {
      if (this.images.length === 1) return this.images[0]!;
      throw new InvalidOptionError(`${this.path} holds ${this.images.length} images (${listed()}); choose one with --name`);
    }
    const norm = (n: string): string | undefined => {
      try {
        return parseReference(n).toString();
      } catch {
        return undefined;
      }
    };
    const want = norm(name);
    const found = this.images.filter((i) => i.names.some((n) => n === name || (want !== undefined && norm(n) === want)) || i.descriptor.digest === name);
    if (found.length === 1) return found[0]!;
    if (found.length === 0) throw new InvalidOptionError(`${this.path}: no image named ${name} (names: ${listed() || 'none'})`);
    throw new InvalidOptionError(`${this.path}: ${found.length} images are named ${name}`);
  }

  // ---- BlobSource ----------------------------------------------------------

  private blob(digest: string): Blob {
    const b = this.blobs.get(digest);
    if (b === undefined) throw new BlobNotFoundError(`blob ${digest} is not in ${this.path}`);
    return b;
  }

  async has(digest: string): Promise<boolean> {
    return this.blobs.has(digest);
  }

  async size(digest: string): Promise<number> {
    const b = this.blob(digest);
    return 'bytes' in b ? b.bytes.byteLength : b.entry.size;
  }

  /** A whole (small) blob, checked against its digest. */
  async readBlob(digest: string): Promise<Buffer> {
    const b = this.blob(digest);
    const bytes = 'bytes' in b ? b.bytes : await this.fileBytes(b.entry, `blob ${digest}`);
    const { algorithm } = parseDigest(digest);
    const actual = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
    if (actual !== digest) throw new DigestMismatchError(`${this.path}: blob ${digest} does not match its digest (it is ${actual})`);
    return bytes;
  }

  /**
   * Streams a blob, or bytes [start, end] of it. Reads that go through a blob
   * in order from byte 0 (a whole upload, or its chunks one after another)
   * are hashed on the way, and the last chunk is held back until the digest
   * is checked: a mismatch fails the read before the upload can complete.
   */
  openRead(digest: string, range?: { start: number; end: number }): NodeJS.ReadableStream {
    const b = this.blob(digest);
    if ('bytes' in b) {
      const bytes = range ? b.bytes.subarray(range.start, range.end + 1) : b.bytes;
      return Readable.from([bytes]);
    }
    return Readable.from(this.verified(digest, b.entry, range?.start ?? 0, range?.end ?? b.entry.size - 1));
  }

  private async *verified(digest: string, entry: TarEntry, start: number, end: number): AsyncGenerator<Buffer> {
    const { algorithm } = parseDigest(digest);
    let state = this.reading.get(digest);
    if (start === 0) {
      state = { hash: createHash(algorithm), next: 0 };
      this.reading.set(digest, state);
    } else if (state?.next !== start) {
      state = undefined; // out of order: cannot check on the way (the registry still checks on commit)
      this.reading.delete(digest);
    }
    let held: Buffer | undefined;
    if (end >= start) {
      for await (const chunk of createReadStream(this.path, { start: entry.offset + start, end: entry.offset + end })) {
        if (held !== undefined) yield held;
        state?.hash.update(chunk as Buffer);
        held = chunk as Buffer;
      }
    }
    if (state !== undefined) {
      state.next = end + 1;
      if (end + 1 >= entry.size) {
        this.reading.delete(digest);
        const actual = `${algorithm}:${state.hash.digest('hex')}`;
        if (actual !== digest) throw new DigestMismatchError(`${this.path}: blob ${digest} does not match its digest (it is ${actual})`);
      }
    }
    if (held !== undefined) yield held;
  }
}
