// Pushing to a registry (`--push`, `-o type=registry[,name=REF]`): one build
// writes an OCI tar and pushes to the loopback registry; the registry then
// holds the same manifest and layers. A second push finds every layer there,
// a push to another repository mounts (or finds) the busybox base layer
// instead of uploading it, a registry output without a name fails before the
// build, and a failed push leaves the file outputs in place.
import { lstat, readFile } from 'node:fs/promises';
import path from 'node:path';
import { makeWorkDir, runStowage, skopeoInspectRegistry, testEnv, unpackOciTar, type UnpackedOci, type WorkDir } from '../lib/index.js';

const T = 300_000;

/** One action per blob, from the `blob sha256:… exists|mounted|uploaded` progress lines. */
function blobActions(stderr: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of stderr.matchAll(/ blob (sha256:[0-9a-f]{64}) (exists|mounted|uploaded)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

describe('push to a registry', () => {
  let work: WorkDir;
  let reg: string;
  let image: UnpackedOci;
  // A fresh repository per run, so that "mounted" is not hidden by an earlier run's blobs.
  const other = `e2e/pushed-other-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    reg = testEnv().registry;
    work = await makeWorkDir({
      Dockerfile: `FROM ${reg}/library/busybox\nCOPY hello.txt /hello.txt\nCMD ["cat", "/hello.txt"]\n`,
      'hello.txt': 'hello from a pushed image\n',
    });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('--push with -t, plus -o type=oci: the registry has the OCI tar\'s manifest and layers', async () => {
    const r = await runStowage(['build', '--root', work.root, '-t', `${reg}/e2e/pushed:v1`, '--push', '-o', 'type=oci,dest=x.tar', '.'], { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    image = await unpackOciTar(work.path('x.tar'), path.join(work.base, 'x-layout'));
    const remote = await skopeoInspectRegistry('e2e/pushed:v1');
    expect(remote.Digest).toBe(image.manifestDescriptor.digest);
    expect(remote.Layers).toEqual(image.manifest.layers.map((l) => l.digest));
    const raw = await skopeoInspectRegistry('e2e/pushed:v1', { raw: true });
    expect(raw.config.digest).toBe(image.manifest.config.digest);
    expect(r.stderr).toContain(`pushed ${reg}/e2e/pushed:v1@${image.manifestDescriptor.digest}`);
    // Every blob is reported, with what happened to it.
    const actions = blobActions(r.stderr);
    for (const d of [image.manifest.config.digest, ...image.manifest.layers.map((l) => l.digest)]) expect(actions.get(d)).toMatch(/^(exists|mounted|uploaded)$/);
    // The base layer is never uploaded: it is in library/busybox on the same registry.
    expect(actions.get(image.manifest.layers[0]!.digest)).toMatch(/^(exists|mounted)$/);
    expect(r.stderr).not.toMatch(/authorization|bearer|basic /i);
  }, T);

  test('a second push of an unchanged build finds the layers already there', async () => {
    const r = await runStowage(['build', '--root', work.root, '-t', `${reg}/e2e/pushed:v1`, '--push', '.'], { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    const actions = blobActions(r.stderr);
    const remote = await skopeoInspectRegistry('e2e/pushed:v1');
    for (const d of remote.Layers as string[]) expect([d, actions.get(d)]).toEqual([d, 'exists']);
    expect(remote.Layers).toEqual(image.manifest.layers.map((l) => l.digest));
  }, T);

  test('--push with two -t names: both tags point at the one manifest; the second name reuses the first\'s blobs', async () => {
    const a = `e2e/pushed-a-${process.pid}-${Date.now()}`;
    const b = `e2e/pushed-b-${process.pid}-${Date.now()}`;
    const r = await runStowage(['build', '--root', work.root, '-t', `${reg}/${a}:one`, '-t', `${reg}/${b}:two`, '--push', '-o', 'type=oci,dest=two.tar', '.'], { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    const image = await unpackOciTar(work.path('two.tar'), path.join(work.base, 'two-layout'));
    const first = await skopeoInspectRegistry(`${a}:one`);
    const second = await skopeoInspectRegistry(`${b}:two`);
    expect(first.Digest).toBe(image.manifestDescriptor.digest);
    expect(second.Digest).toBe(first.Digest);
    expect(second.Layers).toEqual(first.Layers);
    expect(r.stderr).toContain(`pushed ${reg}/${a}:one@${first.Digest}`);
    expect(r.stderr).toContain(`pushed ${reg}/${b}:two@${first.Digest}`);
    // The second repository gets every blob by cross-repository mount from the first, never by a second upload.
    const secondPush = r.stderr.slice(r.stderr.indexOf(`pushed ${reg}/${a}:one@`));
    const actions = blobActions(secondPush);
    for (const d of [image.manifest.config.digest, ...image.manifest.layers.map((l) => l.digest)]) expect([d, actions.get(d)]).toEqual([d, 'mounted']);
  }, T);

  test('another repository on the same registry: the base layer is mounted (or there), not uploaded; --metadata-file names it', async () => {
    const r = await runStowage(
      ['build', '--root', work.root, '-t', 'demo:1', '-o', `type=registry,name=${reg}/${other}:v1`, '--metadata-file', 'meta.json', '.'],
      { cwd: work.dir, timeoutMs: T },
    );
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    const actions = blobActions(r.stderr);
    const base = image.manifest.layers[0]!.digest;
    expect(actions.get(base)).toMatch(/^(mounted|exists)$/);
    const remote = await skopeoInspectRegistry(`${other}:v1`);
    expect(remote.Layers[0]).toBe(base);
    const meta = JSON.parse(await readFile(work.path('meta.json'), 'utf8'));
    expect(meta['image.name']).toBe(`docker.io/library/demo:1,${reg}/${other}:v1`);
    expect(meta['containerimage.digest']).toBe(remote.Digest);
  }, T);

  test('type=registry (or --push) without any name fails before building', async () => {
    for (const args of [['-o', 'type=registry'], ['--push', '-o', 'type=oci,dest=never.tar']]) {
      const r = await runStowage(['build', '--root', work.root, ...args, '.'], { cwd: work.dir, timeoutMs: T });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/^error: -o type=registry \/ --push: no image name to push to; give -t /m);
      expect(r.stderr).not.toContain('load '); // nothing was pulled or built
      await expect(lstat(work.path('never.tar'))).rejects.toThrow();
    }
  }, T);

  test('a failed push exits non-zero with "error: push REF: …" and leaves the file outputs in place', async () => {
    const r = await runStowage(['build', '--root', work.root, '-o', 'type=oci,dest=kept.tar', '-o', 'type=registry,name=127.0.0.1:1/e2e/nowhere:v1', '.'], { cwd: work.dir, timeoutMs: T });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^error: push 127\.0\.0\.1:1\/e2e\/nowhere:v1: /m);
    expect((await lstat(work.path('kept.tar'))).isFile()).toBe(true);
  }, T);
});
