// The build context side of COPY/ADD: .dockerignore (Docker's rules, and
// <Dockerfile>.dockerignore beside a named Dockerfile), COPY --exclude,
// COPY --parents, symbolic --chmod and context symlinks, checked in the
// layers of the exported image.
import path from 'node:path';
import { makeWorkDir, runStowage, testEnv, unpackOciTar, type LayerEntry, type RunResult, type UnpackedOci, type WorkDir } from '../lib/index.js';

const T = 300_000;

const DOCKERIGNORE = [
  '# build junk',
  '**/*.tmp',
  'cache',
  '!cache/keep.txt',
  'secret.txt',
  'Dockerfile',
  '',
].join('\n');

const DOCKERFILE = [
  'FROM busybox',
  'COPY . /ctx/',
  'COPY --exclude=*.log logs /logs/',
  'COPY --parents src/./x/**/*.txt app/sub/z.txt /parents/',
  'COPY --chmod=u+x,go-w tools /tools/',
  '',
].join('\n');

const OTHER = 'FROM busybox\nCOPY . /ctx/\n';

interface Built {
  r: RunResult;
  img?: UnpackedOci;
}

async function build(work: WorkDir, name: string, file: string): Promise<Built> {
  const r = await runStowage(['build', '--root', work.root, '--registry-mirror', `docker.io=${testEnv().registry}`, '-f', file, '-o', `${name}.tar`, '.'], { cwd: work.dir, timeoutMs: T });
  if (r.code !== 0) return { r };
  return { r, img: await unpackOciTar(work.path(`${name}.tar`), path.join(work.base, `unpacked-${name}`)) };
}

function image(b: Built | undefined): UnpackedOci {
  if (!b) throw new Error('beforeAll did not run the build');
  if (!b.img) throw new Error(`the build failed (exit ${b.r.code}):\n${b.r.stderr}`);
  return b.img;
}

/** The entries of the layer N-th from the top (1 = last instruction). */
function layer(b: Built | undefined, fromTop: number): Map<string, LayerEntry> {
  const layers = image(b).layers;
  const l = layers[layers.length - fromTop];
  if (!l) throw new Error(`no layer ${fromTop} from the top`);
  return new Map(l.entries.map((e) => [e.path, e]));
}

const paths = (m: Map<string, LayerEntry>, prefix: string) => [...m.keys()].filter((p) => p === prefix || p.startsWith(`${prefix}/`)).sort();

describe('build context: .dockerignore, --exclude, --parents, --chmod', () => {
  let work: WorkDir;
  let main: Built;
  let other: Built;

  beforeAll(async () => {
    work = await makeWorkDir({
      Dockerfile: DOCKERFILE,
      '.dockerignore': DOCKERIGNORE,
      'other.Dockerfile': OTHER,
      'other.Dockerfile.dockerignore': 'app\n*.Dockerfile*\n',
      'secret.Dockerfile': 'FROM busybox\nCOPY secret.txt /s\n',
      'app/main.sh': { content: '#!/bin/sh\necho main\n', mode: 0o755 },
      'app/x.tmp': 'tmp\n',
      'app/sub/y.tmp': 'tmp\n',
      'app/sub/z.txt': 'z\n',
      'cache/a.bin': 'bin\n',
      'cache/keep.txt': 'keep\n',
      'secret.txt': 'secret\n',
      'logs/a.log': 'log\n',
      'logs/b.txt': 'b\n',
      'src/x/y/a.txt': 'a\n',
      'src/x/y/b.md': 'b\n',
      'tools/run.sh': { content: '#!/bin/sh\n', mode: 0o755 },
      'tools/conf': { content: 'conf\n', mode: 0o666 },
      'tools/sub': { dir: true, mode: 0o777 },
      'tools/sub/data': { content: 'data\n', mode: 0o600 },
      link: { symlink: '/etc' },
    });
    main = await build(work, 'main', 'Dockerfile');
    other = await build(work, 'other', 'other.Dockerfile');
  }, T);

  afterAll(async () => {
    await work?.rm();
  }, T);

  test('COPY . /ctx/ leaves out what .dockerignore excludes (**, a directory, the Dockerfile) and keeps exceptions', () => {
    const l = layer(main, 4);
    expect(paths(l, 'ctx')).toEqual([
      'ctx',
      'ctx/.dockerignore',
      'ctx/app',
      'ctx/app/main.sh',
      'ctx/app/sub',
      'ctx/app/sub/z.txt',
      'ctx/cache',
      'ctx/cache/keep.txt',
      'ctx/link',
      'ctx/logs',
      'ctx/logs/a.log',
      'ctx/logs/b.txt',
      'ctx/other.Dockerfile',
      'ctx/other.Dockerfile.dockerignore',
      'ctx/secret.Dockerfile',
      'ctx/src',
      'ctx/src/x',
      'ctx/src/x/y',
      'ctx/src/x/y/a.txt',
      'ctx/src/x/y/b.md',
      'ctx/tools',
      'ctx/tools/conf',
      'ctx/tools/run.sh',
      'ctx/tools/sub',
      'ctx/tools/sub/data',
    ]);
    expect(l.get('ctx/app/main.sh')).toMatchObject({ type: 'File', mode: 0o755, uid: 0, gid: 0 });
  });

  test('a context symlink x -> /etc is copied as a symlink, not followed', () => {
    expect(layer(main, 4).get('ctx/link')).toMatchObject({ type: 'SymbolicLink', linkpath: '/etc' });
  });

  test('COPY --exclude=*.log', () => {
    expect(paths(layer(main, 3), 'logs')).toEqual(['logs', 'logs/b.txt']);
  });

  test('COPY --parents keeps the paths after the /./ pivot and in full without one', () => {
    expect(paths(layer(main, 2), 'parents')).toEqual([
      'parents',
      'parents/app',
      'parents/app/sub',
      'parents/app/sub/z.txt',
      'parents/x',
      'parents/x/y',
      'parents/x/y/a.txt',
    ]);
  });

  test('COPY --chmod=u+x,go-w applies to each file and nested directory', () => {
    const l = layer(main, 1);
    expect(l.get('tools/run.sh')).toMatchObject({ type: 'File', mode: 0o755 });
    expect(l.get('tools/conf')).toMatchObject({ type: 'File', mode: 0o744 });
    expect(l.get('tools/sub')).toMatchObject({ type: 'Directory', mode: 0o755 });
    expect(l.get('tools/sub/data')).toMatchObject({ type: 'File', mode: 0o700 });
  });

  test('<Dockerfile>.dockerignore beside a named Dockerfile replaces .dockerignore', () => {
    const l = layer(other, 1);
    const ctx = paths(l, 'ctx');
    expect(ctx).toContain('ctx/secret.txt');
    expect(ctx).toContain('ctx/Dockerfile');
    expect(ctx).toContain('ctx/cache/a.bin');
    expect(ctx.filter((p) => p.startsWith('ctx/app'))).toEqual([]);
    expect(ctx.filter((p) => p.includes('.Dockerfile'))).toEqual([]);
  });

  test('COPY of a file .dockerignore excludes fails as not found', async () => {
    const r = await build(work, 'secret', 'secret.Dockerfile');
    expect(r.r.code).not.toBe(0);
    expect(r.r.stderr).toMatch(/secret\.txt.*not found/);
  }, T);
});
