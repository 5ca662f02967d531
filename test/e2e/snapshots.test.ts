// Snapshots end to end: the filesystem a build's last step sees must be
// exactly what `umoci unpack` makes of the exported layers, after steps that
// delete, replace, rename, re-create and re-own things across layers.
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { makeUserTempDir, makeWorkDir, removeTree, runStowage, testEnv, umociUnpack, unpackOciTar, type WorkDir } from '../lib/index.js';

const T = 300_000;

const SKIP = new Set(['/proc', '/sys', '/dev', '/etc/resolv.conf', '/etc/hosts', '/tree.txt']);

function dockerfile(): string {
  return `FROM busybox
RUN mkdir -p /data/keep /data/gone/deep /data/opq /data/dir2file && \\
    echo a > /data/keep/a && echo b > /data/gone/deep/b && echo c > /data/opq/c && \\
    echo f > /data/file2dir && touch /data/dir2file/x && \\
    ln -s keep/a /data/link && ln /data/keep/a /data/hard && chown 1000:1000 /data/keep/a
RUN rm -rf /data/gone && rm -rf /data/opq && mkdir /data/opq && echo new > /data/opq/new && \\
    mv /data/keep /data/moved && chmod 600 /data/moved/a && echo more >> /data/hard && \\
    rm /data/file2dir && mkdir /data/file2dir && echo in > /data/file2dir/in && \\
    rm -rf /data/dir2file && echo now-a-file > /data/dir2file && \\
    rm /etc/group && ln -sf /data/moved /data/link && chmod 0700 /home/app
RUN find / -xdev | sort | while read -r p; do stat -c '%n|%F|%a|%s' "$p"; done > /tree.txt
`;
}

interface Entry { type: string; mode: string; size: number }

/** busybox `stat -c '%n|%F|%a|%s'` lines → path → entry. */
function parseListing(text: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  for (const line of text.trim().split('\n')) {
    const [name, type, mode, size] = line.split('|');
    if (!name || [...SKIP].some((s) => name === s || name.startsWith(`${s}/`))) continue;
    out.set(name, { type: type!, mode: mode!, size: type === 'directory' ? 0 : Number(size) });
  }
  return out;
}

async function walk(root: string): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const visit = async (rel: string) => {
    const st = await lstat(path.join(root, rel));
    const name = rel === '' ? '/' : `/${rel}`;
    const type = st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symbolic link' : st.isFile() ? (st.size === 0 ? 'regular empty file' : 'regular file') : 'other';
    if (![...SKIP].some((s) => name === s || name.startsWith(`${s}/`))) {
      out.set(name, { type, mode: (st.mode & 0o7777).toString(8), size: st.isDirectory() ? 0 : st.isSymbolicLink() ? (await readlink(path.join(root, rel))).length : st.size });
    }
    if (st.isDirectory()) for (const child of (await readdir(path.join(root, rel))).sort()) await visit(path.join(rel, child));
  };
  await visit('');
  return out;
}

describe('snapshots and layers agree with what the steps did', () => {
  let work: WorkDir;
  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: dockerfile() });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  for (const backend of ['overlay', 'native'] as const) {
    test(`${backend}: the umoci-unpacked export equals the tree the last step saw`, async () => {
      const out = `${backend}.tar`;
      const r = await runStowage(['build', '--root', path.join(work.base, `root-${backend}`), '--snapshotter', backend, '--registry-mirror', `docker.io=${testEnv().registry}`, '-o', out, '.'], { cwd: work.dir, timeoutMs: T });
      expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
      expect(r.stderr).toContain(`snapshotter ${backend}`);

      const base = await makeUserTempDir('stowage-unpack-');
      try {
        const bundle = await umociUnpack(work.path(out), base);
        const rootfs = path.join(bundle, 'rootfs');
        const { readFile } = await import('node:fs/promises');
        const seen = parseListing(await readFile(path.join(rootfs, 'tree.txt'), 'utf8'));
        const unpacked = await walk(rootfs);
        expect(Object.fromEntries(unpacked)).toEqual(Object.fromEntries(seen));
        // Spot checks of what the steps meant, beyond agreement.
        expect(unpacked.has('/data/gone')).toBe(false);
        expect(unpacked.has('/data/opq/c')).toBe(false);
        expect(unpacked.get('/data/file2dir')?.type).toBe('directory');
        expect(unpacked.get('/data/dir2file')?.type).toBe('regular file');
        expect(unpacked.has('/etc/group')).toBe(false);
        expect(await readlink(path.join(rootfs, 'data/link'))).toBe('/data/moved');
      } finally {
        await removeTree(base);
      }

      // Owners live in the layer headers (a rootless umoci unpack cannot show them).
      const img = await unpackOciTar(work.path(out), path.join(work.base, `layout-${backend}`));
      const second = new Map(img.layers[img.layers.length - 2]!.entries.map((e) => [e.path, e]));
      expect(second.get('data/moved/a')).toMatchObject({ uid: 1000, gid: 1000, mode: 0o600 });
      // overlay records `rm -rf d && mkdir d` as an opaque dir; a tree compare as a whiteout of each old child.
      expect(second.has('data/opq/.wh..wh..opq') || second.has('data/opq/.wh.c')).toBe(true);
      expect(second.get('data/.wh.gone')).toBeDefined();
      expect(second.get('etc/.wh.group')).toBeDefined();
    }, T);
  }
});
