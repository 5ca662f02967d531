import { lstat, mkdir, mkdtemp, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recordMountStubs, removeMountStubs } from '../../src/runtime/runc.js';

let base: string;
let rootfs: string;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'stowage-stubs-'));
  rootfs = join(base, 'rootfs');
  await mkdir(join(rootfs, 'var/cache'), { recursive: true });
  await mkdir(join(rootfs, 'etc'), { recursive: true });
  await writeFile(join(rootfs, 'etc/existing'), '');
  await utimes(join(rootfs, 'var'), new Date(1e9 * 1000), new Date(1e9 * 1000));
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

/** What runc does: mkdir -p for directory targets, an empty file for file targets. */
async function runcCreates(paths: { dir?: string[]; file?: string[] }): Promise<void> {
  for (const d of paths.dir ?? []) await mkdir(join(rootfs, d), { recursive: true });
  for (const f of paths.file ?? []) {
    await mkdir(join(rootfs, f, '..'), { recursive: true });
    await writeFile(join(rootfs, f), '');
  }
}

describe('mount stubs', () => {
  test('every created component goes, deepest first; an existing target stays as it was', async () => {
    const stubs = await recordMountStubs(rootfs, ['/run/secrets/tok', '/var/lib/app/cache', '/etc/existing', '/var/cache']);
    expect(stubs.created.sort()).toEqual(['run', 'run/secrets', 'run/secrets/tok', 'var/lib', 'var/lib/app', 'var/lib/app/cache']);
    await runcCreates({ dir: ['var/lib/app/cache'], file: ['run/secrets/tok'] });
    await removeMountStubs(rootfs, stubs);
    expect((await readdir(rootfs)).sort()).toEqual(['etc', 'var']);
    expect(await readdir(join(rootfs, 'var'))).toEqual(['cache']);
    expect(await readdir(join(rootfs, 'etc'))).toEqual(['existing']);
    // The existing parent gets its time back: the mount left no trace in it.
    expect((await stat(join(rootfs, 'var'))).mtimeMs).toBe(1e9 * 1000);
  });

  test('a stub the step filled stays, with its parents; the parent keeps its new time', async () => {
    const stubs = await recordMountStubs(rootfs, ['/var/lib/app/cache']);
    await runcCreates({ dir: ['var/lib/app/cache'] });
    await writeFile(join(rootfs, 'var/lib/app/written'), 'x');
    await removeMountStubs(rootfs, stubs);
    expect(await readdir(join(rootfs, 'var/lib/app'))).toEqual(['written']);
    expect((await stat(join(rootfs, 'var'))).mtimeMs).not.toBe(1e9 * 1000);
  });

  test('image symlinks are followed inside the rootfs, and a link the step planted is never followed out', async () => {
    await symlink('/var/cache', join(rootfs, 'cachelink'));
    const stubs = await recordMountStubs(rootfs, ['/cachelink/app', '/victim/dir']);
    expect(stubs.created.sort()).toEqual(['var/cache/app', 'victim', 'victim/dir']);
    await runcCreates({ dir: ['var/cache/app', 'victim/dir'] });
    // The step replaces the stub's parent with a link to a host directory holding an empty dir.
    const host = join(base, 'host');
    await mkdir(join(host, 'dir'), { recursive: true });
    await rm(join(rootfs, 'victim'), { recursive: true });
    await symlink(host, join(rootfs, 'victim'));
    await removeMountStubs(rootfs, stubs);
    expect(await lstat(join(host, 'dir')).then((s) => s.isDirectory())).toBe(true);
    expect(await readdir(join(rootfs, 'var/cache'))).toEqual([]);
  });
});
