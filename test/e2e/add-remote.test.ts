// ADD of remote sources, built as the unprivileged user against servers this
// file starts on loopback: a node http server (files, a 404, Last-Modified, a
// tarball, a URL with credentials) and `git daemon` serving a repository made
// here (two commits, a tag, a subdirectory, an executable, a symlink).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { makeWorkDir, readLayerFile, runStowage, testEnv, unpackOciTar, type LayerEntry, type RunResult, type UnpackedOci, type WorkDir } from '../lib/index.js';

const T = 300_000;
const PASSWORD = 'pa55-Wd7q-secret';
const LAST_MODIFIED = 'Wed, 21 Oct 2015 07:28:00 GMT';

/** What the http server serves; tests change `hello` to prove a changed file reruns its step. */
const served = { hello: 'hello v1\n', checked: 'checked content\n' };
const hits = new Map<string, number>();
const TARBALL = gzipSync(tarOf('inside.txt', 'inside\n'));

/** A one-file ustar archive, by hand: the point is only that it is a real tar. */
function tarOf(name: string, content: string): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${content.length.toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const body = Buffer.alloc(512);
  body.write(content);
  return Buffer.concat([header, body, Buffer.alloc(1024)]);
}

const sha256 = (b: string | Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function startHttp(): Promise<Server> {
  const server = createServer((req, res) => {
    const url = req.url ?? '';
    hits.set(url, (hits.get(url) ?? 0) + 1);
    if (url === '/hello.txt') return res.end(served.hello);
    if (url === '/dated.txt') {
      res.setHeader('last-modified', LAST_MODIFIED);
      return res.end('dated\n');
    }
    if (url === '/archive.tar.gz') {
      res.setHeader('content-type', 'application/gzip');
      return res.end(TARBALL);
    }
    if (url === '/checked.bin') return res.end(served.checked);
    if (url === '/private.txt') {
      if (req.headers.authorization !== `Basic ${Buffer.from(`user:${PASSWORD}`).toString('base64')}`) {
        res.statusCode = 401;
        return res.end('who are you\n');
      }
      return res.end('private\n');
    }
    res.statusCode = 404;
    res.end('not found\n');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Waits until something accepts connections on the port. */
async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.on('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

const entriesOf = (img: UnpackedOci, i: number) => new Map<string, LayerEntry>(img.layers[i]!.entries.map((e) => [e.path, e]));

describe('ADD of remote sources', () => {
  let http: Server;
  let daemon: ChildProcess | undefined;
  let gitBase: string;
  let repo: string;
  let httpUrl: string;
  let gitUrl: string;
  const commits: string[] = [];
  let tagCommit: string;
  const gitEnv = (base: string) => ({
    ...process.env, HOME: base, GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t',
  });
  const git = (...args: string[]) => execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8', env: gitEnv(gitBase) }).trim();
  const commit = (message: string, date: string) => {
    git('add', '-A');
    execFileSync('git', ['-C', repo, 'commit', '-q', '-m', message], { env: { ...gitEnv(gitBase), GIT_COMMITTER_DATE: date, GIT_AUTHOR_DATE: date } });
    const id = git('rev-parse', 'HEAD');
    commits.push(id);
    return id;
  };

  beforeAll(async () => {
    http = await startHttp();
    httpUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    gitBase = await mkdtemp(path.join(tmpdir(), 'stowage-add-remote-git-'));
    repo = path.join(gitBase, 'repo');
    execFileSync('git', ['init', '-q', '-b', 'main', repo], { env: gitEnv(gitBase) });
    await writeFile(path.join(repo, 'README'), 'first\n');
    tagCommit = commit('first', '2001-01-01T00:00:00Z');
    git('tag', '-a', 'v1', '-m', 'release 1');
    await mkdir(path.join(repo, 'sub', 'deep'), { recursive: true });
    await writeFile(path.join(repo, 'README'), 'second\n');
    await writeFile(path.join(repo, 'sub', 'deep', 'tool.sh'), '#!/bin/sh\necho tool\n');
    await chmod(path.join(repo, 'sub', 'deep', 'tool.sh'), 0o755);
    await writeFile(path.join(repo, 'sub', 'data.txt'), 'data\n');
    await symlink('../../../../../../etc/shadow', path.join(repo, 'sub', 'outside'));
    commit('second', '2002-02-02T02:02:02Z');
    const port = await freePort();
    gitUrl = `git://127.0.0.1:${port}`;
    daemon = spawn('git', ['daemon', '--export-all', `--base-path=${gitBase}`, '--listen=127.0.0.1', `--port=${port}`, '--reuseaddr'], {
      env: gitEnv(gitBase), stdio: 'ignore', detached: true,
    });
    await waitForPort(port);
  }, T);

  afterAll(async () => {
    // The daemon forks a child per connection: its whole process group goes.
    if (daemon?.pid !== undefined) {
      try {
        process.kill(-daemon.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await new Promise((r) => http?.close(r));
    await rm(gitBase, { recursive: true, force: true });
  }, T);

  /** A build in a fresh (or given) work dir; returns the run, the labels of cached steps and the work dir. */
  const build = async (dockerfile: string, work?: WorkDir, extra: string[] = []): Promise<{ r: RunResult; cached: string[]; work: WorkDir; out: string }> => {
    const w = work ?? (await makeWorkDir({ Dockerfile: dockerfile }));
    if (work) await writeFile(w.path('Dockerfile'), dockerfile);
    const out = path.join(w.base, 'out.tar');
    await rm(out, { force: true });
    // Layer times are clamped to SOURCE_DATE_EPOCH (1970 by default): a later one keeps the sources' own times visible.
    // The servers listen on 127.0.0.1, which a Dockerfile may fetch from only with the host network allowed.
    const r = await runStowage(['build', '--root', w.root, '--registry-mirror', `docker.io=${testEnv().registry}`, '--allow', 'network.host', ...extra, '-o', out, '.'], { cwd: w.dir, timeoutMs: T, env: { SOURCE_DATE_EPOCH: '2000000000' } });
    const labels = new Map<string, string>();
    for (const m of r.stderr.matchAll(/^#(\d+) (\[.*)$/gm)) labels.set(m[1]!, m[2]!);
    const cached = [...r.stderr.matchAll(/^#(\d+) CACHED$/gm)].map((m) => labels.get(m[1]!)!.replace(/^\[\S+ \d+\/\d+\] /, ''));
    return { r, cached, work: w, out };
  };
  const ok = (r: RunResult) => expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
  const works: WorkDir[] = [];
  afterAll(async () => {
    for (const w of works) await w.rm();
  }, T);

  test('http: a file into a directory (mode 0600), a named file with Last-Modified as mtime, a tarball kept as a file, --chown/--chmod', async () => {
    const { r, out, work } = await build(`FROM scratch
ADD ${httpUrl}/hello.txt /files/
ADD ${httpUrl}/dated.txt /files/renamed.txt
ADD ${httpUrl}/archive.tar.gz /files/
ADD --chown=1000:1001 --chmod=640 ${httpUrl}/hello.txt /owned.txt
`);
    works.push(work);
    ok(r);
    const img = await unpackOciTar(out, path.join(work.base, 'layout'));
    expect(img.layers).toHaveLength(4);
    const [hello, dated, tarball, owned] = [0, 1, 2, 3].map((i) => entriesOf(img, i));
    expect(hello!.get('files/hello.txt')).toMatchObject({ type: 'File', mode: 0o600, uid: 0, gid: 0 });
    expect((await readLayerFile(img.layers[0]!.blobPath, 'files/hello.txt'))?.toString()).toBe(served.hello);
    // Without Last-Modified the mtime is the epoch (BuildKit), so the layer does not depend on the day.
    expect(hello!.get('files/hello.txt')!.mtime?.getTime()).toBe(0);
    expect(dated!.get('files/renamed.txt')).toMatchObject({ type: 'File', mode: 0o600 });
    expect(dated!.get('files/renamed.txt')!.mtime?.toUTCString()).toBe(LAST_MODIFIED);
    // A remote tarball is not unpacked.
    expect(tarball!.get('files/archive.tar.gz')).toMatchObject({ type: 'File', size: TARBALL.length });
    expect(tarball!.has('files/inside.txt')).toBe(false);
    expect(await readLayerFile(img.layers[2]!.blobPath, 'files/archive.tar.gz')).toEqual(TARBALL);
    expect(owned!.get('owned.txt')).toMatchObject({ type: 'File', mode: 0o640, uid: 1000, gid: 1001 });
    expect(img.config.history!.map((h) => h.created_by)).toContain(`ADD ${httpUrl}/dated.txt /files/renamed.txt`);
  }, T);

  test('http: a 404 fails the build with the URL named; a password in a URL never shows up', async () => {
    const missing = await build(`FROM scratch\nADD ${httpUrl}/missing /x\n`);
    works.push(missing.work);
    expect(missing.r.code).not.toBe(0);
    expect(missing.r.stderr).toContain(`error: Dockerfile:2: ADD ${httpUrl}/missing: HTTP 404`);
    await expect(access(missing.out)).rejects.toThrow();

    const withCreds = httpUrl.replace('http://', `http://user:${PASSWORD}@`);
    const good = await build(`FROM scratch\nADD ${withCreds}/private.txt /private.txt\n`);
    works.push(good.work);
    ok(good.r);
    const img = await unpackOciTar(good.out, path.join(good.work.base, 'layout'));
    expect((await readLayerFile(img.layers[0]!.blobPath, 'private.txt'))?.toString()).toBe('private\n');
    expect(good.r.stderr).toContain(`ADD ${httpUrl.replace('http://', 'http://user:xxxxx@')}/private.txt /private.txt`);
    expect(JSON.stringify(img.config)).not.toContain(PASSWORD);
    const bad = await build(`FROM scratch\nADD ${withCreds}/nothing-here /x\n`);
    works.push(bad.work);
    expect(bad.r.code).not.toBe(0);
    expect(bad.r.stderr).toContain('user:xxxxx@');
    for (const run of [good.r, bad.r]) expect(run.stdout + run.stderr).not.toContain(PASSWORD);
    // Nor in anything the build stored: cache records, metadata, layers, config.
    const grep = spawn('grep', ['-rl', '--', PASSWORD, good.work.root, good.work.base]);
    const found = await new Promise<string>((resolve) => {
      let s = '';
      grep.stdout.on('data', (b: Buffer) => (s += b.toString()));
      grep.on('close', () => resolve(s));
    });
    // The Dockerfile itself holds it, as written by the user; nothing else may.
    expect(found.split('\n').filter((l) => l !== '' && !l.endsWith('/ctx/Dockerfile'))).toEqual([]);
  }, T);

  test('http --checksum: a match builds; a mismatch names both digests, exits non-zero and writes no output', async () => {
    const digest = sha256(served.checked);
    const good = await build(`FROM scratch\nADD --checksum=${digest} ${httpUrl}/checked.bin /c.bin\n`);
    works.push(good.work);
    ok(good.r);
    const img = await unpackOciTar(good.out, path.join(good.work.base, 'layout'));
    expect((await readLayerFile(img.layers[0]!.blobPath, 'c.bin'))?.toString()).toBe(served.checked);

    const wrong = `sha256:${'0'.repeat(64)}`;
    const bad = await build(`FROM scratch\nADD --checksum=${wrong} ${httpUrl}/checked.bin /c.bin\n`);
    works.push(bad.work);
    expect(bad.r.code).not.toBe(0);
    expect(bad.r.stderr).toContain(`expected ${wrong}, got ${digest}`);
    expect(bad.r.stderr).toMatch(/error: Dockerfile:2: /);
    await expect(access(bad.out)).rejects.toThrow();

    const algo = await build(`FROM scratch\nADD --checksum=sha512:${'a'.repeat(128)} ${httpUrl}/checked.bin /c.bin\n`);
    works.push(algo.work);
    expect(algo.r.code).not.toBe(0);
    expect(algo.r.stderr).toContain('only sha256 is supported');
  }, T);

  test('http cache: an unchanged file is CACHED, a changed one reruns; with --checksum a cached step downloads nothing', async () => {
    const dockerfile = `FROM scratch
ADD ${httpUrl}/hello.txt /hello
ADD --checksum=${sha256(served.checked)} ${httpUrl}/checked.bin /checked
`;
    const first = await build(dockerfile);
    works.push(first.work);
    ok(first.r);
    expect(first.cached).toEqual([]);
    const checkedHits = hits.get('/checked.bin') ?? 0;
    const second = await build(dockerfile, first.work);
    ok(second.r);
    expect(second.cached).toEqual([`ADD ${httpUrl}/hello.txt /hello`, `ADD --checksum=${sha256(served.checked)} ${httpUrl}/checked.bin /checked`]);
    expect(hits.get('/checked.bin')).toBe(checkedHits);

    served.hello = 'hello v2\n';
    try {
      const third = await build(dockerfile, first.work);
      ok(third.r);
      expect(third.cached).not.toContain(`ADD ${httpUrl}/hello.txt /hello`);
      const img = await unpackOciTar(third.out, path.join(first.work.base, 'layout3'));
      const layer = img.layers.find((l) => l.entries.some((e) => e.path === 'hello'))!;
      expect((await readLayerFile(layer.blobPath, 'hello'))?.toString()).toBe('hello v2\n');
    } finally {
      served.hello = 'hello v1\n';
    }
  }, T);

  test('git: HEAD, #tag, #commit, #ref:subdir, --keep-git-dir, --checksum; modes, mtimes, symlinks', async () => {
    const [first, second] = commits as [string, string];
    const { r, out, work } = await build(`FROM scratch
ADD ${gitUrl}/repo /whole
ADD ${gitUrl}/repo#v1 /tagged/
ADD ${gitUrl}/repo#${first} /bycommit
ADD ${gitUrl}/repo#main:sub /subdir
ADD --keep-git-dir=true ${gitUrl}/repo#main /kept
ADD --checksum=${second.slice(0, 10)} ${gitUrl}/repo#main /checked
`);
    works.push(work);
    ok(r);
    const img = await unpackOciTar(out, path.join(work.base, 'layout'));
    expect(img.layers).toHaveLength(6);
    const [whole, tagged, byCommit, subdir, kept, checked] = [0, 1, 2, 3, 4, 5].map((i) => entriesOf(img, i)) as Map<string, LayerEntry>[];
    const read = (i: number, p: string) => readLayerFile(img.layers[i]!.blobPath, p).then((b) => b?.toString());
    const secondTime = Date.UTC(2002, 1, 2, 2, 2, 2);

    expect(await read(0, 'whole/README')).toBe('second\n');
    expect(whole!.get('whole/README')).toMatchObject({ type: 'File', mode: 0o644, uid: 0 });
    expect(whole!.get('whole/sub/deep/tool.sh')).toMatchObject({ type: 'File', mode: 0o755 });
    expect(whole!.get('whole/sub')).toMatchObject({ type: 'Directory', mode: 0o755 });
    // Links stay links, whatever they point at; nothing outside the destination is written or read.
    expect(whole!.get('whole/sub/outside')).toMatchObject({ type: 'SymbolicLink', linkpath: '../../../../../../etc/shadow' });
    expect([...whole!.keys()].filter((p) => p.includes('.git'))).toEqual([]);
    expect([...whole!.keys()].every((p) => p.startsWith('whole'))).toBe(true);
    for (const p of ['whole', 'whole/README', 'whole/sub', 'whole/sub/deep/tool.sh']) expect(whole!.get(p)!.mtime?.getTime()).toBe(secondTime);

    expect(await read(1, 'tagged/README')).toBe('first\n');
    expect(tagged!.has('tagged/sub')).toBe(false);
    expect(await read(2, 'bycommit/README')).toBe('first\n');
    expect(byCommit!.get('bycommit/README')!.mtime?.getTime()).toBe(Date.UTC(2001, 0, 1));

    expect(await read(3, 'subdir/data.txt')).toBe('data\n');
    expect(subdir!.get('subdir/deep/tool.sh')).toMatchObject({ mode: 0o755 });
    expect(subdir!.has('subdir/README')).toBe(false);

    expect(kept!.get('kept/.git/HEAD')).toMatchObject({ type: 'File' });
    expect((await read(4, 'kept/.git/HEAD'))?.trim()).toBe(second);
    expect(await read(4, 'kept/README')).toBe('second\n');
    expect(await read(5, 'checked/README')).toBe('second\n');
    expect(checked!.has('checked/.git')).toBe(false);
    expect(tagCommit).toBe(first);
  }, T);

  test('git --checksum mismatch names expected and actual commits', async () => {
    const bad = await build(`FROM scratch\nADD --checksum=deadbeef ${gitUrl}/repo#main /x\n`);
    works.push(bad.work);
    expect(bad.r.code).not.toBe(0);
    expect(bad.r.stderr).toContain(`expected deadbeef, got ${commits[1]}`);
    await expect(access(bad.out)).rejects.toThrow();
  }, T);

  test('git cache: unchanged refs are CACHED without a clone; a new commit reruns what follows the branch', async () => {
    const dockerfile = `FROM scratch
ADD ${gitUrl}/repo#v1 /tagged
ADD ${gitUrl}/repo#main:sub /sub
`;
    const first = await build(dockerfile);
    works.push(first.work);
    ok(first.r);
    const firstLayers = (await unpackOciTar(first.out, path.join(first.work.base, 'layout1'))).manifest.layers.map((l) => l.digest);
    const second = await build(dockerfile, first.work);
    ok(second.r);
    expect(second.cached).toEqual([`ADD ${gitUrl}/repo#v1 /tagged`, `ADD ${gitUrl}/repo#main:sub /sub`]);
    expect(second.r.stderr).not.toContain('fetching');
    // Fetched again from scratch, the same commits give byte-identical layers (modes and mtimes fixed).
    const again = await build(dockerfile, first.work, ['--no-cache']);
    ok(again.r);
    expect(again.cached).toEqual([]);
    const layerDigests = async (out: string, dir: string) => (await unpackOciTar(out, path.join(first.work.base, dir))).manifest.layers.map((l) => l.digest);
    expect(await layerDigests(again.out, 'layout-again')).toEqual(firstLayers);

    await writeFile(path.join(repo, 'sub', 'data.txt'), 'data v3\n');
    commit('third', '2003-03-03T03:03:03Z');
    const third = await build(dockerfile, first.work);
    ok(third.r);
    expect(third.cached).toEqual([`ADD ${gitUrl}/repo#v1 /tagged`]);
    const img = await unpackOciTar(third.out, path.join(first.work.base, 'layout3'));
    expect((await readLayerFile(img.layers[1]!.blobPath, 'sub/data.txt'))?.toString()).toBe('data v3\n');
  }, T);
});
