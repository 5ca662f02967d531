import { readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Owners kept in snapshot metadata, for builds whose user namespace maps a
 * single id (no /etc/subuid range): on disk every file belongs to the one
 * mapped user, so the owners a layer or `COPY --chown` asked for are recorded
 * here and written back into the layer tar headers by `diff`.
 */
export interface Owner {
  uid: number;
  gid: number;
}

/** What one snapshot says: owners of paths it wrote, and paths it deleted. */
export interface OwnerRecords {
  /** Root-relative path ('home/app') → owner. */
  set: Map<string, Owner>;
  /** Deleted paths: 'a/b' hides a/b and all below it; 'a/b/' (an opaque dir) only what is below; '/' everything. */
  removed: string[];
}

export const OWNERS_FILE = 'owners.json';

export function emptyOwnerRecords(): OwnerRecords {
  return { set: new Map(), removed: [] };
}

/** Later records win: `next` is applied on top of `base`. */
export function mergeOwnerRecords(base: OwnerRecords, next: OwnerRecords): OwnerRecords {
  const set = new Map(base.set);
  for (const r of next.removed) for (const p of [...set.keys()]) if (covers(r, p)) set.delete(p);
  for (const [p, o] of next.set) set.set(p, o);
  return { set, removed: [...base.removed, ...next.removed] };
}

function covers(removed: string, path: string): boolean {
  if (removed === '/') return true; // the root was made opaque
  if (removed.endsWith('/')) return path.startsWith(removed);
  return path === removed || path.startsWith(`${removed}/`);
}

interface OwnersFile {
  set: [string, number, number][];
  removed: string[];
}

export async function readOwnerRecords(dir: string): Promise<OwnerRecords | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, OWNERS_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const parsed = JSON.parse(text) as OwnersFile;
  return { set: new Map(parsed.set.map(([p, uid, gid]) => [p, { uid, gid }])), removed: parsed.removed };
}

/** Written temp + rename, like all snapshot metadata. */
export async function writeOwnerRecords(dir: string, records: OwnerRecords): Promise<void> {
  const file: OwnersFile = { set: [...records.set].map(([p, o]) => [p, o.uid, o.gid]), removed: records.removed };
  const tmp = join(dirname(join(dir, OWNERS_FILE)), `.${OWNERS_FILE}.${randomBytes(6).toString('hex')}`);
  await writeFile(tmp, JSON.stringify(file));
  await rename(tmp, join(dir, OWNERS_FILE));
}

/**
 * The owner a path has along a chain of snapshots (nearest first): the
 * nearest snapshot that wrote it decides, unless a nearer one deleted it.
 */
export class OwnerView {
  constructor(private readonly chain: readonly OwnerRecords[]) {}

  get empty(): boolean {
    return this.chain.every((r) => r.set.size === 0 && r.removed.length === 0);
  }

  lookup(path: string): Owner | undefined {
    for (const records of this.chain) {
      const owner = records.set.get(path);
      if (owner) return owner;
      if (records.removed.some((r) => covers(r, path))) return undefined;
    }
    return undefined;
  }
}
