import { spawnSync } from 'node:child_process';
import { buildSync } from 'esbuild';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const USER = 'stowage-ci';
const here = dirname(fileURLToPath(import.meta.url));

function lookupUser(name: string): { uid: number; gid: number } | undefined {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) return undefined;
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

const user = lookupUser(USER);
if (!user) console.warn(`rootless overlay test SKIPPED: user ${USER} does not exist`);
const maybe = user && process.getuid?.() === 0 ? test : test.skip;

maybe('overlay backend works rootless (userns + userxattr)', () => {
  if (!user) return;
  const work = mkdtempSync(join(tmpdir(), 'stowage-rootless-'));
  try {
    chownSync(work, user.uid, user.gid);
    chmodSync(work, 0o755);
    // The checkout may sit where the test user cannot read (CI clones under /root):
    // bundle the script with its dependencies into the user's work dir.
    const script = join(work, 'rootless-script.mjs');
    buildSync({
      entryPoints: [join(here, 'rootless-script.js')], outfile: script, bundle: true, platform: 'node', format: 'esm', logLevel: 'error',
      banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    });
    const r = spawnSync(
      'runuser',
      ['-u', USER, '--', 'unshare', '--user', '--mount', '--map-root-user', '--map-auto', '--', process.execPath, script, work],
      { encoding: 'utf8', timeout: 60_000 },
    );
    if (r.status !== 0) throw new Error(`rootless script failed (${r.status}): ${r.stderr}`);
    const out = JSON.parse(r.stdout) as { backend: string; uidMap: string; diffEmpty: boolean; entries: string[]; tree: Record<string, string> };
    expect(out.uidMap).not.toBe('0 0 4294967295'); // really in a user namespace
    expect(out.backend).toBe('overlay');
    expect(out.diffEmpty).toBe(false);
    // user.overlay.opaque and 0/0 whiteouts translated to OCI names
    expect(out.entries).toEqual(expect.arrayContaining(['bin/', 'bin/.wh.su', 'home/', 'home/user/', 'home/user/.wh..wh..opq', 'home/user/new']));
    expect(out.tree).toEqual({
      bin: 'dir 755 0:0',
      d: 'dir 755 0:0',
      'd/n': 'file 644 0:0 n',
      home: 'dir 755 0:0',
      'home/user': 'dir 755 0:0',
      'home/user/new': 'file 644 0:0 new',
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
