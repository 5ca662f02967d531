import { stat } from 'node:fs/promises';

/**
 * Where an IMAGE argument points, as skopeo spells transports:
 * `oci-archive:PATH[:NAME]` and `docker-archive:PATH[:NAME]` (NAME picks an
 * image, like --name), the path of an existing file, or else a registry
 * reference.
 */
export async function classifyImageArgument(image: string): Promise<{ kind: 'archive'; path: string; name?: string } | { kind: 'registry'; ref: string }> {
  const m = /^(oci-archive|docker-archive):(.+)$/.exec(image);
  if (m !== null) {
    const rest = m[2]!;
    // A :NAME suffix only when the whole string is not an existing file; NAME may hold colons (app:1).
    if (!(await isFile(rest))) {
      for (let colon = rest.indexOf(':'); colon > 0; colon = rest.indexOf(':', colon + 1)) {
        if (await isFile(rest.slice(0, colon))) return { kind: 'archive', path: rest.slice(0, colon), name: rest.slice(colon + 1) };
      }
    }
    return { kind: 'archive', path: rest };
  }
  if (await isFile(image)) return { kind: 'archive', path: image };
  return { kind: 'registry', ref: image };
}

async function isFile(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined))?.isFile() === true;
}
