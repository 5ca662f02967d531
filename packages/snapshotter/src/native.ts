/**
 * Native backend helpers: tree copies, rebuilding a tree from recorded layers,
 * disk usage. No mounts needed anywhere.
 */
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { applyLayer } from './apply.js';
import { SnapshotError } from './errors.js';

const execFileP = promisify(execFile);

/**
 * Copy `src` to a new directory `dest`, preserving everything cp -a preserves
 * (ownership, modes, timestamps in ns, hardlinks, xattrs); reflinks make it cheap
 * on btrfs/xfs. `dest` must not exist.
 */
export async function copyTree(src: string, dest: string): Promise<void> {
  try {
    await execFileP('cp', ['-a', '--reflink=auto', '--', src, dest], { maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const stderr = (err as { stderr?: unknown }).stderr;
    throw new SnapshotError(`copying snapshot tree failed: ${typeof stderr === 'string' ? stderr.trim() : String(err)}`, 'E_SNAPSHOT', { cause: err });
  }
}

let fewIds: Promise<boolean> | undefined;

/** True when this user namespace maps too few ids for image ownership (chown would fail). */
function mapsFewIds(): Promise<boolean> {
  fewIds ??= readFile('/proc/self/uid_map', 'utf8').then(
    (m) => m.trim().split('\n').reduce((n, line) => n + Number(line.trim().split(/\s+/)[2] ?? 0), 0) < 65536,
    () => false,
  );
  return fewIds;
}

export interface RecordedLayer {
  /** Absolute path of the gzip layer file. */
  file: string;
  diffID: string;
  name: string;
}

/**
 * Materialise a tree at `dest` (must not exist): a copy of `from` (or an empty
 * dir), then each layer applied in order, checking each one's diffID.
 */
export async function rebuildTree(dest: string, from: string | undefined, layers: RecordedLayer[]): Promise<void> {
  if (from !== undefined) await copyTree(from, dest);
  else await mkdir(dest, { mode: 0o755 });
  const ignoreOwnership = await mapsFewIds();
  for (const l of layers) {
    const r = await applyLayer(dest, createReadStream(l.file), { ignoreOwnership });
    if (r.diffID !== l.diffID) {
      throw new SnapshotError(`rebuilding snapshot ${l.name}: its recorded layer unpacks to ${r.diffID}, expected ${l.diffID}`);
    }
  }
}

export interface Usage {
  /** Bytes allocated (st_blocks × 512), each inode counted once. */
  size: number;
  inodes: number;
}

/** Disk usage below `dir` (inclusive), hardlinks counted once, as containerd's fs.DiskUsage. */
export async function diskUsage(dir: string, skip: (rel: string) => boolean = () => false): Promise<Usage> {
  const seen = new Set<string>();
  const u: Usage = { size: 0, inodes: 0 };
  const walk = async (abs: string, rel: string): Promise<void> => {
    let st;
    try {
      st = await lstat(abs, { bigint: true });
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') return; // moved away concurrently
      throw err;
    }
    const id = `${st.dev}:${st.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
      u.inodes++;
      u.size += Number(st.blocks) * 512;
    }
    if (st.isDirectory()) {
      let names: string[];
      try {
        names = await readdir(abs);
      } catch {
        return;
      }
      for (const n of names) {
        const r = rel === '' ? n : `${rel}/${n}`;
        if (!skip(r)) await walk(join(abs, n), r);
      }
    }
  };
  await walk(dir, '');
  return u;
}
