// What a --root holds once no build uses it: nothing of dead or finished
// builds (scratch, active snapshots, partial downloads, mounts, containers),
// and a content store whose every blob has the bytes its name says.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';

async function list(dir: string): Promise<string[]> {
  return readdir(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)));
}

async function sha256File(p: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(p)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Blobs under content/blobs/sha256 whose content does not hash to their name. */
export async function corruptBlobs(root: string): Promise<string[]> {
  const dir = path.join(root, 'content', 'blobs', 'sha256');
  const bad: string[] = [];
  for (const name of await list(dir)) if ((await sha256File(path.join(dir, name))) !== name) bad.push(name);
  return bad;
}

/** Processes (not zombies) whose root directory or command line lies under `root`: containers and runc left running. */
export async function processesUnder(root: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await list('/proc')).filter((n) => /^\d+$/.test(n))) {
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replace(/\0/g, ' ').trim();
    if (cmdline === '') continue; // gone, a kernel thread, or a zombie
    const procRoot = await readlink(`/proc/${pid}/root`).catch(() => '');
    if (procRoot.startsWith(root) || cmdline.includes(root)) found.push(`${pid} ${cmdline}`);
  }
  return found;
}

/** Mount points under `root` in any process's mount namespace (/proc/<pid>/mountinfo). */
export async function mountsUnder(root: string): Promise<string[]> {
  const found = new Set<string>();
  for (const pid of (await list('/proc')).filter((n) => /^\d+$/.test(n))) {
    const info = await readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => '');
    for (const line of info.split('\n')) {
      const mountPoint = line.split(' ')[4];
      if (mountPoint?.startsWith(root)) found.add(mountPoint);
    }
  }
  return [...found];
}

/** True when no process has this pid (a dead build's pid, unless reused since). */
export function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** `tmp/build-<pid>-*` scratch directories whose build is gone. */
export async function deadScratch(root: string): Promise<string[]> {
  return (await list(path.join(root, 'tmp'))).filter((n) => pidGone(Number(/^build-(\d+)-/.exec(n)?.[1] ?? NaN)));
}

/** `leases/<pid>` files whose build or pull is gone. */
export async function deadLeases(root: string): Promise<string[]> {
  return (await list(path.join(root, 'leases'))).filter((n) => /^\d+$/.test(n) && pidGone(Number(n)));
}

/** Active snapshots (`snapshots/active/<id>`) whose owner (the pid in their meta.json) is gone, with what they hold. */
export async function deadActiveSnapshots(root: string): Promise<Array<{ id: string; entries: string[] }>> {
  const dir = path.join(root, 'snapshots', 'active');
  const out: Array<{ id: string; entries: string[] }> = [];
  for (const id of await list(dir)) {
    const meta = JSON.parse(await readFile(path.join(dir, id, 'meta.json'), 'utf8').catch(() => '{}')) as { pid?: number };
    if (typeof meta.pid === 'number' && pidGone(meta.pid)) out.push({ id, entries: (await list(path.join(dir, id))).sort() });
  }
  return out;
}

/**
 * Everything a finished build must not leave on `root`, as readable lines
 * (empty when clean): scratch directories, active snapshots, views, snapshot
 * staging, partial downloads, temp files of the build cache, leases of dead
 * builds, blobs with wrong bytes, running containers, mounts.
 */
export async function leftovers(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of ['tmp', 'snapshots/active', 'snapshots/tmp', 'snapshots/views', 'content/ingest']) {
    for (const name of await list(path.join(root, sub))) out.push(`${sub}/${name}`);
  }
  for (const sub of ['cache', 'cache/steps', 'cache/contexts']) {
    for (const name of await list(path.join(root, sub))) if (name.startsWith('.')) out.push(`${sub}/${name}`);
  }
  for (const name of await deadLeases(root)) out.push(`leases/${name} (dead)`);
  for (const b of await corruptBlobs(root)) out.push(`corrupt blob ${b}`);
  for (const p of await processesUnder(root)) out.push(`process ${p}`);
  for (const m of await mountsUnder(root)) out.push(`mount ${m}`);
  return out;
}
