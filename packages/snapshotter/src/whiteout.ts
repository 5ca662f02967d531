/**
 * OCI/AUFS whiteout naming and the overlayfs on-disk equivalents.
 *
 * In a layer tar: `.wh.<name>` deletes <name> from lower layers; `<dir>/.wh..wh..opq`
 * hides everything below <dir> that lower layers had. In an overlay upper dir the
 * kernel records the same as a 0/0 character device and an `overlay.opaque=y` xattr
 * (namespace `trusted.` as real root, `user.` with the `userxattr` mount option).
 */
import type { Stats } from 'node:fs';

export const WHITEOUT_PREFIX = '.wh.';
export const WHITEOUT_META_PREFIX = '.wh..wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';

export type WhiteoutKind = { kind: 'opaque' } | { kind: 'delete'; name: string } | { kind: 'meta' } | undefined;

/** Classify a base name from a layer tar. */
export function classifyWhiteout(base: string): WhiteoutKind {
  if (!base.startsWith(WHITEOUT_PREFIX)) return undefined;
  if (base === OPAQUE_MARKER) return { kind: 'opaque' };
  // Other `.wh..wh.*` names are AUFS bookkeeping (e.g. `.wh..wh.plnk`): never real files.
  if (base.startsWith(WHITEOUT_META_PREFIX)) return { kind: 'meta' };
  return { kind: 'delete', name: base.slice(WHITEOUT_PREFIX.length) };
}

/** An overlayfs whiteout in an upper dir: character device 0/0. */
export function isOverlayWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

export type OverlayXattrNamespace = 'trusted' | 'user';

export function opaqueXattr(ns: OverlayXattrNamespace): string {
  return `${ns}.overlay.opaque`;
}

/**
 * Set (possibly empty) on every upper object that is a copy-up of a lower one,
 * so it tells a copied-up directory from one the step made.
 */
export function originXattr(ns: OverlayXattrNamespace): string {
  return `${ns}.overlay.origin`;
}

/** xattrs overlayfs keeps for itself; never copied into layers. */
export function isOverlayPrivateXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.');
}
