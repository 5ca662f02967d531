import { readFile } from 'node:fs/promises';
import { resolveInRoot } from './secure-path.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  home: string;
  additionalGids: number[];
}

interface PasswdEntry { name: string; uid: number; gid: number; home: string }
interface GroupEntry { name: string; gid: number; members: string[] }

async function readLines(root: string, file: string): Promise<string[][]> {
  try {
    const text = await readFile(await resolveInRoot(root, file), 'utf8');
    return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
  } catch {
    return [];
  }
}

async function passwd(root: string): Promise<PasswdEntry[]> {
  return (await readLines(root, '/etc/passwd'))
    .filter((f) => f.length >= 6)
    .map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! }));
}

async function groups(root: string): Promise<GroupEntry[]> {
  return (await readLines(root, '/etc/group'))
    .filter((f) => f.length >= 3)
    .map((f) => ({ name: f[0]!, gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) }));
}

const isNumeric = (s: string) => /^\d+$/.test(s);

/**
 * Resolves a Dockerfile USER or --chown value (`name`, `uid`, `name:group`,
 * `uid:gid`) against the image's /etc/passwd and /etc/group, as runc and
 * Docker do: a numeric uid not in passwd is allowed, an unknown name is not.
 */
export async function resolveUser(root: string, spec: string): Promise<ResolvedUser> {
  const [userPart = '', groupPart] = spec.split(':', 2);
  const users = await passwd(root);
  let uid: number;
  let gid = 0;
  let home = '/';
  let name: string | undefined;
  if (isNumeric(userPart)) {
    uid = Number(userPart);
    const entry = users.find((u) => u.uid === uid);
    if (entry) ({ gid, home, name } = entry);
  } else {
    const entry = users.find((u) => u.name === userPart);
    if (!entry) throw new Error(`unable to find user ${userPart}: no matching entries in passwd file`);
    ({ uid, gid, home, name } = entry);
  }
  const groupList = await groups(root);
  if (groupPart !== undefined && groupPart !== '') gid = groupId(groupList, groupPart);
  if (uid === 0 && home === '/') home = '/root';
  const additionalGids = groupPart === undefined && name !== undefined
    ? groupList.filter((g) => g.members.includes(name!) && g.gid !== gid).map((g) => g.gid)
    : [];
  return { uid, gid, home, additionalGids };
}

/**
 * Resolves an owner for files a build step creates (`COPY --chown`, the
 * directories `WORKDIR` makes under `USER`) as BuildKit's file operations do,
 * which differs from USER for a bare uid: `1234` is 1234:1234 (the reference:
 * "a UID without GID will use the same numeric UID as the GID"), while a bare
 * name takes its passwd group. Unknown names fail; unknown numeric ids are fine.
 */
export async function resolveOwner(root: string, spec: string): Promise<{ uid: number; gid: number }> {
  const [userPart = '', groupPart] = spec.split(':', 2);
  let uid: number;
  let gid: number;
  if (isNumeric(userPart)) {
    uid = Number(userPart);
    gid = uid;
  } else {
    const entry = (await passwd(root)).find((u) => u.name === userPart);
    if (!entry) throw new Error(`unable to find user ${userPart}: no matching entries in passwd file`);
    ({ uid, gid } = entry);
  }
  if (groupPart !== undefined && groupPart !== '') gid = groupId(await groups(root), groupPart);
  return { uid, gid };
}

/** A group given by id or by name (which must be in /etc/group). */
function groupId(groupList: GroupEntry[], group: string): number {
  if (isNumeric(group)) return Number(group);
  const g = groupList.find((e) => e.name === group);
  if (!g) throw new Error(`unable to find group ${group}: no matching entries in group file`);
  return g.gid;
}
