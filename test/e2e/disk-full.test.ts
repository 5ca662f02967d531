// A full disk during a pull, a layer unpack and an export: the build fails
// with a clear error, nothing half-written is left, every stored blob still
// matches its name, and the same --root builds again once there is room.
// The small filesystems are tmpfs mounts made by the test (as root) and
// owned by the test user.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { makeWorkDir, run, runStowage, testEnv, type RunResult, type WorkDir } from '../lib/index.js';

const T = 300_000;

async function mountTmpfs(dir: string, size: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const { uid, gid } = testEnv();
  const r = await run(['mount', '-t', 'tmpfs', '-o', `size=${size},mode=0755,uid=${uid},gid=${gid}`, 'tmpfs', dir]);
  if (r.code !== 0) throw new Error(`mount tmpfs on ${dir}: ${r.stderr}`);
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
  };

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
});

