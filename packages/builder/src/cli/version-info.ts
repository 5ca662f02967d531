/** Replaced by the commit the bundle was made from (scripts/bundle.mjs); absent when running unbundled. */
declare const __STOWAGE_COMMIT__: string | undefined;

export const VERSION = '0.1.0';

export const COMMIT: string | undefined = typeof __STOWAGE_COMMIT__ === 'string' && __STOWAGE_COMMIT__ !== '' ? __STOWAGE_COMMIT__ : undefined;

/** What `stowage --version` prints. */
export const VERSION_LINE = `stowage ${VERSION}${COMMIT !== undefined ? ` (commit ${COMMIT})` : ''}`;
