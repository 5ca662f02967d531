// COPY --link as BuildKit builds it: the sources go into an empty tree, whose
// diff is a layer of its own stacked on the previous state. The layer is the
// one a `FROM scratch` COPY gives, its cache key leaves the parent out (a
// change above it keeps it cached, same blob), a symlinked destination in the
// parent is not followed, and --chown takes numeric ids only.
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { chownTree, makeWorkDir, run, runImage, runStowage, testEnv, unpackOciTar, type UnpackedOci, type WorkDir } from '../lib/index.js';

const T = 300_000;

const DOCKERFILE = `FROM busybox
ARG STAMP=1
RUN echo "$STAMP" > /stamp && mkdir /data /data2 && ln -s /data /app && ln -s /data2 /app2
COPY --link app/ /app/
COPY plain.txt /app2/
CMD ["cat", "/app/hello.txt"]
`;

const CONTEXT = { Dockerfile: DOCKERFILE, 'app/hello.txt': 'hello\n', 'app/sub/deep.txt': 'deep\n', 'plain.txt': 'plain\n', 'own.txt': 'own\n' };

for (const backend of ['overlay', 'native'] as const) describe(`COPY --link (${backend} snapshots)`, () => {
  let work: WorkDir;
  let seq = 0;
  beforeAll(async () => {
    work = await makeWorkDir(CONTEXT);
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  /** Builds with `dockerfile` (default the context's), returns the unpacked image and each step's cache outcome. */
  const build = async (extra: string[] = [], dockerfile?: string) => {
    const n = ++seq;
    const out = `${work.base}/out-${n}.tar`;
    const file = dockerfile !== undefined ? ['-f', `${work.base}/Dockerfile-${n}`] : [];
    if (dockerfile !== undefined) await writeFile(`${work.base}/Dockerfile-${n}`, dockerfile, { mode: 0o644 });
    const r = await runStowage(['build', '--root', work.root, '--registry-mirror', `docker.io=${testEnv().registry}`, '--progress', 'plain', '--snapshotter', backend, ...file, ...extra, '-o', out, '.'], { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    const labels = new Map<string, string>();
    for (const m of r.stderr.matchAll(/^#(\d+) \[\S+ \d+\/\d+\] (.*)$/gm)) labels.set(m[1]!, m[2]!);
    const steps: Record<string, string> = {};
    for (const m of r.stderr.matchAll(/^#(\d+) (CACHED|cache miss: (.*))$/gm)) steps[labels.get(m[1]!)!] = m[3] ?? 'CACHED';
    const image = await unpackOciTar(out, `${work.base}/unpacked-${n}`);
    return { out, image, steps };
  };

  /** The layer of this build's step whose history says `createdBy` (the build's layers come last, in history order). */
  const layerOf = (image: UnpackedOci, createdBy: RegExp) => {
    const ours = (image.config.history ?? []).filter((h) => !h.empty_layer && h.comment === 'stowage.dockerfile.v0');
    const i = ours.findIndex((h) => createdBy.test(h.created_by ?? ''));
    expect(i).toBeGreaterThanOrEqual(0);
    return image.layers[image.layers.length - ours.length + i]!;
  };

  let first: Awaited<ReturnType<typeof build>>;

  test('the image runs; the linked layer holds only the copied files, as a FROM scratch COPY would', async () => {
    first = await build();
    const ran = await runImage(first.out, { args: ['sh', '-c', 'cat /app/hello.txt /app/sub/deep.txt /stamp'] });
    expect({ code: ran.code, stdout: ran.stdout, stderr: ran.stderr }).toEqual({ code: 0, stdout: 'hello\ndeep\n1\n', stderr: '' });
    const linked = layerOf(first.image, /^COPY app\/ \/app\/$/);
    expect(linked.entries.map((e) => `${e.path} ${e.type} ${e.uid}:${e.gid} ${e.mode.toString(8)}`).sort()).toEqual([
      'app Directory 0:0 755',
      'app/hello.txt File 0:0 644',
      'app/sub Directory 0:0 755',
      'app/sub/deep.txt File 0:0 644',
    ]);
    // Byte for byte the layer of an ordinary COPY into an empty tree.
    const scratch = await build([], 'FROM scratch\nCOPY app/ /app/\n');
    expect(scratch.image.layers.map((l) => l.descriptor.digest)).toEqual([linked.descriptor.digest]);
  }, T);

  test('a changed RUN above: the RUN and the plain COPY rerun, the --link step is CACHED with the same blob', async () => {
    const second = await build(['--build-arg', 'STAMP=2']);
    expect(second.steps).toEqual({
      'RUN echo "$STAMP" > /stamp && mkdir /data /data2 && ln -s /data /app && ln -s /data2 /app2': 'build arg STAMP changed',
      'COPY --link app/ /app/': 'CACHED',
      'COPY plain.txt /app2/': 'build arg STAMP changed',
    });
    const before = layerOf(first.image, /^COPY app\/ \/app\/$/).descriptor.digest;
    expect(layerOf(second.image, /^COPY app\/ \/app\/$/).descriptor.digest).toBe(before);
    expect(layerOf(second.image, /^RUN /).descriptor.digest).not.toBe(layerOf(first.image, /^RUN /).descriptor.digest);
    // The cached layer is stacked on the new parent: the new /stamp and the copied files are both there.
    const ran = await runImage(second.out, { args: ['sh', '-c', 'cat /stamp /app/hello.txt'] });
    expect({ code: ran.code, stdout: ran.stdout }).toEqual({ code: 0, stdout: '2\nhello\n' });
    // And the first parent again: everything cached, the first image exactly.
    const again = await build();
    expect(Object.values(again.steps).every((s) => s === 'CACHED')).toBe(true);
    expect(again.image.manifestDescriptor.digest).toBe(first.image.manifestDescriptor.digest);
  }, T);

  test('a destination that is a symlink in the parent is not followed; a plain COPY follows it', async () => {
    const ran = await runImage(first.out, {
      args: ['sh', '-c', 'test -L /app && echo app-is-link; test -d /app && ls /app; echo data:; ls /data; echo data2:; ls /data2; test -L /app2 && echo app2-is-link'],
    });
    expect({ code: ran.code, stdout: ran.stdout, stderr: ran.stderr }).toEqual({
      code: 0,
      // /app became a real directory holding the files; /data (the link's target) stayed empty.
      stdout: 'hello.txt\nsub\ndata:\ndata2:\nplain.txt\napp2-is-link\n',
      stderr: '',
    });
    // The plain COPY's layer writes through the link (into /data2); the linked one never touches /data.
    expect(layerOf(first.image, /^COPY plain\.txt/).entries.map((e) => e.path).sort()).toEqual(['data2', 'data2/plain.txt']);
  }, T);

  test('--chown with numeric ids sets owners (a uid alone is also the gid); a user name is refused at its line', async () => {
    const owned = await build([], 'FROM busybox\nCOPY --link --chown=1000 own.txt /home/me/own.txt\nCOPY --link --chown=33:44 own.txt /srv/\n');
    const a = layerOf(owned.image, /own\.txt \/home\/me\/own\.txt/).entries.map((e) => `${e.path} ${e.uid}:${e.gid}`).sort();
    // Directories the copy creates take the owner too, as BuildKit's MkdirAll does.
    expect(a).toEqual(['home 1000:1000', 'home/me 1000:1000', 'home/me/own.txt 1000:1000']);
    const b = layerOf(owned.image, /own\.txt \/srv\//).entries.map((e) => `${e.path} ${e.uid}:${e.gid}`).sort();
    expect(b).toEqual(['srv 33:44', 'srv/own.txt 33:44']);

    // busybox has a `nobody` in /etc/passwd, but a --link step does not read it (BuildKit fails too).
    const dockerfile = path.join(work.base, 'Dockerfile-names');
    await writeFile(dockerfile, 'FROM busybox\nRUN true\nCOPY --link --chown=nobody own.txt /x\n', { mode: 0o644 });
    const r = await runStowage(['build', '--root', work.root, '--snapshotter', backend, '--registry-mirror', `docker.io=${testEnv().registry}`, '-f', dockerfile, '-o', `${work.base}/names.tar`, '.'], { cwd: work.dir, timeoutMs: T });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/error: Dockerfile-names:3: COPY --link --chown=nobody: the user name nobody cannot be looked up.*numeric ids/);
    await expect(readFile(`${work.base}/names.tar`)).rejects.toThrow();
  }, T);
});

// Without a subuid range only root exists on disk: the linked layer's owners
// are recorded, written into its tar, and recorded again when it is stacked,
// so a later step that touches the same directory keeps them.
describe('COPY --link with a single-id mapping', () => {
  const NOSUB = process.env.STOWAGE_TEST_NOSUB_USER || 'stowage-nosub';
  let work: WorkDir;
  let user: { uid: number; gid: number; home: string };
  beforeAll(async () => {
    const f = spawnSync('getent', ['passwd', NOSUB], { encoding: 'utf8' }).stdout.trim().split(':');
    if (f.length < 7) throw new Error(`user ${NOSUB} does not exist: run scripts/setup`);
    user = { uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
    work = await makeWorkDir({
      Dockerfile: 'FROM busybox\nCOPY --link --chown=1000:1000 data/ /srv/data/\nCOPY note.txt /srv/data/note.txt\n',
      'data/a.txt': 'a\n', 'note.txt': 'note\n',
    });
    await chownTree(work.base, user.uid, user.gid);
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  for (const backend of ['overlay', 'native'] as const) test(`${backend}: the owners are in the linked layer and survive stacking`, async () => {
    const e = testEnv();
    const r = await run(['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', 'env', '-i', `HOME=${user.home}`, `PATH=${path.dirname(e.nodePath)}:/usr/sbin:/usr/bin:/sbin:/bin`,
      e.nodePath, e.cliPath, 'build', '--registry-mirror', `docker.io=${e.registry}`, '--snapshotter', backend, '--root', path.join(work.base, `root-${backend}`), '-o', `${work.base}/single-${backend}.tar`, '.'], { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stderr).toMatch(/single-id mapping/);
    const img = await unpackOciTar(`${work.base}/single-${backend}.tar`, path.join(work.base, `layout-${backend}`));
    const [linked, note] = img.layers.slice(-2).map((l) => l.entries.map((x) => `${x.path} ${x.uid}:${x.gid}`).sort());
    expect(linked).toEqual(['srv 1000:1000', 'srv/data 1000:1000', 'srv/data/a.txt 1000:1000']);
    // The plain COPY's layer carries /srv/data again (a file was added in it): with the owner the linked layer gave it.
    expect(note).toContain('srv/data 1000:1000');
    expect(note).toContain('srv/data/note.txt 0:0');
  }, T);
});
