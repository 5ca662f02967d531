// A full disk during a pull, a layer unpack, a RUN step, a step's layer
// write and an export: the build fails with a clear error, nothing
// half-written is left, every stored blob still matches its name, and the
// same --root builds again once there is room. The small filesystems are
// tmpfs mounts made by the test (as root) and owned by the test user; "room"
// is a remount with a larger size.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { leftovers, makeWorkDir, run, runStowage, testEnv, type RunResult, type WorkDir } from '../lib/index.js';

const T = 300_000;

async function mountTmpfs(dir: string, size: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const { uid, gid } = testEnv();
  const r = await run(['mount', '-t', 'tmpfs', '-o', `size=${size},mode=0755,uid=${uid},gid=${gid}`, 'tmpfs', dir]);
  if (r.code !== 0) throw new Error(`mount tmpfs on ${dir}: ${r.stderr}`);
}

async function growTmpfs(dir: string, size: string): Promise<void> {
  const r = await run(['mount', '-o', `remount,size=${size}`, dir]);
  if (r.code !== 0) throw new Error(`remount ${dir} with size=${size}: ${r.stderr}`);
}

async function unmount(dir: string): Promise<void> {
  await run(['umount', '-l', dir]);
}

/** Every blob's sha256 against its file name; returns the names that do not match. */
async function corruptBlobs(root: string): Promise<string[]> {
  const dir = path.join(root, 'content', 'blobs', 'sha256');
  const names = await readdir(dir).catch(() => [] as string[]);
  const bad: string[] = [];
  for (const name of names) {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(path.join(dir, name))) hash.update(chunk as Buffer);
    if (hash.digest('hex') !== name) bad.push(name);
  }
  return bad;
}

const listOrEmpty = (dir: string) => readdir(dir).catch(() => [] as string[]);

describe('disk full', () => {
  let work: WorkDir;
  const mounts: string[] = [];
  beforeAll(async () => {
    work = await makeWorkDir({
      'go.Dockerfile': 'FROM golang:1.21\nRUN true\n',
      'small.Dockerfile': 'FROM busybox\nRUN head -c 3000000 /dev/urandom > /big\n',
      // Random bytes: the layer is as big as the file.
      'fill.Dockerfile': 'FROM busybox\nRUN head -c 40000000 /dev/urandom > /big\n',
      'layer.Dockerfile': 'FROM busybox\nRUN head -c 16000000 /dev/urandom > /big\n',
      'export.Dockerfile': 'FROM busybox\nRUN head -c 8000000 /dev/urandom > /big\n',
    });
  }, T);
  afterAll(async () => {
    for (const m of mounts) await unmount(m);
    await work?.rm();
  }, T);

  const build = (root: string, dockerfile: string, out: string): Promise<RunResult> =>
    runStowage(['build', '--root', root, '--registry-mirror', `docker.io=${testEnv().registry}`, '--progress', 'plain', '-f', dockerfile, '-o', out, '.'], { cwd: work.dir, timeoutMs: T });

  const expectConsistent = async (root: string) => {
    expect(await corruptBlobs(root)).toEqual([]);
    expect(await listOrEmpty(path.join(root, 'content', 'ingest'))).toEqual([]);
    expect(await listOrEmpty(path.join(root, 'snapshots', 'active'))).toEqual([]);
    expect(await listOrEmpty(path.join(root, 'tmp'))).toEqual([]);
    // The root itself is the test's tmpfs mount.
    expect((await leftovers(root)).filter((l) => l !== `mount ${root}`)).toEqual([]);
  };

  /** A fresh tmpfs --root of SIZE, unmounted in afterAll. */
  const smallRoot = async (name: string, size: string): Promise<string> => {
    const root = path.join(work.base, name);
    await mountTmpfs(root, size);
    mounts.push(root);
    return root;
  };
  const re = (s: string) => s.replace(/[/.*+?^${}()|[\]\\]/g, '\\$&');

  test.each([
    ['a pull (the 118 MiB Go layer does not fit)', '40m', false],
    // The layer unpacks while it downloads, so whether the download had finished when the files filled the disk is a race.
    ['a layer unpack (the Go layer fits, its files do not)', '200m', undefined],
  ])('%s fails naming --root; the root stays consistent and builds a smaller image', async (_what, size, pulled) => {
    const root = path.join(work.base, `root-${size}`);
    await mountTmpfs(root, size);
    mounts.push(root);
    const r = await build(root, 'go.Dockerfile', path.join(work.base, `go-${size}.tar`));
    expect(r.code).toBe(1);
    if (pulled !== undefined) expect(/golang:1\.21: pulled sha256:/.test(r.stderr)).toBe(pulled);
    expect(r.stderr).toMatch(new RegExp(`error: go\\.Dockerfile:1: no space left on the device holding --root ${root.replace(/[/.]/g, '\\$&')} \\(ENOSPC`));
    await expectConsistent(root);
    // Space freed by the failed build's cleanup is enough for busybox.
    const again = await build(root, 'small.Dockerfile', path.join(work.base, `small-${size}.tar`));
    expect({ code: again.code, stderr: again.code === 0 ? '' : again.stderr }).toEqual({ code: 0, stderr: '' });
  }, T);

  test('an export that does not fit fails naming the output, leaves no file there, and the cached rebuild exports elsewhere', async () => {
    const root = path.join(work.base, 'root-roomy');
    const outDir = path.join(work.base, 'tiny-out');
    await mountTmpfs(outDir, '1m');
    mounts.push(outDir);
    const r = await build(root, 'small.Dockerfile', path.join(outDir, 'image.tar'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: -o type=oci,dest=.*tiny-out\/image\.tar: ENOSPC: no space left on device/);
    expect(await readdir(outDir)).toEqual([]);
    await expectConsistent(root);
    const again = await build(root, 'small.Dockerfile', path.join(work.base, 'image.tar'));
    expect({ code: again.code, stderr: again.code === 0 ? '' : again.stderr }).toEqual({ code: 0, stderr: '' });
    expect(again.stderr).toMatch(/^#\d+ CACHED$/m);
  }, T);

  // busybox takes about 3 MiB of a root (its blob and its unpacked files).
  test('a RUN that writes more than --root holds fails saying the device is full; after a remount with room the same build succeeds', async () => {
    const root = await smallRoot('root-fill', '24m');
    const r = await build(root, 'fill.Dockerfile', path.join(work.base, 'fill.tar'));
    expect(r.code).toBe(1);
    // The step's own process hit ENOSPC (busybox head says "I/O error"); the step's failure says why.
    expect(r.stderr).toMatch(new RegExp(`error: fill\\.Dockerfile:2: RUN head -c 40000000 /dev/urandom > /big: process did not complete successfully: exit code 1 \\(the device holding --root ${re(root)} has \\d+ bytes left: the step probably ran out of space`));
    await expectConsistent(root);
    await growTmpfs(root, '128m');
    const again = await build(root, 'fill.Dockerfile', path.join(work.base, 'fill.tar'));
    expect({ code: again.code, stderr: again.code === 0 ? '' : again.stderr }).toEqual({ code: 0, stderr: '' });
    await expectConsistent(root);
  }, T);

  test("a step's layer that does not fit next to its files fails with E_NO_SPACE naming --root and leaves no partial layer", async () => {
    // The 16 MB file fits in the step's upper directory; its 16 MB gzip layer then does not.
    const root = await smallRoot('root-layer', '24m');
    const r = await build(root, 'layer.Dockerfile', path.join(work.base, 'layer.tar'));
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(/process did not complete successfully/);
    expect(r.stderr).toMatch(new RegExp(`error: layer\\.Dockerfile:2: no space left on the device holding --root ${re(root)} \\(ENOSPC`));
    await expectConsistent(root);
    await growTmpfs(root, '128m');
    const again = await build(root, 'layer.Dockerfile', path.join(work.base, 'layer.tar'));
    expect({ code: again.code, stderr: again.code === 0 ? '' : again.stderr }).toEqual({ code: 0, stderr: '' });
  }, T);

  test("a docker-archive export whose uncompressed layers do not fit on --root fails naming --root, not the output; the cached rebuild exports once there is room", async () => {
    // type=docker stages the gunzipped layers in --root's tmp before tarring them to the destination.
    const root = await smallRoot('root-export', '24m');
    const outDir = path.join(work.base, 'export-out');
    await mkdir(outDir);
    await run(['chown', `${testEnv().uid}:${testEnv().gid}`, outDir]);
    const dest = path.join(outDir, 'image.tar');
    const r = await build(root, 'export.Dockerfile', `type=docker,dest=${dest}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`error: -o type=docker,dest=${re(dest)}: no space left on the device holding --root ${re(root)} for the export's staging \\(ENOSPC`));
    expect(await readdir(outDir)).toEqual([]);
    await expectConsistent(root);
    await growTmpfs(root, '128m');
    const again = await build(root, 'export.Dockerfile', `type=docker,dest=${dest}`);
    expect({ code: again.code, stderr: again.code === 0 ? '' : again.stderr }).toEqual({ code: 0, stderr: '' });
    expect(again.stderr).toMatch(/^#\d+ CACHED$/m);
    expect(await readdir(outDir)).toEqual(['image.tar']);
  }, T);
});
