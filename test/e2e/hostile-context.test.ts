// Hostile build contexts, built by the unprivileged user: symlinks that point
// out of the context (absolute, relative, a directory link to /), `..` in
// COPY sources, `COPY --from` a stage with such links, a FIFO, a unix socket
// and a device node, and a .dockerignore that is a FIFO or a link to
// /dev/zero. Every build either refuses with `error: <Dockerfile>:<line>` (or
// names the bad file) or copies links as links; no layer ever holds a byte
// from outside the context (a marker file next to it, the host's
// /etc/passwd), and nothing blocks on a FIFO.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import * as tar from 'tar';
import { chownTree, makeWorkDir, runStowage, testEnv, unpackOciTar, type LayerEntry, type RunResult, type UnpackedOci, type WorkDir } from '../lib/index.js';

const T = 300_000;
/** A build that takes longer than this is taken to hang (on a FIFO). */
const BUILD_MS = 120_000;

const MARKER = `outside-the-context-${process.pid}-${Date.now()}`;

interface Built {
  r: RunResult;
  img?: UnpackedOci;
}

let work: WorkDir;
let socket: Server | undefined;
let hasDevice = false;
/** A line of the host's /etc/passwd that no image has: the test user's entry. */
let hostPasswdLine: string;

function mirror(): string[] {
  return ['--registry-mirror', `docker.io=${testEnv().registry}`];
}

async function build(name: string, dockerfile: string, dir = work): Promise<Built> {
  await fs.writeFile(dir.path(`${name}.Dockerfile`), dockerfile);
  await fs.chown(dir.path(`${name}.Dockerfile`), testEnv().uid, testEnv().gid);
  const r = await runStowage(['build', '--root', dir.root, ...mirror(), '-f', `${name}.Dockerfile`, '-o', `type=oci,dest=../${name}.tar`, '.'], { cwd: dir.dir, timeoutMs: BUILD_MS });
  const b: Built = { r };
  if (r.code === 0) b.img = await unpackOciTar(path.join(dir.base, `${name}.tar`), path.join(dir.base, `unpacked-${name}`));
  return b;
}

function image(b: Built): UnpackedOci {
  if (b.r.timedOut) throw new Error(`the build hung (killed after ${BUILD_MS} ms):\n${b.r.stderr}`);
  if (!b.img) throw new Error(`the build failed (exit ${b.r.code}):\n${b.r.stderr}`);
  return b.img;
}

/** Entries of the top layer (the last instruction's). */
function top(b: Built): Map<string, LayerEntry> {
  const layers = image(b).layers;
  return new Map(layers[layers.length - 1]!.entries.map((e) => [e.path, e]));
}

/** Inside the context, to show that leaks() finds what it looks for. */
const CONTROL = `inside-the-context-${process.pid}`;

/**
 * Searches every regular file in every layer the build made (the base
 * image's excluded) for the marker outside the context and the host's
 * /etc/passwd (or for `needles`).
 */
async function leaks(b: Built, needles?: string[]): Promise<string[]> {
  const img = image(b);
  const found: string[] = [];
  for (const layer of img.layers.slice(1)) {
    await tar.t({
      file: layer.blobPath,
      onReadEntry: (e) => {
        if (e.type !== 'File') return;
        const chunks: Buffer[] = [];
        e.on('data', (c: Buffer) => chunks.push(c));
        e.on('end', () => {
          const text = Buffer.concat(chunks).toString('latin1');
          if (needles !== undefined) {
            if (needles.some((n) => text.includes(n))) found.push(e.path.replace(/^\.?\//, ''));
            return;
          }
          if (text.includes(MARKER)) found.push(`${e.path}: the marker file outside the context`);
          if (text.includes(hostPasswdLine)) found.push(`${e.path}: the host's /etc/passwd`);
        });
      },
    });
  }
  return found;
}

beforeAll(async () => {
  const env = testEnv();
  hostPasswdLine = `${env.user}:x:${env.uid}:`;
  expect(await fs.readFile('/etc/passwd', 'utf8')).toContain(hostPasswdLine);
  work = await makeWorkDir({
    'data.txt': 'data\n',
    'control.txt': `${CONTROL}\n`,
    'abs-passwd': { symlink: '/etc/passwd' },
    'rel-passwd': { symlink: '../../../../../../../../etc/passwd' },
    'rel-secret': { symlink: '../outside/secret.txt' },
    rootdir: { symlink: '/' },
    updir: { symlink: '..' },
    'dir/inner': { symlink: '../../outside/secret.txt' },
    'dir/file.txt': 'inner\n',
  });
  // Next to the context, where `..` would lead.
  await fs.mkdir(path.join(work.base, 'outside'));
  for (const [p, content] of [['outside/secret.txt', MARKER], ['x', `${MARKER} x`], ['y', `${MARKER} y`]]) {
    await fs.writeFile(path.join(work.base, p!), `${content}\n`);
  }
  execFileSync('mkfifo', [work.path('fifo')]);
  socket = createServer();
  await new Promise<void>((resolve) => socket!.listen(work.path('sock'), resolve));
  try {
    execFileSync('mknod', [work.path('dev'), 'c', '1', '3'], { stdio: 'ignore' });
    hasDevice = true;
  } catch (err) {
    // Without CAP_MKNOD (inside a container) the device case cannot be set up: say so loudly, or opt out.
    if (process.env.STOWAGE_TEST_NO_MKNOD !== '1') throw new Error(`mknod failed (set STOWAGE_TEST_NO_MKNOD=1 to run without the device case): ${String(err)}`);
    console.warn('hostile-context: STOWAGE_TEST_NO_MKNOD=1, the device-node case is not checked');
  }
  await chownTree(work.base, env.uid, env.gid);
}, T);

afterAll(async () => {
  socket?.close();
  await work?.rm();
}, T);

describe('symlinks and special files inside the context', () => {
  test('COPY . copies links as links, recreates the FIFO, skips socket and device, and never blocks', async () => {
    const started = Date.now();
    const b = await build('whole', 'FROM busybox\nCOPY . /ctx/\n');
    expect(b.r.timedOut).toBe(false);
    const l = top(b);
    const link = (p: string) => [l.get(p)?.type, l.get(p)?.linkpath];
    expect(link('ctx/abs-passwd')).toEqual(['SymbolicLink', '/etc/passwd']);
    expect(link('ctx/rel-passwd')).toEqual(['SymbolicLink', '../../../../../../../../etc/passwd']);
    expect(link('ctx/rel-secret')).toEqual(['SymbolicLink', '../outside/secret.txt']);
    expect(link('ctx/rootdir')).toEqual(['SymbolicLink', '/']);
    expect(link('ctx/updir')).toEqual(['SymbolicLink', '..']);
    expect(link('ctx/dir/inner')).toEqual(['SymbolicLink', '../../outside/secret.txt']);
    expect(l.get('ctx/data.txt')?.type).toBe('File');
    expect(l.get('ctx/fifo')?.type).toBe('FIFO');
    expect(l.has('ctx/sock')).toBe(false);
    expect(b.r.stderr).toContain('skipping /ctx/sock: sockets are not copied');
    if (hasDevice) {
      expect(l.has('ctx/dev')).toBe(false);
      expect(b.r.stderr).toContain('skipping /ctx/dev: device nodes are not copied');
    }
    // Nothing was followed out of the context.
    expect([...l.keys()].some((p) => p.startsWith('ctx/rootdir/') || p.startsWith('ctx/updir/'))).toBe(false);
    expect(await leaks(b)).toEqual([]);
    expect(await leaks(b, [CONTROL])).toEqual(['ctx/control.txt']);
    expect(Date.now() - started).toBeLessThan(BUILD_MS);
  }, T);

  test('COPY of the FIFO itself recreates it without reading it', async () => {
    const b = await build('fifo', 'FROM busybox\nCOPY fifo /f\n');
    expect(b.r.timedOut).toBe(false);
    expect(top(b).get('f')?.type).toBe('FIFO');
  }, T);

  test('a directory link to / resolves to the context root, not the host root', async () => {
    const b = await build('rootdir', 'FROM busybox\nCOPY rootdir /r/\n');
    const l = top(b);
    expect(l.get('r/data.txt')?.type).toBe('File');
    expect(l.has('r/etc/passwd')).toBe(false);
    expect(await leaks(b)).toEqual([]);
  }, T);
});

test('a wildcard through a link out of the context matches nothing: the step copies nothing, as BuildKit (empty wildcards are allowed)', async () => {
  const b = await build('glob-through-link', 'FROM busybox\nCOPY updir/outside/*.txt /s/\n');
  const entries = top(b);
  expect([...entries.keys()].filter((p) => p === 's' || p.startsWith('s/'))).toEqual([]);
  expect(b.r.stderr).not.toContain(MARKER);
}, T);

describe('sources that lead out of the context are refused with the Dockerfile line', () => {
  const refused: Array<[string, string]> = [
    ['dotdot', 'COPY ../x /x'],
    ['dotdot-inside', 'COPY x/../../y /y'],
    ['abs-link', 'COPY abs-passwd /p'],
    ['rel-link', 'COPY rel-passwd /p'],
    ['rel-link-secret', 'COPY rel-secret /s'],
    ['dir-link-to-root', 'COPY rootdir/etc/passwd /p'],
    ['dir-link-up', 'COPY updir/outside/secret.txt /s'],
    ['nested-link', 'COPY dir/inner /i'],
    ['add-link', 'ADD rel-secret /s'],
  ];
  test.each(refused)('%s: %s', async (name, instruction) => {
    const b = await build(name, `FROM busybox\n${instruction}\n`);
    expect(b.r.timedOut).toBe(false);
    expect(b.r.code).not.toBe(0);
    const source = instruction.split(' ')[1]!;
    expect(b.r.stderr).toMatch(new RegExp(`error: ${name}\\.Dockerfile:2: (COPY|ADD) failed: (no source files were specified matching ${escape(source)}|"${escape(source)}": not found in the build context)`));
    expect(b.r.stderr).not.toContain(MARKER);
    expect(b.r.stderr).not.toContain(hostPasswdLine);
  }, T);
});

describe('COPY --from a stage whose links point out', () => {
  test('../../ and links are resolved inside the stage; its FIFO is recreated', async () => {
    const b = await build(
      'from-stage',
      [
        'FROM busybox AS s',
        'RUN ln -s /etc/passwd /s-abs && ln -s ../../../../../etc/passwd /s-rel && mkfifo /s-fifo && echo stage > /s-file',
        'FROM busybox',
        'COPY --from=s ../../s-file /from/file',
        'COPY --from=s /s-abs /named-abs',
        'COPY --from=s s-rel /named-rel',
        'COPY --from=s /s-fifo /named-fifo',
        'COPY --from=s ../../ /whole/',
        '',
      ].join('\n'),
    );
    const img = image(b);
    const layerOf = (fromTop: number) => new Map(img.layers[img.layers.length - fromTop]!.entries.map((e) => [e.path, e]));
    expect(layerOf(5).get('from/file')?.type).toBe('File');
    // Followed inside the stage: busybox's own passwd, a regular file.
    expect(layerOf(4).get('named-abs')?.type).toBe('File');
    expect(layerOf(3).get('named-rel')?.type).toBe('File');
    expect(layerOf(2).get('named-fifo')?.type).toBe('FIFO');
    const whole = layerOf(1);
    expect(whole.get('whole/s-abs')).toMatchObject({ type: 'SymbolicLink', linkpath: '/etc/passwd' });
    expect(whole.get('whole/s-fifo')?.type).toBe('FIFO');
    expect(whole.get('whole/etc/passwd')?.type).toBe('File');
    expect(await leaks(b)).toEqual([]);
  }, T);
});

describe('a Dockerfile that never ends', () => {
  test('-f /dev/zero stops at the size limit with an error, instead of reading forever', async () => {
    const started = Date.now();
    const r = await runStowage(['build', '--root', work.root, '-f', '/dev/zero', '-o', `type=oci,dest=../zero.tar`, '.'], { cwd: work.dir, timeoutMs: BUILD_MS });
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: zero:1: Dockerfile larger than the maximum of 16777216 bytes$/m);
    expect(Date.now() - started).toBeLessThan(BUILD_MS);
  }, T);
});

describe('a hostile .dockerignore', () => {
  test('a FIFO or a link to /dev/zero is refused at once, naming the file', async () => {
    const other = await makeWorkDir({ 'data.txt': 'data\n' });
    try {
      execFileSync('mkfifo', [other.path('.dockerignore')]);
      await chownTree(other.base, testEnv().uid, testEnv().gid);
      const fifo = await build('ignore-fifo', 'FROM busybox\nCOPY data.txt /d\n', other);
      expect(fifo.r.timedOut).toBe(false);
      expect(fifo.r.code).not.toBe(0);
      expect(fifo.r.stderr).toContain(`error: .dockerignore: ${other.path('.dockerignore')} is a FIFO, not a regular file`);

      await fs.symlink('/dev/zero', other.path('zero.Dockerfile.dockerignore'));
      await fs.lchown(other.path('zero.Dockerfile.dockerignore'), testEnv().uid, testEnv().gid);
      const zero = await build('zero', 'FROM busybox\nCOPY data.txt /d\n', other);
      expect(zero.r.code).not.toBe(0);
      // Refused before it is opened: the link leads out of the context.
      expect(zero.r.stderr).toContain(`error: .dockerignore: ${other.path('zero.Dockerfile.dockerignore')} is a symbolic link that leads out of`);
    } finally {
      await other.rm();
    }
  }, T);
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('a Dockerfile or .dockerignore that links out of its directory is not read (its text would reach the log)', () => {
  test.each([
    ['-f naming a Dockerfile that links outside the context', 'escape.Dockerfile', ['-f', 'escape.Dockerfile']],
    ['the default Dockerfile linking outside the context', 'Dockerfile', []],
  ])('%s', async (_what, name, fileArgs) => {
    const dir = await makeWorkDir({ 'data.txt': 'x\n' });
    try {
      await fs.symlink(path.join(work.base, 'outside', 'secret.txt'), dir.path(name));
      await chownTree(dir.base, testEnv().uid, testEnv().gid);
      const r = await runStowage(['build', '--root', dir.root, ...mirror(), ...fileArgs, '-o', 'type=oci,dest=../out.tar', '.'], { cwd: dir.dir, timeoutMs: BUILD_MS });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/Dockerfile: .* is a symbolic link that leads out of/);
      expect(r.stderr).not.toContain(MARKER);
    } finally {
      await dir.rm();
    }
  }, T);

  test('a .dockerignore linked out of the context', async () => {
    const dir = await makeWorkDir({ Dockerfile: 'FROM busybox\nCOPY data.txt /\n', 'data.txt': 'x\n' });
    try {
      await fs.symlink(path.join(work.base, 'outside', 'secret.txt'), dir.path('.dockerignore'));
      await chownTree(dir.base, testEnv().uid, testEnv().gid);
      const r = await runStowage(['build', '--root', dir.root, ...mirror(), '-o', 'type=oci,dest=../out.tar', '.'], { cwd: dir.dir, timeoutMs: BUILD_MS });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/\.dockerignore is a symbolic link that leads out of/);
      expect(r.stderr).not.toContain(MARKER);
    } finally {
      await dir.rm();
    }
  }, T);
});
