// Checks the end-to-end test infrastructure itself (no stowage CLI involved):
// the loopback registry, the fixture images and the test/lib helpers.
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  makeUserTempDir,
  makeWorkDir,
  pullToOciArchive,
  readLayerFile,
  removeTree,
  runAsUser,
  runImage,
  skopeoInspect,
  skopeoInspectRegistry,
  testEnv,
  unpackOciTar,
} from '../lib/index.js';

const env = testEnv();

describe('e2e infrastructure', () => {
  let scratch: string;
  beforeAll(async () => {
    scratch = await makeUserTempDir('stowage-infra-');
  });
  afterAll(async () => {
    if (scratch) await removeTree(scratch);
  });

  test('the registry answers GET /v2/', async () => {
    const r = await fetch(`http://${env.registry}/v2/`);
    expect(r.status).toBe(200);
  });

  test('library/golang:1.21 is a linux/amd64 image with the Go toolchain env', async () => {
    const info = await skopeoInspectRegistry('library/golang:1.21');
    expect(info.Architecture).toBe('amd64');
    expect(info.Os).toBe('linux');
    expect(info.Layers).toHaveLength(2);
    expect(info.Env).toEqual(
      expect.arrayContaining(['GOPATH=/go', 'CGO_ENABLED=0', expect.stringMatching(/^PATH=\/usr\/local\/go\/bin:/)]),
    );
    const cfg = await skopeoInspectRegistry('library/golang:1.21', { config: true });
    expect(cfg.config.WorkingDir).toBe('/go');
  }, 60_000);

  test('library/busybox:latest is an index with linux/amd64 and linux/arm64', async () => {
    const raw = await skopeoInspectRegistry('library/busybox:latest', { raw: true });
    expect(raw.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    const platforms = raw.manifests.map((m: { platform: { os: string; architecture: string } }) => `${m.platform.os}/${m.platform.architecture}`);
    expect(platforms.sort()).toEqual(['linux/amd64', 'linux/arm64']);
  }, 60_000);

  test('busybox archive: layout, platform selection, layer entries', async () => {
    const tarPath = path.join(scratch, 'busybox-all.tar');
    await pullToOciArchive('library/busybox:latest', tarPath, { all: true });

    const amd = await unpackOciTar(tarPath, path.join(scratch, 'bb-amd64'));
    expect(amd.ociLayout.imageLayoutVersion).toBe('1.0.0');
    expect(amd.index?.manifests).toHaveLength(2);
    expect(amd.config.architecture).toBe('amd64');
    expect(amd.config.config?.Cmd).toEqual(['sh']);
    const entries = amd.layers[0]!.entries;
    const byPath = new Map(entries.map((e) => [e.path, e]));
    expect(byPath.get('bin/busybox')).toMatchObject({ type: 'File', mode: 0o755, uid: 0, gid: 0 });
    expect(byPath.get('bin/sh')).toMatchObject({ type: 'SymbolicLink', linkpath: 'busybox' });
    expect(byPath.get('tmp')).toMatchObject({ type: 'Directory', mode: 0o1777 });
    expect(byPath.get('home/app')).toMatchObject({ type: 'Directory', uid: 1000, gid: 1000 });
    const passwd = (await readLayerFile(amd.layers[0]!.blobPath, '/etc/passwd'))!.toString();
    expect(passwd).toMatch(/^app:x:1000:1000:/m);
    expect(passwd).toMatch(/^nobody:x:65534:65534:/m);

    const arm = await unpackOciTar(tarPath, path.join(scratch, 'bb-arm64'), { platform: 'linux/arm64' });
    expect(arm.config.architecture).toBe('arm64');
    expect((await readLayerFile(arm.layers[0]!.blobPath, 'etc/arch'))!.toString().trim()).toBe('arm64');

    const inspected = await skopeoInspect(tarPath);
    expect(inspected.Architecture).toBe('amd64');
  }, 120_000);

  test('runImage runs busybox as the test user', async () => {
    const tarPath = path.join(scratch, 'busybox.tar');
    await pullToOciArchive('library/busybox:latest', tarPath);
    const r = await runImage(tarPath, { args: ['busybox', 'echo', 'ok'] });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ok\n');
    expect(r.code).toBe(0);

    const env2 = await runImage(tarPath, { args: ['sh', '-c', 'echo "$FOO $(id -u) $(pwd)"; exit 3'], env: { FOO: 'bar' }, cwd: '/tmp' });
    expect(env2.stdout).toBe('bar 0 /tmp\n');
    expect(env2.code).toBe(3);
  }, 120_000);

  test('the golang image builds a static hello world in a rootless container', async () => {
    const tarPath = path.join(scratch, 'golang.tar');
    await pullToOciArchive('library/golang:1.21', tarPath);
    const script = [
      'set -e',
      'cd /tmp',
      `printf 'package main\\nimport "fmt"\\nfunc main() { fmt.Println("hello, world") }\\n' > main.go`,
      'go build -o /bin/hello ./main.go',
      '/bin/hello',
      'pwd',
    ].join('\n');
    const r = await runImage(tarPath, { args: ['sh', '-c', script], cwd: '/go', env: { HOME: '/root' } });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello, world\n/tmp\n');
    expect(r.code).toBe(0);
  }, 180_000);

  test('runAsUser and makeWorkDir', async () => {
    const w = await makeWorkDir({ 'Dockerfile': 'FROM scratch\n', 'sub/x.sh': { content: 'echo hi\n', mode: 0o755 } });
    try {
      const r = await runAsUser(['sh', '-c', 'id -un; echo "$HOME"; ls -l sub/x.sh | cut -c1-10; touch ../root/probe && echo writable'], { cwd: w.dir });
      expect(r.code).toBe(0);
      expect(r.stdout.split('\n')).toEqual([env.user, env.home, '-rwxr-xr-x', 'writable', '']);
      expect((await fs.stat(w.path('Dockerfile'))).uid).toBe(env.uid);
    } finally {
      await w.rm();
    }
    await expect(fs.stat(w.base)).rejects.toThrow();
  }, 60_000);

  test('the CLI bundle (when built) is readable by the test user', async () => {
    const st = await fs.stat(env.cliPath).catch(() => undefined);
    if (!st) return; // not built yet: runStowage() explains that
    const r = await runAsUser(['sh', '-c', `test -r '${env.cliPath}' && echo readable`]);
    expect(r.stdout).toBe('readable\n');
  });
});
