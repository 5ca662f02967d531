import { RegistryClient, parseReference, type ContentStore, type PushProgress, type Reference } from '@stowage/registry-client';
import { BuildError } from '../errors.js';
import type { Progress } from '../engine/progress.js';
import type { WrittenImage } from './image.js';

export interface PushTarget {
  /** The name as given (`-t` or `name=`). */
  name: string;
  ref: Reference;
}

export interface PushedImage {
  name: string;
  /** Fully qualified name (`registry/repository:tag`). */
  fullName: string;
  digest: string;
}

export interface PushOutputsOptions {
  store: ContentStore;
  written: WrittenImage;
  names: string[];
  /** `--insecure-registry`: the same list the pulls use. Mirrors never apply to pushes. */
  insecureRegistries: string[];
  /** References of the images the build pulled (FROM, COPY --from): candidates for cross-repository mounts. */
  baseImages: Iterable<string>;
  progress: Progress;
  /** For tests: a client factory (default: a RegistryClient over `store`). */
  client?: (log: (line: string) => void) => Pick<RegistryClient, 'push'>;
}

/**
 * Repositories on `target`'s registry to try mounting blobs from: those of
 * the pulled base images on the same registry, other than `target`'s own.
 */
export function mountCandidates(target: Reference, baseImages: Iterable<string>): string[] {
  const out: string[] = [];
  for (const b of baseImages) {
    let ref: Reference;
    try {
      ref = parseReference(b);
    } catch {
      continue;
    }
    if (ref.registry === target.registry && ref.repository !== target.repository && !out.includes(ref.repository)) out.push(ref.repository);
  }
  return out;
}

/** `push <ref>: …`, without repeating a prefix the registry client already put there. */
export function pushError(fullName: string, err: unknown): BuildError {
  let message = err instanceof Error ? err.message : String(err);
  const prefix = `push ${fullName}: `;
  if (message.startsWith(prefix)) message = message.slice(prefix.length);
  const code = err instanceof BuildError ? err.code : (err as { code?: unknown } | undefined)?.code;
  return Object.assign(new BuildError(typeof code === 'string' && code !== '' ? code : 'E_PUSH', `${prefix}${message}`), { cause: err });
}

/**
 * Pushes the built image to each name in turn (blobs the registry has are
 * skipped; base layers are mounted from the base image's repository when it
 * is on the same registry, and every blob from a name pushed before it; then
 * the manifest is PUT under the tag). Stops at
 * the first failure, as a BuildError `push <ref>: …`.
 */
export async function pushOutputs(opts: PushOutputsOptions): Promise<PushedImage[]> {
  const targets: PushTarget[] = opts.names.map((name) => ({ name, ref: parseReference(name) }));
  const bases = [...opts.baseImages];
  const pushed: PushedImage[] = [];
  for (const { name, ref } of targets) {
    const fullName = ref.toString();
    const step = opts.progress.start(`pushing ${fullName}`);
    const log = (line: string): void => step.log(line);
    const client = opts.client?.(log) ?? new RegistryClient({ store: opts.store, insecureRegistries: opts.insecureRegistries, log });
    const mountFrom = mountCandidates(ref, bases);
    const counts: Record<PushProgress['action'], number> = { exists: 0, mounted: 0, uploaded: 0 };
    try {
      const result = await client.push(
        ref,
        { manifest: opts.written.manifest, blobs: [opts.written.config, ...opts.written.layers] },
        {
          ...(ref.tag !== undefined ? { tags: [ref.tag] } : {}),
          ...(mountFrom.length > 0 ? { mountFrom } : {}),
          onProgress: (e) => {
            if (e.action === 'uploaded') step.bytes(e.digest, e.bytes, e.total);
            if (e.bytes !== e.total) return;
            counts[e.action]++;
            step.log(`blob ${e.digest} ${e.action}`);
          },
        },
      );
      step.log(`pushed ${fullName}@${result.digest} (blobs: ${counts.uploaded} uploaded, ${counts.mounted} mounted, ${counts.exists} existing)`);
      step.done();
      pushed.push({ name, fullName, digest: result.digest });
      // The next name on this registry mounts every blob from this one: tried first, it has them all.
      bases.unshift(fullName);
    } catch (err) {
      const e = pushError(fullName, err);
      step.fail(e.message);
      throw e;
    }
  }
  return pushed;
}
