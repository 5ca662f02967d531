import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';

/** One line of /proc/PID/uid_map: `inside outside count`. */
export interface IdRange {
  inside: number;
  outside: number;
  count: number;
}

/** How the build's user namespace maps ids, decided once at start. */
export type MappingMode =
  /** Unprivileged user with /etc/subuid and /etc/subgid ranges: files keep their real owners. */
  | 'subid'
  /** Unprivileged user without ranges: only uid 0 exists inside, owners collapse to it. */
  | 'single'
  /** Started as real root: ids map to themselves, the namespace still drops host privileges. */
  | 'root';

export interface IdMapping {
  mode: MappingMode;
  uidMap: IdRange[];
  gidMap: IdRange[];
}

/** Number of ids a container image normally needs (0..65535), as podman and docker assume. */
const CONTAINER_ID_COUNT = 65536;

/**
 * Reads /etc/subuid or /etc/subgid and returns the first range for the user,
 * matched by name or numeric id as shadow-utils does.
 */
export async function readSubordinateRange(file: string, name: string, id: number): Promise<{ start: number; count: number } | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [owner, start, count] = line.trim().split(':');
    if (owner === undefined || start === undefined || count === undefined) continue;
    if (owner !== name && owner !== String(id)) continue;
    // Decimal digits only: Number('') is 0, which would map the build onto the host's root ids.
    if (!/^\d+$/.test(start) || !/^\d+$/.test(count)) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isSafeInteger(s) && Number.isSafeInteger(c) && c > 0) return { start: s, count: c };
  }
  return undefined;
}

/** Decides the mapping for the current process's user. */
export async function planIdMapping(): Promise<IdMapping> {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  if (uid === 0) {
    const all = [{ inside: 0, outside: 0, count: CONTAINER_ID_COUNT }];
    return { mode: 'root', uidMap: all, gidMap: all.map((r) => ({ ...r })) };
  }
  const name = userInfo().username;
  const subuid = await readSubordinateRange('/etc/subuid', name, uid);
  const subgid = await readSubordinateRange('/etc/subgid', name, uid);
  if (subuid && subgid) {
    const uidCount = Math.min(subuid.count, CONTAINER_ID_COUNT - 1);
    const gidCount = Math.min(subgid.count, CONTAINER_ID_COUNT - 1);
    return {
      mode: 'subid',
      uidMap: [{ inside: 0, outside: uid, count: 1 }, { inside: 1, outside: subuid.start, count: uidCount }],
      gidMap: [{ inside: 0, outside: gid, count: 1 }, { inside: 1, outside: subgid.start, count: gidCount }],
    };
  }
  return {
    mode: 'single',
    uidMap: [{ inside: 0, outside: uid, count: 1 }],
    gidMap: [{ inside: 0, outside: gid, count: 1 }],
  };
}

/** True when this process is in the initial user namespace (no mapping applied). */
export async function inInitialUserNamespace(): Promise<boolean> {
  const map = await readFile('/proc/self/uid_map', 'utf8');
  const fields = map.trim().split(/\s+/);
  return fields.length === 3 && fields[0] === '0' && fields[1] === '0' && fields[2] === '4294967295';
}
