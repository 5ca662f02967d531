import { createHash } from 'node:crypto';

/**
 * OCI chain IDs: the identity of a stack of layers, so that the snapshot of
 * the same layers is applied once and shared by every image that has them.
 */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const diffId of diffIds) out.push(nextChainId(out[out.length - 1], diffId));
  return out;
}

export function nextChainId(parent: string | undefined, diffId: string): string {
  return parent === undefined ? diffId : `sha256:${createHash('sha256').update(`${parent} ${diffId}`).digest('hex')}`;
}
