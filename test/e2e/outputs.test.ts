// Outputs other than the OCI tar (issue 5 item 4): one build writes an OCI
// tar, a docker-archive tar, the root filesystem as a directory and as a tar,
// the image ID and buildx-style metadata; checked with skopeo, node-tar and
// podman (load and run, rootless).
// A failing build leaves none of them behind.
import { lstat, mkdir, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';
import { makeWorkDir, run, runAsUser, runStowage, skopeoInspect, testEnv, type WorkDir } from '../lib/index.js';

const T = 300_000;

const DOCKERFILE = `FROM busybox AS build
RUN mkdir -p /out && echo hello > /out/hello.txt && echo bye > /out/gone.txt

FROM busybox
COPY --from=build /out/ /app/
COPY --chown=1000:1000 owned.txt /app/owned.txt
RUN rm /app/gone.txt && ln -s hello.txt /app/link
CMD ["cat", "/app/hello.txt"]
`;

const OUTPUT_ARGS = ['-o', 'type=oci,dest=a.tar', '-o', 'type=docker,dest=d.tar', '-o', 'type=local,dest=rootfs', '-o', 'type=tar,dest=fs.tar', '--iidfile', 'id.txt', '--metadata-file', 'meta.json', '-t', 'demo:1'];
const OUTPUT_NAMES = ['a.tar', 'd.tar', 'rootfs', 'fs.tar', 'id.txt', 'meta.json'];

function mirror(): string[] {
  return ['--registry-mirror', `docker.io=${testEnv().registry}`];
}

async function skopeo(args: string[]): Promise<string> {
  const r = await run(['skopeo', ...args], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`skopeo ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r.stdout;
}

async function walk(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(path.join(root, rel))).sort()) {
    const p = rel ? `${rel}/${name}` : name;
    out.push(p);
    if ((await lstat(path.join(root, p))).isDirectory()) out.push(...(await walk(root, p)));
  }
  return out;
}

interface TarEntry {
  path: string;
  type: string;
  uid: number;
  gid: number;
  linkpath?: string;
}

async function listTar(file: string): Promise<TarEntry[]> {
  const out: TarEntry[] = [];
  await tar.t({ file, onReadEntry: (e) => out.push({ path: e.path, type: e.type, uid: e.uid ?? -1, gid: e.gid ?? -1, ...(e.linkpath ? { linkpath: e.linkpath } : {}) }) });
  return out;
}

async function readTarFile(file: string, want: string): Promise<string | undefined> {
  let found: string | undefined;
  await tar.t({
    file,
    onReadEntry: (e) => {
      if (e.path !== want) return;
      const chunks: Buffer[] = [];
      e.on('data', (c: Buffer) => chunks.push(c));
      e.on('end', () => {
        found = Buffer.concat(chunks).toString('utf8');
      });
    },
  });
  return found;
}

describe('outputs: oci, docker, local, tar, --iidfile, --metadata-file in one build', () => {
  let work: WorkDir;
  let iid = '';

  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: DOCKERFILE, 'owned.txt': 'owned\n' });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('the build writes every output, owned by the user, and no temporaries', async () => {
    const r = await runStowage(['build', '--root', work.root, ...mirror(), ...OUTPUT_ARGS, '.'], { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    for (const name of OUTPUT_NAMES) expect((await lstat(work.path(name))).uid).toBe(testEnv().uid);
    expect((await lstat(work.path('rootfs'))).isDirectory()).toBe(true);
    expect((await readdir(work.dir)).filter((n) => n.includes('.stowage-'))).toEqual([]);
    iid = await readFile(work.path('id.txt'), 'utf8');
    expect(iid).toMatch(/^sha256:[0-9a-f]{64}$/); // no newline, as docker writes it
  }, T);

  test('--metadata-file: the OCI tar\'s manifest digest, the config digest = the iidfile, the descriptor and the name', async () => {
    const meta = JSON.parse(await readFile(work.path('meta.json'), 'utf8'));
    const oci = await skopeoInspect(work.path('a.tar'));
    const rawManifest = await skopeo(['inspect', '--raw', `oci-archive:${work.path('a.tar')}`]);
    expect(meta['containerimage.digest']).toBe(oci.Digest);
    expect(meta['containerimage.config.digest']).toBe(iid);
    expect(meta['containerimage.descriptor']).toEqual({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: oci.Digest, size: Buffer.byteLength(rawManifest) });
    expect(meta['image.name']).toBe('docker.io/library/demo:1');
    expect(JSON.parse(rawManifest).config.digest).toBe(iid);
  }, T);

  test('type=docker: skopeo reads it; its config is the image ID; its layers are the OCI image\'s diffIDs', async () => {
    const file = work.path('d.tar');
    const info = JSON.parse(await skopeo(['inspect', `docker-archive:${file}`]));
    const raw = JSON.parse(await skopeo(['inspect', '--raw', `docker-archive:${file}`]));
    const config = JSON.parse(await skopeo(['inspect', '--config', `docker-archive:${file}`]));
    const ociConfig = await skopeoInspect(work.path('a.tar'), { config: true });
    expect(raw.config.digest).toBe(iid);
    expect(config.rootfs.diff_ids).toEqual(ociConfig.rootfs.diff_ids);
    expect(info.Layers).toEqual(ociConfig.rootfs.diff_ids);
    expect(config.config.Cmd).toEqual(['cat', '/app/hello.txt']);
    // By name too, as `docker load` would tag it.
    const named = JSON.parse(await skopeo(['inspect', '--raw', `docker-archive:${file}:demo:1`]));
    expect(named.config.digest).toBe(iid);
    const manifest = JSON.parse((await readTarFile(file, 'manifest.json'))!);
    expect(manifest).toHaveLength(1);
    expect(manifest[0].RepoTags).toEqual(['demo:1']);
    expect(manifest[0].Config).toBe(`blobs/sha256/${iid.slice('sha256:'.length)}`);
    expect(manifest[0].Layers).toEqual(ociConfig.rootfs.diff_ids.map((d: string) => `blobs/sha256/${d.slice('sha256:'.length)}`));
    expect(JSON.parse((await readTarFile(file, 'repositories'))!)).toEqual({ demo: { 1: ociConfig.rootfs.diff_ids.at(-1).slice('sha256:'.length) } });
  }, T);

  test('podman load (rootless, as the user) takes the docker and the OCI tarball, tags them, and runs the image', async () => {
    // podman's own storage for this test, in the user's hands; runc as its runtime (crun fails on this host's cgroups).
    const store = path.join(work.base, 'podman');
    for (const d of ['', 'run', 'home']) await run(['install', '-d', '-m', '0700', '-o', String(testEnv().uid), '-g', String(testEnv().gid), path.join(store, d)]);
    const podman = async (args: string[]) => {
      const r = await runAsUser(
        ['podman', '--root', path.join(store, 'storage'), '--runroot', path.join(store, 'runroot'), '--storage-driver', 'vfs', '--events-backend', 'file', '--cgroup-manager', 'cgroupfs', '--runtime', 'runc', ...args],
        // cwd: podman re-executes itself and enters its cwd again, which must be the user's (CI's checkout under /root is not).
        { cwd: store, env: { HOME: path.join(store, 'home'), XDG_RUNTIME_DIR: path.join(store, 'run') }, timeoutMs: 120_000 },
      );
      expect({ args, code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ args, code: 0, stderr: '' });
      return r.stdout;
    };
    // podman qualifies a docker-archive's short RepoTags with localhost/, and takes an OCI tar's name from io.containerd.image.name.
    expect(await podman(['load', '-i', work.path('d.tar')])).toMatch(/^Loaded image: localhost\/demo:1$/m);
    expect(await podman(['load', '-i', work.path('a.tar')])).toMatch(/^Loaded image: docker\.io\/library\/demo:1$/m);
    const ids = (await podman(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}'])).trim().split('\n').sort();
    expect(ids).toEqual([`docker.io/library/demo:1 ${iid.slice(7, 19)}`, `localhost/demo:1 ${iid.slice(7, 19)}`]);
    for (const name of ['localhost/demo:1', 'docker.io/library/demo:1']) {
      expect(await podman(['run', '--rm', '--network', 'none', name])).toBe('hello\n');
    }
    expect(await podman(['run', '--rm', '--network', 'none', 'localhost/demo:1', 'sh', '-c', 'ls /app; stat -c %u:%g /app/owned.txt'])).toBe('hello.txt\nlink\nowned.txt\n1000:1000\n');
  }, T);

  test('type=docker: skopeo copy docker-archive: → oci: works and keeps the filesystem and config', async () => {
    const dest = path.join(work.base, 'copied');
    await skopeo(['copy', `docker-archive:${work.path('d.tar')}`, `oci:${dest}:copied`]);
    // The conversion to an OCI manifest re-serialises the config (containers/image), so compare contents, not digests.
    const copied = JSON.parse(await skopeo(['inspect', '--config', `oci:${dest}:copied`]));
    const ociConfig = await skopeoInspect(work.path('a.tar'), { config: true });
    expect(copied.rootfs.diff_ids).toEqual(ociConfig.rootfs.diff_ids);
    expect(copied.config.Cmd).toEqual(['cat', '/app/hello.txt']);
  }, T);

  test('type=local: the final root filesystem, whiteouts applied, none written', async () => {
    const root = work.path('rootfs');
    const files = await walk(root);
    expect(files).toEqual(expect.arrayContaining(['app', 'app/hello.txt', 'app/owned.txt', 'app/link', 'bin/busybox']));
    expect(files).not.toContain('app/gone.txt');
    expect(files.filter((f) => path.basename(f).startsWith('.wh.'))).toEqual([]);
    expect(await readFile(path.join(root, 'app/hello.txt'), 'utf8')).toBe('hello\n');
    expect(await readlink(path.join(root, 'app/link'))).toBe('hello.txt');
    // Root-owned image files belong to the user (the namespace's root is the user).
    expect((await lstat(path.join(root, 'app/hello.txt'))).uid).toBe(testEnv().uid);
  }, T);

  test('type=tar: the same tree as one tar, image owners kept, no whiteouts', async () => {
    const entries = await listTar(work.path('fs.tar'));
    const paths = entries.map((e) => e.path.replace(/\/$/, ''));
    expect(paths).toEqual(expect.arrayContaining(['app', 'app/hello.txt', 'app/owned.txt', 'app/link', 'bin/busybox']));
    expect(paths).not.toContain('app/gone.txt');
    expect(paths.filter((p) => path.basename(p).startsWith('.wh.'))).toEqual([]);
    expect(paths).toEqual((await walk(work.path('rootfs'))));
    const by = Object.fromEntries(entries.map((e) => [e.path.replace(/\/$/, ''), e]));
    expect(by['app/owned.txt']).toMatchObject({ uid: 1000, gid: 1000 });
    expect(by['app/hello.txt']).toMatchObject({ uid: 0, gid: 0, type: 'File' });
    expect(by['app/link']).toMatchObject({ type: 'SymbolicLink', linkpath: 'hello.txt' });
    expect(await readTarFile(work.path('fs.tar'), 'app/hello.txt')).toBe('hello\n');
  }, T);

  test('a failing build leaves none of the outputs behind', async () => {
    const failing = await makeWorkDir({ Dockerfile: `${DOCKERFILE}RUN exit 3\n`, 'owned.txt': 'owned\n' });
    try {
      const r = await runStowage(['build', '--root', work.root, ...mirror(), ...OUTPUT_ARGS, '.'], { cwd: failing.dir, timeoutMs: T });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/exit code 3|exited with 3|exit status 3|\b3\b/);
      expect((await readdir(failing.dir)).sort()).toEqual(['Dockerfile', 'owned.txt']);
    } finally {
      await failing.rm();
    }
  }, T);

  test('an output that fails during the export takes the others with it', async () => {
    // A directory the user cannot write to: the checks before the build pass (it exists), writing fails.
    await mkdir(work.path('locked'), { mode: 0o755 }); // owned by root
    const r = await runStowage(
      ['build', '--root', work.root, ...mirror(), '-o', 'type=oci,dest=x.tar', '-o', 'type=docker,dest=xd.tar', '-o', 'type=local,dest=xroot', '-o', 'type=tar,dest=locked/fs.tar', '--iidfile', 'xid.txt', '.'],
      { cwd: work.dir, timeoutMs: T },
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('-o type=tar,dest=locked/fs.tar:');
    const left = (await readdir(work.dir)).filter((n) => /^(x|\.x)|stowage-/.test(n));
    expect(left).toEqual([]);
    expect(await readdir(work.path('locked'))).toEqual([]);
  }, T);

  test('a non-empty type=local directory is refused before anything is built', async () => {
    const r = await runStowage(['build', '--root', work.root, ...mirror(), '-o', 'type=oci,dest=again.tar', '-o', 'type=local,dest=rootfs', '.'], { cwd: work.dir, timeoutMs: T });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('-o type=local,dest=rootfs:');
    expect(r.stderr).toContain('exists and is not empty');
    expect(r.stderr).not.toMatch(/exporting/);
    await expect(lstat(work.path('again.tar'))).rejects.toThrow(/ENOENT/);
  }, T);
});

describe('type=local and setuid/setgid bits', () => {
  // An image's setuid-root file written as the user's own file would run as the user for anyone
  // who starts it: type=local drops the bits of files (one note says so) unless preserve-special=true.
  const SETID_DOCKERFILE = `FROM busybox
RUN echo '#!/bin/sh' > /bin/x && chmod 4755 /bin/x && mkdir -p /srv/shared && chmod 2775 /srv/shared && chmod 1777 /tmp
`;
  let work: WorkDir;
  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: SETID_DOCKERFILE });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);
  const mode = async (p: string) => (await lstat(work.path(p))).mode & 0o7777;

  test('by default: the setuid file is 0755 in DIR, one note; the type=tar of the same build keeps 04755', async () => {
    const r = await runStowage(['build', '--root', work.root, ...mirror(), '--progress', 'plain', '-o', 'type=local,dest=plain', '-o', 'type=tar,dest=fs.tar', '.'], { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    const notes = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('setuid/setgid'));
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(/note: 1 setuid\/setgid bit dropped from \S*\/plain \(add preserve-special=true to keep them\)$/);
    expect(await mode('plain/bin/x')).toBe(0o755);
    expect(await mode('plain/srv/shared')).toBe(0o2775); // a setgid directory gives nobody anything: kept
    expect(await mode('plain/tmp')).toBe(0o1777);
    expect((await lstat(work.path('plain/bin/x'))).uid).toBe(testEnv().uid);
    const entries: Record<string, number> = {};
    await tar.t({ file: work.path('fs.tar'), onReadEntry: (e) => void (entries[e.path] = (e.mode ?? 0) & 0o7777) });
    expect(entries['bin/x']).toBe(0o4755);
  }, T);

  test('preserve-special=true keeps them, without a note', async () => {
    const r = await runStowage(['build', '--root', work.root, ...mirror(), '--progress', 'plain', '-o', 'type=local,dest=kept,preserve-special=true', '.'], { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(`${r.stdout}${r.stderr}`).not.toContain('setuid/setgid');
    expect(await mode('kept/bin/x')).toBe(0o4755);
    expect(await mode('kept/srv/shared')).toBe(0o2775);
  }, T);

  test('preserve-special takes only true or false', async () => {
    const r = await runStowage(['build', '--root', work.root, ...mirror(), '-o', 'type=local,dest=bad,preserve-special=yes', '.'], { cwd: work.dir, timeoutMs: T });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('-o type=local,dest=bad,preserve-special=yes: preserve-special=yes: expected true or false');
  }, T);
});
