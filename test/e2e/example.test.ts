// The example, end to end: the stowage CLI run by an unprivileged user
// builds the multi-stage Go Dockerfile from the loopback registry's golang
// image, and the OCI tarball is checked with skopeo, umoci and runc.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { makeWorkDir, runImage, runStowage, skopeoInspect, skopeoInspectRegistry, testEnv, unpackOciTar, type WorkDir } from '../lib/index.js';

const EXAMPLE = `# syntax=docker/dockerfile:1
FROM golang:1.21 as build
WORKDIR /src
COPY <<EOF /src/main.go
package main

import "fmt"

func main() {
  fmt.Println("hello, world")
}
EOF
RUN go build -o /bin/hello ./main.go

FROM scratch
COPY --from=build /bin/hello /bin/hello
CMD ["/bin/hello"]
`;

const BUILD_TIMEOUT = 300_000;

function mirrorArgs(): string[] {
  return ['--registry-mirror', `docker.io=${testEnv().registry}`];
}

describe('the multi-stage example', () => {
  let work: WorkDir;
  let coldSeconds = 0;

  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: EXAMPLE });
  }, BUILD_TIMEOUT);
  afterAll(async () => {
    await work?.rm();
  }, BUILD_TIMEOUT);

  test('builds cold as an unprivileged user into an OCI tarball', async () => {
    const started = Date.now();
    const r = await runStowage(['build', '--root', work.root, '-t', 'hello', '-o', 'type=oci,dest=hello.tar', ...mirrorArgs(), '.'], { cwd: work.dir, timeoutMs: BUILD_TIMEOUT });
    coldSeconds = (Date.now() - started) / 1000;
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    const st = await stat(work.path('hello.tar'));
    expect(st.uid).toBe(testEnv().uid);
    console.log(`example cold build: ${coldSeconds.toFixed(1)}s`);
  }, BUILD_TIMEOUT);

  test('the tarball passes skopeo inspect, with Cmd /bin/hello and one layer', async () => {
    const info = await skopeoInspect(work.path('hello.tar'));
    expect(info.Layers).toHaveLength(1);
    const config = await skopeoInspect(work.path('hello.tar'), { config: true });
    expect(config.config.Cmd).toEqual(['/bin/hello']);
    expect(config.rootfs.diff_ids).toHaveLength(1);
  }, BUILD_TIMEOUT);

  test('the layout is OCI: oci-layout, index.json with the tag, one layer holding only /bin/hello', async () => {
    const img = await unpackOciTar(work.path('hello.tar'), path.join(work.base, 'layout'));
    expect(img.ociLayout.imageLayoutVersion).toBe('1.0.0');
    expect(img.layout.manifests).toHaveLength(1);
    expect(img.layout.manifests[0]!.annotations?.['org.opencontainers.image.ref.name']).toBe('latest');
    expect(img.layout.manifests[0]!.annotations?.['io.containerd.image.name']).toBe('docker.io/library/hello:latest');
    expect(img.manifest.layers).toHaveLength(1);
    expect(img.manifest.layers[0]!.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    const entries = img.layers[0]!.entries;
    const files = entries.filter((e) => e.type !== 'Directory').map((e) => e.path);
    expect(files).toEqual(['bin/hello']);
    const hello = entries.find((e) => e.path === 'bin/hello')!;
    expect(hello.uid).toBe(0);
    expect(hello.mode & 0o111).not.toBe(0);
    // Nothing of the Go toolchain or the build stage's sources.
    expect(entries.some((e) => e.path.startsWith('usr') || e.path.startsWith('src'))).toBe(false);
    expect(img.config.history?.length).toBeGreaterThanOrEqual(2);
  }, BUILD_TIMEOUT);

  test('runs and prints hello, world', async () => {
    const r = await runImage(work.path('hello.tar'));
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello, world\n');
    expect(r.code).toBe(0);
  }, BUILD_TIMEOUT);

  test('a warm rebuild on the same --root gives the same filesystem', async () => {
    const started = Date.now();
    const r = await runStowage(['build', '--root', work.root, '-t', 'hello', '-o', 'warm.tar', ...mirrorArgs(), '.'], { cwd: work.dir, timeoutMs: BUILD_TIMEOUT });
    const warmSeconds = (Date.now() - started) / 1000;
    expect(r.code).toBe(0);
    console.log(`example warm build: ${warmSeconds.toFixed(1)}s (cold ${coldSeconds.toFixed(1)}s)`);
    // Warm builds reuse the pulled blobs and unpacked base layers: no layer is downloaded again.
    expect(r.stderr).not.toMatch(/unpacked layer/);
    const run = await runImage(work.path('warm.tar'));
    expect(run.stdout).toBe('hello, world\n');
  }, BUILD_TIMEOUT);

  test('--target build exports the build stage: the Go layers plus the new ones, WorkingDir /src', async () => {
    const r = await runStowage(['build', '--root', work.root, '--target', 'build', '-o', 'dest=build.tar', ...mirrorArgs(), '.'], { cwd: work.dir, timeoutMs: BUILD_TIMEOUT });
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    const img = await unpackOciTar(work.path('build.tar'), path.join(work.base, 'build-layout'));
    const golang = await skopeoInspectRegistry('library/golang:1.21');
    expect(img.config.config?.WorkingDir).toBe('/src');
    expect(img.config.config?.Env).toEqual(expect.arrayContaining(['GOPATH=/go']));
    // golang fixture layers first, then WORKDIR, COPY and RUN.
    expect(img.manifest.layers.length).toBe(golang.Layers.length + 3);
    expect(img.manifest.layers.slice(0, golang.Layers.length).map((l) => l.digest)).toEqual(golang.Layers);
    const newLayers = img.layers.slice(-3);
    expect(newLayers[0]!.entries.map((e) => e.path)).toContain('src');
    expect(newLayers[1]!.entries.map((e) => e.path)).toContain('src/main.go');
    expect(newLayers[2]!.entries.map((e) => e.path)).toContain('bin/hello');
    const run = await runImage(work.path('build.tar'), { args: ['/bin/hello'] });
    expect(run.stdout).toBe('hello, world\n');
    const cat = await runImage(work.path('build.tar'), { args: ['cat', '/src/main.go'] });
    expect(cat.stdout).toContain('fmt.Println("hello, world")');
  }, BUILD_TIMEOUT);
});
