// The commands besides build: `version`, `pull` (into the content store; a
// later build FROM the image needs no registry), `push` of an OCI or docker
// archive (digests checked while streaming), `inspect` of a registry
// reference and of an archive, and `prune` (default, --keep-storage, --all,
// and while a build runs).
import { createHash } from 'node:crypto';
import { access, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  copyImage, makeWorkDir, run, runStowage, skopeoInspectRegistry, startScratchRegistry, testEnv, unpackOciTar,
  type OciIndex, type OciManifest, type ScratchRegistry, type UnpackedOci, type WorkDir,
} from '../lib/index.js';

const T = 300_000;
const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const exists = (p: string) => access(p).then(() => true, () => false);
const blobFile = (root: string, digest: string) => path.join(root, 'content', 'blobs', 'sha256', digest.slice('sha256:'.length));

/** Step labels reported CACHED in a build's progress. */
function cachedSteps(stderr: string): string[] {
  const labels = new Map<string, string>();
  for (const m of stderr.matchAll(/^#(\d+) (\[.*)$/gm)) labels.set(m[1]!, m[2]!);
  return [...stderr.matchAll(/^#(\d+) CACHED$/gm)].map((m) => labels.get(m[1]!)!.replace(/^\[\S+ \d+\/\d+\] /, ''));
}

const ok = (r: { code: number | null; stderr: string }) => expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });

describe('stowage version', () => {
  let work: WorkDir;
  beforeAll(async () => {
    work = await makeWorkDir({});
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('version prints version, commit, Node, runc and platform; --version one line', async () => {
    const r = await runStowage(['version'], { cwd: work.dir });
    ok(r);
    expect(r.stdout).toMatch(/^Version: +0\.1\.0$/m);
    expect(r.stdout).toMatch(/^Commit: +([0-9a-f]{12}(-dirty)?|unknown)$/m);
    expect(r.stdout).toMatch(new RegExp(`^Node: +${process.version.replace(/\./g, '\\.')}$`, 'm'));
    expect(r.stdout).toMatch(/^runc: +\d+\.\d+\.\d+\S* \(commit \S+\)$/m);
    expect(r.stdout).toMatch(/^Platform: +linux\/(amd64|arm64)$/m);
    const j = await runStowage(['version', '--format', 'json'], { cwd: work.dir });
    ok(j);
    const info = JSON.parse(j.stdout);
    expect(Object.keys(info).sort()).toEqual(['commit', 'node', 'platform', 'runc', 'version']);
    expect(info.runc.version).toMatch(/^\d+\.\d+/);
    const v = await runStowage(['--version'], { cwd: work.dir });
    ok(v);
    expect(v.stdout).toMatch(/^stowage 0\.1\.0( \(commit [0-9a-f]{12}(-dirty)?\))?\n$/);
  }, T);
});

describe('stowage pull', () => {
  let work: WorkDir;
  let scratch: ScratchRegistry;
  beforeAll(async () => {
    scratch = await startScratchRegistry();
    await copyImage(`${testEnv().registry}/library/busybox:latest`, `${scratch.host}/library/busybox:latest`);
    work = await makeWorkDir({ Dockerfile: `FROM ${scratch.host}/library/busybox\nRUN echo offline > /built\n` });
  }, T);
  afterAll(async () => {
    await scratch?.stop();
    await work?.rm();
  }, T);

  test('pull stores the verified blobs, unpacks nothing and prints NAME@DIGEST; a build FROM it then needs no registry', async () => {
    const ref = `${scratch.host}/library/busybox:latest`;
    const raw = await run(['skopeo', 'inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
    expect(raw.code).toBe(0);
    const indexDigest = sha256(raw.stdout);
    const index = JSON.parse(raw.stdout) as OciIndex;

    const r = await runStowage(['pull', '--root', work.root, ref], { cwd: work.dir, timeoutMs: T });
    ok(r);
    expect(r.stdout).toBe(`${scratch.host}/library/busybox@${indexDigest}\n`);
    const amd64 = index.manifests.find((m) => m.platform?.architecture === (process.arch === 'arm64' ? 'arm64' : 'amd64'))!;
    const manifest = JSON.parse(await readFile(blobFile(work.root, amd64.digest), 'utf8')) as OciManifest;
    for (const d of [indexDigest, amd64.digest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
      expect([d, await exists(blobFile(work.root, d))]).toEqual([d, true]);
      expect(sha256(await readFile(blobFile(work.root, d)))).toBe(d);
    }
    // The other platform's manifest was not fetched, and nothing was unpacked.
    const arm = index.manifests.find((m) => m.digest !== amd64.digest)!;
    expect(await exists(blobFile(work.root, arm.digest))).toBe(false);
    expect(await exists(path.join(work.root, 'snapshots'))).toBe(false);

    // No registry any more: the build uses the pulled image by digest, from the store.
    await scratch.stop();
    const b = await runStowage(['build', '--root', work.root, '-o', `${work.base}/offline.tar`, '.'], { cwd: work.dir, timeoutMs: T });
    ok(b);
    expect(b.stderr).toContain(`using ${scratch.host}/library/busybox:latest@${indexDigest} as pulled`);
    const img = await unpackOciTar(`${work.base}/offline.tar`, path.join(work.base, 'offline'));
    expect(img.manifest.layers.slice(0, manifest.layers.length).map((l) => l.digest)).toEqual(manifest.layers.map((l) => l.digest));
  }, T);

  test('pull --platform picks that platform from an index; a bad reference fails with error:', async () => {
    const reg = testEnv().registry;
    const root = path.join(work.base, 'root-arm');
    const r = await runStowage(['pull', '--root', root, '--platform', 'linux/arm64', `${reg}/library/busybox`], { cwd: work.dir, timeoutMs: T });
    ok(r);
    const digest = /@(sha256:[0-9a-f]{64})$/m.exec(r.stdout)![1]!;
    const index = JSON.parse(await readFile(blobFile(root, digest), 'utf8')) as OciIndex;
    const arm = index.manifests.find((m) => m.platform?.architecture === 'arm64')!;
    expect(await exists(blobFile(root, arm.digest))).toBe(true);
    expect(r.stderr).toMatch(/^pulled .* \(linux\/arm64(\/v8)?\): /m);
    const bad = await runStowage(['pull', '--root', root, 'Not A Ref'], { cwd: work.dir, timeoutMs: T });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: /m);
  }, T);
});

describe('stowage push and inspect', () => {
  let work: WorkDir;
  let reg: string;
  let image: UnpackedOci;
  const repo = `e2e/cmds-${process.pid}-${Date.now()}`;
  const DOCKERFILE = [
    'FROM REG/library/busybox',
    'ENV GREETING=hi',
    'LABEL org.example.k=v',
    'EXPOSE 8080',
    'WORKDIR /app',
    'COPY hello.txt ./',
    'RUN echo built > /app/built',
    'USER 1000',
    'ENTRYPOINT ["/bin/sh", "-c"]',
    'CMD ["cat /app/hello.txt"]',
    '',
  ].join('\n');

  beforeAll(async () => {
    reg = testEnv().registry;
    work = await makeWorkDir({ Dockerfile: DOCKERFILE.replace('REG', reg), 'hello.txt': 'hello\n' });
    const r = await runStowage(
      ['build', '--root', work.root, '-t', 'e2e/cmds:v1', '-t', 'cmds:other', '-o', `type=oci,dest=${work.base}/img.tar`, '-o', `type=docker,dest=${work.base}/docker.tar`, '.'],
      { cwd: work.dir, timeoutMs: T },
    );
    ok(r);
    image = await unpackOciTar(`${work.base}/img.tar`, path.join(work.base, 'img'));
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('push of the OCI tar to a new repository: the registry has the same manifest; a second push uploads nothing', async () => {
    const r = await runStowage(['push', `${work.base}/img.tar`, `${reg}/${repo}:v1`], { cwd: work.dir, timeoutMs: T });
    ok(r);
    expect(r.stdout).toBe(`${reg}/${repo}@${image.manifestDescriptor.digest}\n`);
    const remote = await skopeoInspectRegistry(`${repo}:v1`);
    expect(remote.Digest).toBe(image.manifestDescriptor.digest);
    expect(remote.Layers).toEqual(image.manifest.layers.map((l) => l.digest));
    const again = await runStowage(['push', `${work.base}/img.tar`, `${reg}/${repo}:v1`], { cwd: work.dir, timeoutMs: T });
    ok(again);
    expect(again.stderr).not.toMatch(/ uploaded$/m);
    expect(again.stderr).toMatch(/ exists$/m);
  }, T);

  test('an archive with several images needs --name, which picks one', async () => {
    const layout = path.join(work.base, 'multi');
    for (const [src, tag] of [[`oci-archive:${work.base}/img.tar:v1`, 'mine'], [`docker://${reg}/library/busybox:latest`, 'busybox']] as const) {
      const c = await run(['skopeo', 'copy', '--quiet', '--src-tls-verify=false', src, `oci:${layout}:${tag}`], { timeoutMs: T });
      expect({ code: c.code, stderr: c.stderr }).toEqual({ code: 0, stderr: '' });
    }
    const tar = await run(['tar', '-C', layout, '-cf', `${work.base}/multi.tar`, '.']);
    expect(tar.code).toBe(0);
    const none = await runStowage(['push', `${work.base}/multi.tar`, `${reg}/${repo}:multi`], { cwd: work.dir, timeoutMs: T });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^error: .*multi\.tar holds 2 images \(.*mine.*; .*busybox.*\); choose one with --name$/m);
    const r = await runStowage(['push', '--name', 'mine', `${work.base}/multi.tar`, `${reg}/${repo}:multi`], { cwd: work.dir, timeoutMs: T });
    ok(r);
    expect((await skopeoInspectRegistry(`${repo}:multi`)).Layers).toEqual(image.manifest.layers.map((l) => l.digest));
  }, T);

  test('push of a docker-archive: an OCI manifest over the same config and its uncompressed layers', async () => {
    const r = await runStowage(['push', `docker.tar`, `${reg}/${repo}:docker`], { cwd: work.base, timeoutMs: T });
    ok(r);
    const raw = await skopeoInspectRegistry(`${repo}:docker`, { raw: true });
    expect(raw.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(raw.config.digest).toBe(image.manifest.config.digest);
    expect(raw.layers.map((l: { digest: string }) => l.digest)).toEqual(image.config.rootfs.diff_ids);
    expect(r.stdout).toMatch(new RegExp(`^${reg}/${repo}@sha256:[0-9a-f]{64}\\n$`));
  }, T);

  test('a blob that does not match its digest fails the push before its upload completes', async () => {
    const dir = path.join(work.base, 'corrupt');
    await run(['mkdir', '-p', dir]);
    expect((await run(['tar', '-C', dir, '-xf', `${work.base}/img.tar`])).code).toBe(0);
    const copyLayer = image.manifest.layers.at(-2)!; // the COPY layer: small, uploaded in one request
    const p = path.join(dir, 'blobs', 'sha256', copyLayer.digest.slice('sha256:'.length));
    const bytes = await readFile(p);
    bytes[bytes.length - 5] = bytes[bytes.length - 5]! ^ 0xff; // same size, other bytes
    await writeFile(p, bytes);
    expect((await run(['tar', '-C', dir, '-cf', `${work.base}/corrupt.tar`, '.'])).code).toBe(0);
    const r = await runStowage(['push', `${work.base}/corrupt.tar`, `${reg}/${repo}-corrupt:v1`], { cwd: work.dir, timeoutMs: T });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^error: push .*: .*blob ${copyLayer.digest} does not match its digest`, 'm'));
    expect(r.stderr).not.toMatch(/restarting the upload|retrying/); // bad bytes are not a network problem
    const head = await run(['skopeo', 'inspect', '--tls-verify=false', `docker://${reg}/${repo}-corrupt:v1`]);
    expect(head.code).not.toBe(0);
  }, T);

  test('inspect --format json of the tar and of the pushed reference: layers, config and history', async () => {
    const fromTar = await runStowage(['inspect', '--format', 'json', '--name', 'e2e/cmds:v1', `${work.base}/img.tar`], { cwd: work.dir, timeoutMs: T });
    ok(fromTar);
    const fromReg = await runStowage(['inspect', '--format', 'json', `${reg}/${repo}:v1`], { cwd: work.dir, timeoutMs: T });
    ok(fromReg);
    const a = JSON.parse(fromTar.stdout);
    const b = JSON.parse(fromReg.stdout);
    expect(a.source).toBe('oci-archive');
    expect(a.name).toBe('e2e/cmds:v1');
    expect(b.source).toBe('registry');
    expect(b.name).toBe(`${reg}/${repo}:v1`);
    for (const d of [a, b]) {
      expect(d.digest).toBe(image.manifestDescriptor.digest);
      expect(d.manifest.digest).toBe(image.manifestDescriptor.digest);
      expect(d.platforms).toEqual([`${image.config.os}/${image.config.architecture}`]);
      expect(d.layers).toEqual(image.manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType, diffID: image.config.rootfs.diff_ids[i] })));
      expect(d.config).toMatchObject({
        digest: image.manifest.config.digest,
        User: '1000',
        Entrypoint: ['/bin/sh', '-c'],
        Cmd: ['cat /app/hello.txt'],
        WorkingDir: '/app',
        Labels: { 'org.example.k': 'v' },
        ExposedPorts: ['8080/tcp'],
      });
      expect(d.config.Env).toContain('GREETING=hi');
      expect(d.history).toEqual(image.config.history!.map((h) => ({ created: h.created ?? null, created_by: h.created_by ?? null, comment: h.comment ?? null, empty_layer: h.empty_layer === true })));
      expect(d.history.filter((h: { empty_layer: boolean }) => !h.empty_layer)).toHaveLength(image.manifest.layers.length);
      expect(d.size).toBe(image.manifestDescriptor.size + image.manifest.config.size + image.manifest.layers.reduce((n, l) => n + l.size, 0));
    }
    expect(b).toEqual({ ...a, name: b.name, source: 'registry' });
  }, T);

  test('inspect of a multi-platform reference, --platform, --raw and the text format', async () => {
    const idx = await runStowage(['inspect', '--format', 'json', `${reg}/library/busybox`], { cwd: work.dir, timeoutMs: T });
    ok(idx);
    const doc = JSON.parse(idx.stdout);
    expect(doc.mediaType).toMatch(/index|manifest\.list/);
    expect([...doc.platforms].sort()).toEqual(['linux/amd64', 'linux/arm64']);
    expect(doc.manifest.digest).not.toBe(doc.digest);
    const arm = JSON.parse((await runStowage(['inspect', '--format', 'json', '--platform', 'linux/arm64', `${reg}/library/busybox`], { cwd: work.dir, timeoutMs: T })).stdout);
    expect(arm.platform).toBe('linux/arm64');
    expect(arm.digest).toBe(doc.digest);

    const raw = await runStowage(['inspect', '--raw', `${reg}/library/busybox`], { cwd: work.dir, timeoutMs: T });
    ok(raw);
    expect(sha256(raw.stdout)).toBe(doc.digest);
    const rawTar = await runStowage(['inspect', '--raw', '--name', 'cmds:other', `oci-archive:${work.base}/img.tar`], { cwd: work.dir, timeoutMs: T });
    expect(sha256(rawTar.stdout)).toBe(image.manifestDescriptor.digest);
    // skopeo's spelling: the image name after the path.
    const named = await runStowage(['inspect', '--format', 'json', `oci-archive:${work.base}/img.tar:cmds:other`], { cwd: work.dir, timeoutMs: T });
    ok(named);
    expect(JSON.parse(named.stdout)).toMatchObject({ name: 'cmds:other', digest: image.manifestDescriptor.digest });

    const text = await runStowage(['inspect', '--name', 'e2e/cmds:v1', `${work.base}/img.tar`], { cwd: work.dir, timeoutMs: T });
    ok(text);
    expect(text.stdout).toMatch(new RegExp(`^Digest: +${image.manifestDescriptor.digest}$`, 'm'));
    expect(text.stdout).toMatch(/^ {2}WorkingDir: +\/app$/m);
    expect(text.stdout).toMatch(/^ {2}\S+ +RUN .*echo built > \/app\/built$/m);
    for (const l of image.manifest.layers) expect(text.stdout).toContain(`  ${l.digest}  `);
  }, T);
});

describe('stowage prune', () => {
  let reg: string;
  beforeAll(() => {
    reg = testEnv().registry;
  });
  const files = () => ({
    'Dockerfile.a': `FROM ${reg}/library/busybox\nCOPY a.txt /a\nRUN head -c 2000000 /dev/urandom > /rand-a\n`,
    'Dockerfile.b': `FROM ${reg}/library/busybox\nCOPY b.txt /b\nRUN head -c 2000000 /dev/urandom > /rand-b\n`,
    'Dockerfile.slow': `FROM ${reg}/library/busybox\nRUN sleep 6 && echo slow > /slow\n`,
    'a.txt': 'a\n',
    'b.txt': 'b\n',
  });
  const build = async (work: WorkDir, which: string) => {
    const r = await runStowage(['build', '--root', work.root, '-f', `Dockerfile.${which}`, '-o', `${work.base}/${which}.tar`, '.'], { cwd: work.dir, timeoutMs: T });
    ok(r);
    return cachedSteps(r.stderr);
  };
  const prune = async (work: WorkDir, args: string[] = []) => {
    const r = await runStowage(['prune', '--root', work.root, ...args], { cwd: work.dir, timeoutMs: T });
    ok(r);
    const reclaimed = Number(/^(?:reclaimed|reclaimable): .* \((\d+) bytes\); kept: .* \((\d+) bytes\)$/m.exec(r.stdout)?.[1]);
    const kept = Number(/; kept: .* \((\d+) bytes\)$/m.exec(r.stdout)?.[1]);
    return { ...r, reclaimed, kept };
  };
  const listing = async (root: string) => ({
    blobs: (await readdir(path.join(root, 'content', 'blobs', 'sha256')).catch(() => [])).length,
    snapshots: (await readdir(path.join(root, 'snapshots', 'committed')).catch(() => [])).length,
    cache: (await readdir(path.join(root, 'cache')).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).length,
    images: (await readdir(path.join(root, 'images')).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).length,
  });

  test('after two builds, prune frees the exported manifests and configs; a third build is still fully cached', async () => {
    const work = await makeWorkDir(files());
    try {
      await build(work, 'a');
      await build(work, 'b');
      const before = await listing(work.root);
      const p = await prune(work);
      expect(p.reclaimed).toBeGreaterThan(0);
      expect(p.stdout).toMatch(/^removed [1-9]\d* blobs \(/m);
      const after = await listing(work.root);
      // Each build's manifest and config are garbage once exported; records, snapshots and base image stay.
      expect(after.blobs).toBe(before.blobs - 4);
      expect({ ...after, blobs: 0 }).toEqual({ ...before, blobs: 0 });
      expect(await build(work, 'a')).toEqual(['COPY a.txt /a', 'RUN head -c 2000000 /dev/urandom > /rand-a']);
      // Nothing left to collect but this build's own manifest and config.
      const again = await prune(work);
      expect(again.stdout).toMatch(/^removed 2 blobs \(/m);
    } finally {
      await work.rm();
    }
  }, T);

  test('--keep-storage drops the least recently used build first', async () => {
    const work = await makeWorkDir(files());
    try {
      await build(work, 'a');
      await new Promise((r) => setTimeout(r, 1100)); // distinct mtimes
      await build(work, 'b');
      const dry = await prune(work, ['--dry-run']);
      expect(dry.stdout).toMatch(/^would remove /m);
      // Room for everything but a's 2 MB step: a's records are the oldest and go.
      const limit = dry.kept - 100_000;
      const p = await prune(work, ['--keep-storage', String(limit)]);
      expect(p.kept).toBeLessThanOrEqual(limit);
      expect(p.kept).toBeGreaterThan(2_000_000); // b's layer and snapshot stayed
      expect(p.stdout).toMatch(/^removed 2 cache records, 0 image records$/m);
      expect(await build(work, 'b')).toEqual(['COPY b.txt /b', 'RUN head -c 2000000 /dev/urandom > /rand-b']);
      expect(await build(work, 'a')).toEqual([]);
    } finally {
      await work.rm();
    }
  }, T);

  test('--all empties the store; a rebuild then works cold', async () => {
    const work = await makeWorkDir(files());
    try {
      await build(work, 'a');
      const p = await prune(work, ['--all']);
      expect(p.stdout).toMatch(/^removed [1-9]\d* cache records, 1 image record$/m);
      expect(await listing(work.root)).toEqual({ blobs: 0, snapshots: 0, cache: 0, images: 0 });
      expect(p.kept).toBe(0);
      expect(await build(work, 'a')).toEqual([]);
      const img = await unpackOciTar(`${work.base}/a.tar`, path.join(work.base, 'a-cold'));
      expect(img.layers.at(-1)!.entries.map((e) => e.path)).toContain('rand-a');
    } finally {
      await work.rm();
    }
  }, T);

  test('prune during a build waits for it; the build succeeds and stays cached', async () => {
    const work = await makeWorkDir(files());
    try {
      const running = runStowage(['build', '--root', work.root, '-f', 'Dockerfile.slow', '-o', `${work.base}/slow.tar`, '.'], { cwd: work.dir, timeoutMs: T });
      // The build's lease appears when it starts.
      for (let i = 0; i < 600 && (await readdir(path.join(work.root, 'leases')).catch(() => [])).length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      const p = await prune(work);
      const b = await running;
      ok(b);
      // The prune ran once the build had let go of the root (its lease is dropped as it finishes).
      expect({ waited: /^waiting for a running build to finish \(pid \d+\)$/m.test(p.stderr), stderr: p.stderr }).toMatchObject({ waited: true });
      expect(await exists(`${work.base}/slow.tar`)).toBe(true);
      expect(await build(work, 'slow')).toEqual(['RUN sleep 6 && echo slow > /slow']);
    } finally {
      await work.rm();
    }
  }, T);
});

describe('mistakes a new user makes get the cause and a suggestion', () => {
  let work: WorkDir;
  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: 'FROM busybox AS build\nRUN echo x > /x\nFROM scratch\nCOPY --from=bulid /x /x\n' });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('a mistyped command, output type, output key, -f file and --from stage', async () => {
    const cmd = await runStowage(['biuld', '.'], { cwd: work.dir });
    expect({ code: cmd.code, first: cmd.stderr.split('\n')[0] }).toEqual({ code: 2, first: 'error: unknown command "biuld" (did you mean build?)' });
    const type = await runStowage(['build', '--root', work.root, '-o', 'type=ocii,dest=x.tar', '.'], { cwd: work.dir });
    expect(type.stderr).toMatch(/^error: -o type=ocii,dest=x\.tar: unknown output type "ocii" \(did you mean oci\?\)/m);
    const key = await runStowage(['build', '--root', work.root, '-o', 'type=oci,dets=x.tar', '.'], { cwd: work.dir });
    expect(key.stderr).toMatch(/unknown key "dets" for type=oci \(did you mean dest\?\)/);
    const file = await runStowage(['build', '--root', work.root, '-f', 'Dockerfil', '-o', 'type=oci,dest=x.tar', '.'], { cwd: work.dir });
    expect({ code: file.code, error: file.stderr.trim().split('\n').at(-1) }).toEqual({ code: 1, error: `error: Dockerfile not found: ${work.path('Dockerfil')} does not exist` });
    const from = await runStowage(['build', '--root', work.root, '--registry-mirror', `docker.io=${testEnv().registry}`, '-o', 'type=oci,dest=x.tar', '.'], { cwd: work.dir });
    expect(from.code).toBe(1);
    expect(from.stderr).toMatch(/^error: Dockerfile:4: no stage named "bulid" \(did you mean build\?\), and no image bulid could be pulled: /m);
  }, T);
});
