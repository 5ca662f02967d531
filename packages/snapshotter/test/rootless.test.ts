import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOTLESS_USER as USER, bundleScript, lookupUser, makeUserWorkDir, runInUserNamespace } from './rootless-harness.js';

const user = lookupUser(USER);
if (!user) console.warn(`rootless overlay test SKIPPED: user ${USER} does not exist`);
const maybe = user && process.getuid?.() === 0 ? test : test.skip;

maybe('overlay backend works rootless (userns + userxattr)', () => {
  if (!user) return;
  const work = makeUserWorkDir('stowage-rootless-', user);
  try {
    // The checkout may sit where the test user cannot read (CI clones under /root):
    // bundle the script with its dependencies into the user's work dir.
    const script = bundleScript('rootless-script.js', join(work, 'rootless-script.mjs'));
    const r = runInUserNamespace(script, [work], { timeoutMs: 60_000 });
    if (r.status !== 0) throw new Error(`rootless script failed (${r.status}): ${r.stderr}`);
    const out = JSON.parse(r.stdout) as { backend: string; uidMap: string; diffEmpty: boolean; entries: string[]; stubEntries: string[]; tree: Record<string, string> };
    expect(out.uidMap).not.toBe('0 0 4294967295'); // really in a user namespace
    expect(out.backend).toBe('overlay');
    expect(out.diffEmpty).toBe(false);
    // user.overlay.opaque and 0/0 whiteouts translated to OCI names
    expect(out.entries).toEqual(expect.arrayContaining(['bin/', 'bin/.wh.su', 'home/', 'home/user/', 'home/user/.wh..wh..opq', 'home/user/new']));
    // Copied-up directories whose metadata still matches the lower are not changes.
    expect(out.stubEntries).toEqual(['bin/', 'bin/new', 'home/']);
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
