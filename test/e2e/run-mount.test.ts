// RUN --mount (cache, secret, bind, tmpfs) and RUN --network, built by the
// unprivileged user from the loopback registry's busybox: what each mount
// shows the step, that nothing a mount brings in (or the mount point it
// needed) reaches a layer, that cache directories outlive a build and
// `sharing=locked` serializes, and that a secret's value is nowhere in the
// image, the state root, the progress output or the metadata file.
import { randomBytes, createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { makeWorkDir, readLayerFile, run, runStowage, testEnv, unpackOciTar, type RunResult, type UnpackedOci, type WorkDir } from '../lib/index.js';

const T = 300_000;

function mirror(): string[] {
  return ['--registry-mirror', `docker.io=${testEnv().registry}`];
}

async function build(work: WorkDir, args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return runStowage(['build', '--root', work.root, ...mirror(), ...args], { cwd: work.dir, timeoutMs: T, env });
}

function ok(r: RunResult): void {
  expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
}

let unpackCount = 0;
async function unpack(work: WorkDir, tar: string): Promise<UnpackedOci> {
  return unpackOciTar(tar, path.join(work.base, `unpacked-${++unpackCount}`));
}

/** A file of the image: from the last layer that has it. */
async function imageFile(img: UnpackedOci, p: string): Promise<string | undefined> {
  for (const layer of [...img.layers].reverse()) {
    if (layer.entries.some((e) => e.path === p && e.type === 'File')) return (await readLayerFile(layer.blobPath, p))?.toString('utf8');
  }
  return undefined;
}

/** Entries of the layers the build added (not busybox's), by path. */
function stepEntries(img: UnpackedOci): string[] {
  return img.layers.slice(1).flatMap((l) => l.entries.map((e) => e.path));
}

/** The history entries of the RUN steps whose created_by contains `text`. */
function history(img: UnpackedOci, text: string) {
  return (img.config.history ?? []).filter((h) => h.created_by?.includes(text));
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describe('RUN --mount=type=cache', () => {
  let work: WorkDir;
  const DOCKERFILE = [
    'FROM busybox AS seed',
    'RUN mkdir -p /deps && echo seeded > /deps/pkg',
    'FROM busybox',
    'ARG RUN_ID',
    'RUN --mount=type=cache,target=/var/cache/app echo "$RUN_ID" >> /var/cache/app/runs && cat /var/cache/app/runs > /runs-seen',
    // A new cache seeded from a stage; later builds keep what the cache holds, not the seed.
    'RUN --mount=type=cache,id=seeded,target=/c,from=seed,source=/deps echo "$RUN_ID" >> /c/pkg && cat /c/pkg > /seeded',
    // A cache at a path whose parents do not exist either; with no network, nothing else can touch the rootfs.
    'RUN --network=none --mount=type=cache,id=deep,target=/newtop/sub/dir,uid=1000,gid=1000,mode=0750 stat -c "%u %g %a" /newtop/sub/dir > /deep-stat && echo cache-marker-$RUN_ID > /newtop/sub/dir/marker',
    '',
  ].join('\n');

  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: DOCKERFILE });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('a second build sees the first build\'s files; the cache is in no layer, nor are its mount points', async () => {
    ok(await build(work, ['--build-arg', 'RUN_ID=first', '-o', `${work.base}/one.tar`, '.']));
    ok(await build(work, ['--build-arg', 'RUN_ID=second', '-o', `${work.base}/two.tar`, '.']));
    const one = await unpack(work, `${work.base}/one.tar`);
    const two = await unpack(work, `${work.base}/two.tar`);
    expect(await imageFile(one, 'runs-seen')).toBe('first\n');
    expect(await imageFile(two, 'runs-seen')).toBe('first\nsecond\n');
    expect(await imageFile(one, 'seeded')).toBe('seeded\nfirst\n');
    expect(await imageFile(two, 'seeded')).toBe('seeded\nfirst\nsecond\n');
    // uid/gid/mode apply to the new cache directory.
    expect(await imageFile(two, 'deep-stat')).toBe('1000 1000 750\n');
    for (const img of [one, two]) {
      const entries = stepEntries(img);
      expect(entries.filter((e) => e.startsWith('var/cache') || e.startsWith('newtop') || e === 'c' || e.startsWith('c/') || (e.includes('runs') && e !== 'runs-seen'))).toEqual([]);
      expect(entries).toContain('runs-seen');
      for (const layer of img.layers) {
        const plain = gunzipSync(await readFile(layer.blobPath)).toString('latin1');
        expect(plain).not.toContain('cache-marker-');
      }
    }
    // On the --root: one directory per cache id, holding what the steps wrote.
    const dirs = await readdir(path.join(work.root, 'cache-mounts'));
    expect(dirs).toHaveLength(3);
    const ids = await Promise.all(dirs.map((d) => readFile(path.join(work.root, 'cache-mounts', d, 'id'), 'utf8')));
    expect([...ids].sort()).toEqual(['/var/cache/app', 'deep', 'seeded']);
    const deep = path.join(work.root, 'cache-mounts', dirs[ids.indexOf('deep')]!, 'data', 'marker');
    expect(await readFile(deep, 'utf8')).toBe('cache-marker-second\n');
  }, T);

  test('the layer of a step with a deep cache target holds only what the step wrote (the mount point chain is removed)', async () => {
    const img = await unpack(work, `${work.base}/two.tar`);
    const deepStep = history(img, 'newtop');
    expect(deepStep).toHaveLength(1);
    // It wrote /deep-stat, so it has a layer; the layer holds that file only.
    const last = img.layers[img.layers.length - 1]!;
    expect(last.entries.map((e) => e.path)).toEqual(['deep-stat']);
  }, T);
});

describe('RUN --mount=type=cache,sharing=locked', () => {
  let work: WorkDir;
  // Each writer logs its start, waits, notes whether the other one is running meanwhile (started, not ended), and logs its end.
  const writer = (me: string, other: string, sharing: string) =>
    `RUN --mount=type=cache,id=log-${sharing},target=/c,sharing=${sharing} echo ${me}-start >> /c/log && sleep 2 && (grep -q ${other}-start /c/log && ! grep -q ${other}-end /c/log && echo ${me}-saw-${other} >> /c/log || true) && echo ${me}-end >> /c/log`;
  const dockerfile = (sharing: string) => [
    'FROM busybox AS a',
    writer('a', 'b', sharing),
    'FROM busybox AS b',
    writer('b', 'a', sharing),
    'FROM busybox',
    // Mounting both stages makes them dependencies (built first, concurrently).
    `RUN --mount=type=bind,from=a,target=/stage-a --mount=type=bind,from=b,target=/stage-b --mount=type=cache,id=log-${sharing},target=/c cat /c/log > /log`,
    '',
  ].join('\n');

  // sharing=private: both writers wait (bounded) on a shared side channel until the other has started,
  // so they surely overlap; each must then have a log directory of its own.
  const privateWriter = (me: string, other: string) =>
    `RUN --mount=type=cache,id=log-private,target=/c,sharing=private --mount=type=cache,id=sync-private,target=/s echo ${me}-start >> /c/log && touch /s/${me} && for i in $(seq 1 300); do if [ -e /s/${other} ]; then echo ${me}-met >> /c/log; break; fi; sleep 0.1; done && echo ${me}-end >> /c/log`;
  const PRIVATE = [
    'FROM busybox AS a',
    privateWriter('a', 'b'),
    'FROM busybox AS b',
    privateWriter('b', 'a'),
    'FROM busybox',
    'RUN --mount=type=bind,from=a,target=/stage-a --mount=type=bind,from=b,target=/stage-b --mount=type=cache,id=log-private,target=/c cat /c/log > /log',
    '',
  ].join('\n');

  beforeAll(async () => {
    work = await makeWorkDir({ 'locked.Dockerfile': dockerfile('locked'), 'shared.Dockerfile': dockerfile('shared'), 'private.Dockerfile': PRIVATE });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('control: with sharing=shared the two stages overlap (each sees the other start)', async () => {
    ok(await build(work, ['-f', 'shared.Dockerfile', '-o', `${work.base}/shared.tar`, '.']));
    const log = (await imageFile(await unpack(work, `${work.base}/shared.tar`), 'log'))!.trim().split('\n');
    expect(log.filter((l) => l.includes('-saw-')).length).toBeGreaterThan(0);
  }, T);

  test('with sharing=locked one writer runs at a time: no interleaving', async () => {
    const r = await build(work, ['-f', 'locked.Dockerfile', '-o', `${work.base}/locked.tar`, '.']);
    ok(r);
    const log = (await imageFile(await unpack(work, `${work.base}/locked.tar`), 'log'))!.trim().split('\n');
    expect([['a-start', 'a-end', 'b-start', 'b-end'], ['b-start', 'b-end', 'a-start', 'a-end']]).toContainEqual(log);
    expect(r.stderr).toMatch(/waiting for the lock on cache mount id=log-locked/);
  }, T);

  test('with sharing=private concurrent writers get a directory each: neither sees the other, and neither waits', async () => {
    const r = await build(work, ['-f', 'private.Dockerfile', '-o', `${work.base}/private.tar`, '.']);
    ok(r);
    // The last stage mounts the id's own directory; the second writer's instance was a fresh one, dropped after its step.
    const log = (await imageFile(await unpack(work, `${work.base}/private.tar`), 'log'))!.trim().split('\n');
    // Both met (they ran at the same time), yet the directory holds one writer's lines only.
    expect([['a-start', 'a-met', 'a-end'], ['b-start', 'b-met', 'b-end']]).toContainEqual(log);
    expect(r.stderr).not.toMatch(/waiting for the lock on cache mount/);
  }, T);

  test('two stowage processes on one root are serialized too', async () => {
    const single = (me: string) => ['FROM busybox', writer(me, me === 'p' ? 'q' : 'p', 'locked').replace('id=log-locked', 'id=procs'), ''].join('\n');
    await writeFile(work.path('p.Dockerfile'), single('p'));
    await writeFile(work.path('q.Dockerfile'), single('q'));
    await run(['chown', `${testEnv().uid}:${testEnv().gid}`, work.path('p.Dockerfile'), work.path('q.Dockerfile')]);
    const [p, q] = await Promise.all([
      build(work, ['-f', 'p.Dockerfile', '--no-cache', '.']),
      build(work, ['-f', 'q.Dockerfile', '--no-cache', '.']),
    ]);
    ok(p);
    ok(q);
    const dirs = await readdir(path.join(work.root, 'cache-mounts'));
    const ids = await Promise.all(dirs.map((d) => readFile(path.join(work.root, 'cache-mounts', d, 'id'), 'utf8')));
    const log = (await readFile(path.join(work.root, 'cache-mounts', dirs[ids.indexOf('procs')]!, 'data', 'log'), 'utf8')).trim().split('\n');
    expect([['p-start', 'p-end', 'q-start', 'q-end'], ['q-start', 'q-end', 'p-start', 'p-end']]).toContainEqual(log);
  }, T);
});

describe('RUN --mount=type=secret and --secret', () => {
  let work: WorkDir;
  const fileSecret = `file-secret-${randomBytes(12).toString('hex')}`;
  const envSecret = `env-secret-${randomBytes(12).toString('hex')}`;
  const DOCKERFILE = [
    'FROM busybox',
    'RUN --mount=type=secret,id=tok sha256sum < /run/secrets/tok | cut -d" " -f1 > /file.sha && stat -c "%a %u %g" /run/secrets/tok > /file.stat && stat -f -c %T /run/secrets/tok > /file.fs',
    'RUN --mount=type=secret,id=envtok,env=TOKEN printf %s "$TOKEN" | sha256sum | cut -d" " -f1 > /env.sha && (test -e /run/secrets/envtok && echo file || echo no-file) > /env.file',
    'RUN --mount=type=secret,id=tok,target=/root/.tok,mode=0440,uid=1000,gid=100,env=ALSO_ENV stat -c "%a %u %g" /root/.tok > /custom.stat && test "$(cat /root/.tok)" = "$ALSO_ENV" && echo same > /custom.same',
    'RUN --mount=type=secret,id=not-given (test -e /run/secrets/not-given && echo present || echo absent) > /optional',
    '',
  ].join('\n');

  let r: RunResult;
  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: DOCKERFILE, 'required.Dockerfile': 'FROM busybox\nRUN --mount=type=secret,id=absent,required=true true\n' });
    // Outside the context, as a secret file usually is.
    await writeFile(path.join(work.base, 'token.txt'), fileSecret);
    await run(['chown', `${testEnv().uid}:${testEnv().gid}`, path.join(work.base, 'token.txt')]);
    r = await build(work, [
      '--secret', `id=tok,src=${path.join(work.base, 'token.txt')}`, '--secret', 'id=envtok,env=MY_TOKEN',
      '--metadata-file', `${work.base}/meta.json`, '--iidfile', `${work.base}/iid`, '--progress', 'plain',
      '-t', 'secrets:1', '-o', `${work.base}/secret.tar`, '.',
    ], { MY_TOKEN: envSecret });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('the step reads the secret as a file (0400 root by default) and as an environment variable', async () => {
    ok(r);
    const img = await unpack(work, `${work.base}/secret.tar`);
    expect(await imageFile(img, 'file.sha')).toBe(`${sha256(fileSecret)}\n`);
    expect(await imageFile(img, 'file.stat')).toBe('400 0 0\n');
    // Held in memory on the host (a tmpfs), never written to a disk.
    expect(await imageFile(img, 'file.fs')).toBe('tmpfs\n');
    expect(r.stderr).not.toMatch(/secrets are staged on disk/);
    expect(await imageFile(img, 'env.sha')).toBe(`${sha256(envSecret)}\n`);
    expect(await imageFile(img, 'env.file')).toBe('no-file\n');
    expect(await imageFile(img, 'custom.stat')).toBe('440 1000 100\n');
    expect(await imageFile(img, 'custom.same')).toBe('same\n');
    expect(await imageFile(img, 'optional')).toBe('absent\n');
    const entries = stepEntries(img);
    expect(entries.filter((e) => e.startsWith('run') || e.startsWith('root/.tok'))).toEqual([]);
  }, T);

  test('grep -r finds the value nowhere: layers (gunzipped), config, history, progress, metadata file, state root', async () => {
    ok(r);
    const img = await unpack(work, `${work.base}/secret.tar`);
    // Every blob gunzipped beside itself, so grep reads the layer tars too.
    const blobs = path.join(img.dir, 'blobs', 'sha256');
    for (const name of await readdir(blobs)) {
      const data = await readFile(path.join(blobs, name));
      if (data[0] === 0x1f && data[1] === 0x8b) await writeFile(path.join(blobs, `${name}.tar`), gunzipSync(data));
    }
    const rootCopy = path.join(work.base, 'root-gunzipped');
    await mkdir(rootCopy);
    const content = path.join(work.root, 'content', 'blobs', 'sha256');
    for (const name of await readdir(content)) {
      const data = await readFile(path.join(content, name));
      if (data[0] === 0x1f && data[1] === 0x8b) await writeFile(path.join(rootCopy, name), gunzipSync(data));
    }
    await writeFile(path.join(work.base, 'progress.txt'), r.stderr + r.stdout);
    const places = [img.dir, work.root, rootCopy, path.join(work.base, 'progress.txt'), path.join(work.base, 'meta.json'), path.join(work.base, 'iid')];
    // The grep works: a value written into a layer by the build is found.
    const control = await run(['grep', '-r', '-a', '-l', '-F', sha256(fileSecret), img.dir]);
    expect(control.code).toBe(0);
    for (const secret of [fileSecret, envSecret]) {
      const g = await run(['grep', '-r', '-a', '-l', '-F', secret, ...places]);
      expect({ secret, code: g.code, files: g.stdout }).toEqual({ secret, code: 1, files: '' });
    }
  }, T);

  test('the cache key names a secret by id only: another value does not rerun the steps', async () => {
    const again = await build(work, ['--secret', `id=tok,src=${path.join(work.base, 'token.txt')}`, '--secret', 'id=envtok,env=MY_TOKEN', '.'], { MY_TOKEN: 'another-value' });
    ok(again);
    expect((again.stderr.match(/^#\d+ CACHED$/gm) ?? []).length).toBe(4);
  }, T);

  test('no secret staging is left behind: the build\'s scratch space is gone', async () => {
    expect(await readdir(path.join(work.root, 'tmp'))).toEqual([]);
  }, T);

  test('a missing required secret fails, naming the id and the line', async () => {
    const failed = await build(work, ['-f', 'required.Dockerfile', '.']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/error: required\.Dockerfile:2: secret "absent" is required but was not given: pass --secret id=absent/);
  }, T);

  test('--secret with an unreadable file fails before the build', async () => {
    const failed = await build(work, ['--secret', 'id=x,src=/nonexistent/file', '.']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/error: --secret id=x,src=\/nonexistent\/file: cannot read \/nonexistent\/file: ENOENT/);
  }, T);
});

describe('RUN --mount=type=bind and type=tmpfs', () => {
  let work: WorkDir;
  const DOCKERFILE = [
    'FROM busybox AS build',
    'RUN mkdir /out && echo artifact > /out/a.txt',
    'FROM busybox',
    // From the context (default): a file that is never COPY'd; read-only; .dockerignore applies.
    'RUN --mount=target=/ctx cat /ctx/notcopied/data.txt > /read && (echo x > /ctx/notcopied/data.txt && echo writable || echo readonly) > /ro-check && (test -e /ctx/ignored.txt && echo present || echo absent) > /ignored-check',
    // rw: writes allowed, then discarded.
    'RUN --mount=type=bind,source=notcopied,target=/w,rw echo changed > /w/data.txt && cat /w/data.txt > /rw-saw',
    'RUN --mount=type=bind,source=notcopied/data.txt,target=/single.txt cat /single.txt > /after-rw',
    // From a stage: read-only; rw gets a throwaway copy, the stage stays as it was.
    'RUN --mount=type=bind,from=build,source=/out,target=/in cat /in/a.txt > /got && (touch /in/new && echo writable || echo readonly) > /in-ro',
    'RUN --mount=type=bind,from=build,source=/out,target=/in,rw echo extra > /in/extra && ls /in > /rw-ls',
    'RUN --mount=from=build,source=/out,target=/in ls /in > /after-stage-rw',
    // tmpfs: empty, sized, gone afterwards.
    'RUN --mount=type=tmpfs,target=/scratch,size=2m ls -A /scratch | wc -l > /tmpfs-count && df -k /scratch | tail -1 | awk \'{print $2}\' > /tmpfs-size && echo data > /scratch/f',
    // Existing targets stay exactly as they were; with no network nothing else changes: no layer at all.
    'RUN --network=none --mount=type=tmpfs,target=/home --mount=type=bind,target=/etc/passwd,source=notcopied/data.txt true',
    'RUN --network=none --mount=type=tmpfs,target=/brand/new/target true',
    '',
  ].join('\n');

  beforeAll(async () => {
    work = await makeWorkDir({
      Dockerfile: DOCKERFILE,
      '.dockerignore': 'ignored.txt\n',
      'ignored.txt': 'ignored\n',
      'notcopied/data.txt': 'from the context\n',
    });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  let img: UnpackedOci;
  test('reads what the mounts show; writes are refused (ro) or discarded (rw)', async () => {
    ok(await build(work, ['-o', `${work.base}/bind.tar`, '.']));
    img = await unpack(work, `${work.base}/bind.tar`);
    expect(await imageFile(img, 'read')).toBe('from the context\n');
    expect(await imageFile(img, 'ro-check')).toBe('readonly\n');
    expect(await imageFile(img, 'ignored-check')).toBe('absent\n');
    expect(await imageFile(img, 'rw-saw')).toBe('changed\n');
    expect(await imageFile(img, 'after-rw')).toBe('from the context\n');
    expect(await readFile(work.path('notcopied/data.txt'), 'utf8')).toBe('from the context\n');
    expect(await imageFile(img, 'got')).toBe('artifact\n');
    expect(await imageFile(img, 'in-ro')).toBe('readonly\n');
    expect(await imageFile(img, 'rw-ls')).toBe('a.txt\nextra\n');
    expect(await imageFile(img, 'after-stage-rw')).toBe('a.txt\n');
    expect(await imageFile(img, 'tmpfs-count')).toBe('0\n');
    expect(await imageFile(img, 'tmpfs-size')).toBe('2048\n');
  }, T);

  test('no mount point, mounted file or tmpfs content is in a layer; existing targets are untouched', async () => {
    const entries = stepEntries(img);
    for (const prefix of ['ctx', 'w', 'single.txt', 'in', 'scratch', 'brand', 'home', 'etc/passwd', 'notcopied']) {
      expect({ prefix, found: entries.filter((e) => e === prefix || e.startsWith(`${prefix}/`)) }).toEqual({ prefix, found: [] });
    }
    // History records the command, not the flags: these are the last two steps.
    const noLayer = (img.config.history ?? []).slice(-2);
    expect(noLayer.map((h) => h.empty_layer)).toEqual([true, true]);
    expect(await imageFile(img, 'etc/passwd')).toMatch(/^root:/);
  }, T);

  test('the bound context is part of the cache key, after .dockerignore: a change reruns the step that reads it', async () => {
    const cachedSteps = (r: RunResult) => (r.stderr.match(/^#\d+ CACHED$/gm) ?? []).length;
    const again = await build(work, ['-o', `${work.base}/again.tar`, '.']);
    ok(again);
    expect(cachedSteps(again)).toBe(10);
    await writeFile(work.path('ignored.txt'), 'edited, but ignored\n');
    const ignored = await build(work, ['-o', `${work.base}/again.tar`, '.']);
    ok(ignored);
    expect(cachedSteps(ignored)).toBe(10);
    await writeFile(work.path('notcopied/data.txt'), 'edited\n');
    const edited1 = await build(work, ['-o', `${work.base}/edited.tar`, '.']);
    ok(edited1);
    expect(cachedSteps(edited1)).toBeLessThan(10);
    const edited = await unpack(work, `${work.base}/edited.tar`);
    expect(await imageFile(edited, 'read')).toBe('edited\n');
    expect(await imageFile(edited, 'after-rw')).toBe('edited\n');
  }, T);

  test('mistakes fail with the Dockerfile line and a clear message', async () => {
    await writeFile(path.join(work.base, 'outside.txt'), 'outside\n');
    await run(['ln', '-s', path.join(work.base, 'outside.txt'), work.path('escape')]);
    const cases: [string, RegExp][] = [
      ['RUN --mount=type=cache,target=/x,colour=blue true', /Dockerfile:2: RUN --mount=type=cache,target=\/x,colour=blue: unknown mount option "colour"/],
      ['RUN --mount=type=cache,id=x true', /Dockerfile:2: .*target is required for type=cache/],
      ['RUN --mount=type=bind,source=../outside.txt,target=/x true', /Dockerfile:2: .*source \.\.\/outside\.txt is outside the build context/],
      ['RUN --mount=type=bind,source=escape,target=/x true', /Dockerfile:2: .*the symbolic link escape -> .* leads outside the build context/],
      ['RUN --mount=type=bind,source=ignored.txt,target=/x true', /Dockerfile:2: .*excluded by \.dockerignore/],
      ['RUN --mount=type=bind,from=nosuchstage,target=/x true', /Dockerfile:2: RUN --mount from=nosuchstage: no earlier stage has that name/],
      ['RUN --mount=type=ssh true', /Dockerfile:2: RUN --mount=type=ssh is not supported yet/],
    ];
    for (const [line, expected] of cases) {
      await writeFile(work.path('bad.Dockerfile'), `FROM busybox\n${line}\n`);
      const r = await build(work, ['-f', 'bad.Dockerfile', '.']);
      expect({ line, code: r.code }).toEqual({ line, code: 1 });
      expect(r.stderr.replace('bad.Dockerfile', 'Dockerfile')).toMatch(expected);
    }
  }, T);
});

describe('RUN --network per step', () => {
  let work: WorkDir;
  // The loopback registry answers GET /v2/ with 200; busybox's nc talks to it.
  const probe = (file: string) => `(printf "GET /v2/ HTTP/1.0\\r\\n\\r\\n" | nc -w 5 127.0.0.1 ${testEnv().registry.split(':')[1]} | head -1 | grep -q " 200 " && echo reached || echo unreachable) > /${file}`;
  beforeAll(async () => {
    work = await makeWorkDir({
      Dockerfile: ['FROM busybox', `RUN --network=none ${probe('none')}`, `RUN --network=host ${probe('host')}`, `RUN --network=default ${probe('default')}`, `RUN ${probe('unset')}`, ''].join('\n'),
    });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('RUN --network=host needs --allow network.host; then only host reaches 127.0.0.1 (default and no flag are the sandbox network)', async () => {
    const refused = await build(work, ['-o', `${work.base}/net.tar`, '.']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/Dockerfile:3: RUN --network=host is not allowed: .*--allow network\.host/);
    ok(await build(work, ['--allow', 'network.host', '-o', `${work.base}/net.tar`, '.']));
    const img = await unpack(work, `${work.base}/net.tar`);
    expect(await imageFile(img, 'none')).toBe('unreachable\n');
    expect(await imageFile(img, 'host')).toBe('reached\n');
    expect(await imageFile(img, 'default')).toBe('unreachable\n');
    expect(await imageFile(img, 'unset')).toBe('unreachable\n');
  }, T);

  test('with build --network host, RUN --network=host needs no --allow (nothing is lifted), default reaches 127.0.0.1', async () => {
    ok(await build(work, ['--network', 'host', '-o', `${work.base}/net-host.tar`, '.']));
    const img = await unpack(work, `${work.base}/net-host.tar`);
    expect(await imageFile(img, 'default')).toBe('reached\n');
    expect(await imageFile(img, 'host')).toBe('reached\n');
  }, T);

  test('with build --network none, RUN --network=default has no network either; host still has', async () => {
    ok(await build(work, ['--network', 'none', '--allow', 'network.host', '-o', `${work.base}/net-none.tar`, '.']));
    const img = await unpack(work, `${work.base}/net-none.tar`);
    expect(await imageFile(img, 'default')).toBe('unreachable\n');
    expect(await imageFile(img, 'unset')).toBe('unreachable\n');
    expect(await imageFile(img, 'host')).toBe('reached\n');
    expect((await stat(`${work.base}/net-none.tar`)).size).toBeGreaterThan(0);
  }, T);
});
