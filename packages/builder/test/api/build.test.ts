import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AbortError, BuildFailedError, build, buildArgv, defaultCliPath, startBuild } from '../../src/api/build.js';
import { BuildError, InvalidOptionError } from '../../src/errors.js';
import type { ProgressEvent } from '../../src/engine/progress.js';

const T = 30_000;

describe('build() options', () => {
  test('map to the CLI flags, with rawjson progress and the metadata file', () => {
    expect(
      buildArgv(
        {
          context: 'ctx',
          file: 'ctx/app.Dockerfile',
          tags: ['app:1', 'reg.example/app:1'],
          target: 'build',
          buildArgs: { A: '1', B: 'x=y z' },
          outputs: [{ type: 'oci', dest: 'out.tar', names: ['a:1'] }, { type: 'local', dest: 'rootfs' }, 'type=docker,dest=d.tar', { type: 'registry' }],
          push: true,
          platform: 'linux/arm64',
          registryMirrors: { 'docker.io': ['127.0.0.1:5055', 'm2'] },
          insecureRegistries: ['reg.example'],
          network: 'none',
          snapshotter: 'native',
          noCache: true,
          noCacheFilter: ['deps'],
          root: '/var/tmp/root',
          iidfile: 'iid',
        },
        '/tmp/m.json',
      ),
    ).toEqual([
      'build', '--progress', 'rawjson', '--metadata-file', '/tmp/m.json',
      '--file', 'ctx/app.Dockerfile', '--tag', 'app:1', '--tag', 'reg.example/app:1', '--target', 'build',
      '--build-arg', 'A=1', '--build-arg', 'B=x=y z',
      '--output', 'type=oci,dest=out.tar,name=a:1', '--output', 'type=local,dest=rootfs', '--output', 'type=docker,dest=d.tar', '--output', 'type=registry',
      '--push', '--platform', 'linux/arm64',
      '--registry-mirror', 'docker.io=127.0.0.1:5055', '--registry-mirror', 'docker.io=m2', '--insecure-registry', 'reg.example',
      '--network', 'none', '--snapshotter', 'native', '--no-cache', '--no-cache-filter', 'deps', '--root', '/var/tmp/root', '--iidfile', 'iid',
      'ctx',
    ]);
    expect(buildArgv({ context: '-weird' }, 'm').at(-1)).toBe('./-weird');
  });

  test('values -o cannot carry, and bad build-arg names, are refused before anything runs', () => {
    expect(() => buildArgv({ context: '.', outputs: [{ type: 'oci', dest: 'a,b.tar' }] }, 'm')).toThrow(InvalidOptionError);
    expect(() => buildArgv({ context: '.', buildArgs: { 'A=B': '1' } }, 'm')).toThrow(InvalidOptionError);
  });

  test('the default CLI is the bundle shipped in this package', () => {
    expect(defaultCliPath()).toMatch(/packages\/builder\/dist\/stowage\.mjs$/);
    expect(existsSync(defaultCliPath())).toBe(true);
  });
});

describe('build() with the real CLI', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-api-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('an option the CLI refuses rejects with BuildFailedError carrying its code and exit code', async () => {
    const err = await build({ context: join(dir, 'missing') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuildFailedError);
    expect(err).toBeInstanceOf(BuildError);
    expect(err).toMatchObject({ code: 'E_INVALID_OPTION', exitCode: 1, message: `build context ${join(dir, 'missing')} is not a directory`, stderr: '' });
    expect((err as BuildFailedError).line).toBeUndefined();
  }, T);

  test('iterating a job yields its events, then throws the build error; onEvent sees the same events', async () => {
    const seen: ProgressEvent[] = [];
    const job = startBuild({ context: dir, outputs: [join(dir, 'no-such-dir', 'out.tar')], onEvent: (e) => seen.push(e) });
    const iterated: ProgressEvent[] = [];
    const failure = await (async () => {
      for await (const e of job) iterated.push(e);
    })().catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(BuildFailedError);
    expect((failure as BuildFailedError).message).toMatch(/no-such-dir does not exist/);
    await expect(job.result).rejects.toBe(failure);
    expect(iterated).toEqual(seen);
    expect(typeof job.pid).toBe('number');
  }, T);

  test('text the CLI writes outside the JSON stream (a usage error) ends up in the error', async () => {
    const err = (await build({ context: dir, network: 'bridge' as never }).catch((e: unknown) => e)) as BuildFailedError;
    expect(err).toBeInstanceOf(BuildFailedError);
    expect(err.exitCode).toBe(2);
    expect(err.code).toBe('E_BUILD_FAILED');
    expect(err.stderr).toMatch(/network/);
  }, T);

  test('an already aborted signal rejects with AbortError without starting the CLI', async () => {
    const ac = new AbortController();
    ac.abort();
    const job = startBuild({ context: dir, signal: ac.signal });
    const err = await job.result.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortError);
    expect(err).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    expect(job.pid).toBeUndefined();
  }, T);
});
