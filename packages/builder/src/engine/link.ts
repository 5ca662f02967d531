import { MediaTypes, type ContentStore, type Descriptor } from '@stowage/registry-client';
import type { Snapshotter } from '@stowage/snapshotter';
import { InstructionError } from '../errors.js';
import { diffIntoStore } from './step-layer.js';

/**
 * COPY --link / ADD --link, as BuildKit builds them: the sources are copied
 * into an empty tree, that tree's diff is a layer of its own, and the layer
 * is stacked on the previous state afterwards. Nothing of the previous state
 * is read (a destination that is a symlink there is not followed), so the
 * layer, and its cache key, do not depend on the steps before it.
 */

export interface LinkedLayer {
  descriptor: Descriptor;
  diffID: string;
}

/**
 * `--chown` of a linked step. There is no /etc/passwd to read (the step sees
 * an empty tree), so BuildKit takes only numeric ids and the name `root`
 * (llb.WithUser), and a uid alone gives the same gid; any other name is sent
 * to the solver as a lookup in a state that does not exist, and the build
 * fails ("invalid user index: -1"). Here that refusal comes early, with the
 * way out.
 */
export function linkedChown(spec: string, instruction: string): { uid: number; gid: number } {
  const [userPart = '', groupPart] = spec.split(':', 2);
  const id = (part: string, what: 'user' | 'group'): number => {
    if (part === '' || part === 'root') return 0;
    if (/^\d+$/.test(part) && Number(part) <= 0xffffffff) return Number(part);
    throw new InstructionError(`${instruction} --link --chown=${spec}: the ${what} name ${part} cannot be looked up, since a --link step does not read the previous state's /etc/${what === 'user' ? 'passwd' : 'group'} (BuildKit refuses it too); use numeric ids (--chown=UID[:GID]) or drop --link`);
  };
  const uid = id(userPart, 'user');
  const gid = groupPart === undefined ? uid : id(groupPart, 'group');
  return { uid, gid };
}

/**
 * Runs `fill` on an empty active snapshot and turns the result into a layer
 * blob in the store: byte for byte the layer an ordinary COPY gives in a
 * `FROM scratch` stage (no whiteouts, parent directories root-owned 0755).
 * The snapshot itself is dropped: what is kept is the layer, which is then
 * applied onto whatever parent the step has. Undefined when nothing was written;
 * else the layer and its number of entries.
 */
export async function buildLinkedLayer(
  deps: { snapshots: Snapshotter; store: ContentStore; epoch: number },
  key: string,
  fill: (rootfs: string, key: string) => Promise<void>,
): Promise<{ layer: LinkedLayer; entries: number } | undefined> {
  const rootfs = await deps.snapshots.prepare(key);
  try {
    await fill(rootfs, key);
    const layer = await diffIntoStore(deps, key);
    if (layer.empty) return undefined;
    return { layer: { descriptor: { mediaType: MediaTypes.OCI_LAYER_GZIP, digest: layer.digest, size: layer.size }, diffID: layer.diffID }, entries: layer.entries };
  } finally {
    await deps.snapshots.release(key).catch(() => undefined);
  }
}
