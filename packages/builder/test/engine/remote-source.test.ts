import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transport } from '@stowage/registry-client';
import {
  ChecksumMismatchError, classifyAddSource, downloadToFile, escapeGlob, parseHttpChecksum, redactUrlsIn, remoteFileName,
  RemoteSourceError, splitCredentials,
} from '../../src/engine/remote-source.js';
import { prepareAddSources, refuseRemoteForCopy } from '../../src/engine/add-remote.js';
import { isHostOnlyAddress } from '../../src/engine/host-only-address.js';
import { BuildError, InstructionError } from '../../src/errors.js';

describe('classifyAddSource', () => {
  test.each([
    ['app.tar.gz', 'local'],
    ['dir/repo.git', 'local'],
    ['a:b', 'local'],
    ['/abs/path', 'local'],
    ['http://example.com/foobar', 'http'],
    ['HTTPS://example.com/a/b.tar.gz?x=1', 'http'],
    ['https://example.com/repo.git.tar', 'http'],
    ['https://github.com/moby/buildkit.git', 'git'],
    ['https://github.com/moby/buildkit.git#v0.10.1', 'git'],
    ['http://host/repo.git#main:docs', 'git'],
    ['git://host/repo', 'git'],
    ['git://host/repo#ref', 'git'],
    ['ssh://git@host/repo', 'git'],
    ['git@github.com:moby/buildkit.git#v0.14.1:docs', 'git'],
    ['user@host:path/repo', 'git'],
  ])('%s is %s', (source, kind) => {
    expect(classifyAddSource(source).kind).toBe(kind);
  });

  test('git fragments: #ref and #ref:subdir, subdir normalised', () => {
    const a = classifyAddSource('git@github.com:moby/buildkit.git#v0.14.1:docs');
    expect(a).toMatchObject({ kind: 'git', git: { remote: 'git@github.com:moby/buildkit.git', ref: 'v0.14.1', subdir: 'docs' } });
    const b = classifyAddSource('https://host/r.git#:a/../b/');
    expect(b).toMatchObject({ kind: 'git', git: { remote: 'https://host/r.git', subdir: 'b' } });
    expect(b.kind === 'git' && b.git.ref).toBeFalsy();
    const c = classifyAddSource('git://host/repo');
    expect(c.kind === 'git' && c.git).toEqual({ remote: 'git://host/repo' });
  });

  test('refs that could reach git as options or revision syntax are refused', () => {
    expect(() => classifyAddSource('git://host/repo#--upload-pack=x')).toThrow(/invalid git ref/);
    expect(() => classifyAddSource('git://host/repo#a..b')).toThrow(/invalid git ref/);
    expect(() => classifyAddSource('git://host/repo#HEAD@{1}')).toThrow(/invalid git ref/);
  });

  test('other URL schemes are an error, with credentials hidden', () => {
    expect(() => classifyAddSource('ftp://u:pw@host/x')).toThrow(RemoteSourceError);
    expect(() => classifyAddSource('ftp://u:pw@host/x')).toThrow('unsupported URL scheme "ftp" in ftp://u:xxxxx@host/x');
  });
});

describe('remoteFileName', () => {
  test.each([
    ['http://example.com/foobar', 'foobar'],
    ['http://example.com/dir/file.tar.gz?sig=abc#frag', 'file.tar.gz'],
    ['http://example.com/a%20b.txt', 'a b.txt'],
    ['http://example.com/dir/', 'dir'],
    ['http://example.com/', undefined],
    ['http://example.com', undefined],
  ])('%s → %s', (url, name) => {
    expect(remoteFileName(new URL(url))).toBe(name);
  });

  test('wildcard characters in a name are escaped for the copy', () => {
    expect(escapeGlob('a[1]*?.txt')).toBe('a\\[1]\\*\\?.txt');
    expect(escapeGlob('back\\slash')).toBe('back\\\\slash');
  });
});

describe('parseHttpChecksum', () => {
  const hex = 'a'.repeat(64);
  test('sha256:<64 hex>', () => {
    expect(parseHttpChecksum(`sha256:${hex}`)).toEqual({ algorithm: 'sha256', hex, digest: `sha256:${hex}` });
  });
  test('another algorithm is a clear error', () => {
    expect(() => parseHttpChecksum(`sha512:${'a'.repeat(128)}`)).toThrow('unsupported algorithm "sha512"; only sha256 is supported');
    expect(() => parseHttpChecksum('md5:abc')).toThrow(/only sha256/);
  });
  test('malformed values', () => {
    expect(() => parseHttpChecksum(hex)).toThrow(/expected sha256:/);
    expect(() => parseHttpChecksum('sha256:abc')).toThrow(/64 lowercase hex/);
    expect(() => parseHttpChecksum(`sha256:${'A'.repeat(64)}`)).toThrow(/64 lowercase hex/);
  });
});

describe('credentials in URLs', () => {
  test('passwords and bare tokens are hidden, ssh users kept', () => {
    expect(redactUrlsIn('ADD http://user:s3cret@host/f /x')).toBe('ADD http://user:xxxxx@host/f /x');
    expect(redactUrlsIn('https://ghp_token@github.com/o/r.git')).toBe('https://xxxxx@github.com/o/r.git');
    expect(redactUrlsIn('git@github.com:o/r.git and ssh://git@host/r')).toBe('git@github.com:o/r.git and ssh://git@host/r');
    expect(redactUrlsIn('http://host:8080/a@b')).toBe('http://host:8080/a@b');
  });

  test('splitCredentials: a bare URL and a Basic header', () => {
    const s = splitCredentials(new URL('http://us%40er:p%3Ass@host:81/f?q=1'));
    expect(s.url).toBe('http://host:81/f?q=1');
    expect(Buffer.from(s.authorization!.replace(/^Basic /, ''), 'base64').toString()).toBe('us@er:p:ss');
    expect(splitCredentials(new URL('http://host/f'))).toEqual({ url: 'http://host/f' });
  });
});

describe('downloadToFile (loopback http server)', () => {
  let server: Server;
  let base: string;
  let dir: string;
  const seen: string[] = [];
  const transport = new Transport({ retry: { attempts: 1 } });
  const url = (path: string) => new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`);

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(`${req.url} ${req.headers.authorization ?? ''}`);
      if (req.url === '/file') {
        res.setHeader('last-modified', 'Wed, 21 Oct 2015 07:28:00 GMT');
        res.end('hello\n');
      } else if (req.url === '/plain') {
        res.end('plain\n');
      } else if (req.url === '/short') {
        res.setHeader('content-length', '100');
        res.write('only a little');
        res.destroy();
      } else {
        res.statusCode = 404;
        res.end('not here');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = await mkdtemp(join(tmpdir(), 'stowage-remote-'));
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await rm(base, { recursive: true, force: true });
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(base, 'd-'));
  });

  test('content, digest, mode 0600, mtime from Last-Modified', async () => {
    const got = await downloadToFile(url('/file'), join(dir, 'f'), { transport });
    expect(got.digest).toBe('sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03');
    expect(got.size).toBe(6);
    expect(await readFile(join(dir, 'f'), 'utf8')).toBe('hello\n');
    const st = await stat(join(dir, 'f'));
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.mtimeMs).toBe(Date.UTC(2015, 9, 21, 7, 28, 0));
  });

  test('no Last-Modified: mtime is the epoch', async () => {
    await downloadToFile(url('/plain'), join(dir, 'p'), { transport });
    expect((await stat(join(dir, 'p'))).mtimeMs).toBe(0);
  });

  test('credentials go as a Basic header, never in the error message', async () => {
    const withCreds = new URL(url('/missing'));
    withCreds.username = 'me';
    withCreds.password = 'hunter22';
    const err = await downloadToFile(withCreds, join(dir, 'm'), { transport }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(RemoteSourceError);
    expect((err as Error).message).toMatch(/me:xxxxx@127\.0\.0\.1:\d+\/missing: HTTP 404$/);
    expect((err as Error).message).not.toContain('hunter22');
    expect(seen.at(-1)).toBe(`/missing Basic ${Buffer.from('me:hunter22').toString('base64')}`);
    await expect(stat(join(dir, 'm'))).rejects.toThrow();
  });

  test('checksum mismatch: expected and actual named, no file left', async () => {
    const expected = `sha256:${'0'.repeat(64)}`;
    const err = await downloadToFile(url('/file'), join(dir, 'c'), { transport, expected }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    expect((err as Error).message).toContain(`expected ${expected}, got sha256:5891b5b5`);
    await expect(stat(join(dir, 'c'))).rejects.toThrow();
  });

  test('a body shorter than announced is an error', async () => {
    await expect(downloadToFile(url('/short'), join(dir, 's'), { transport })).rejects.toThrow(RemoteSourceError);
    await expect(stat(join(dir, 's'))).rejects.toThrow();
  });

  test('connection refused names the URL', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    await expect(downloadToFile(new URL(`http://127.0.0.1:${port}/x`), join(dir, 'r'), { transport })).rejects.toThrow(`http://127.0.0.1:${port}/x:`);
  });
});

describe('prepareAddSources rules', () => {
  const base = { dest: '/d/', inlineCount: 0, keepGitDir: false, tmp: tmpdir(), allowHostOnly: true, log: () => undefined, bytes: () => undefined };
  test('without the host network allowed, loopback and link-local sources are refused before any fetch (E_ENTITLEMENT)', async () => {
    for (const source of ['http://127.0.0.1:1/f', 'http://localhost:1/f', 'http://[::1]:1/f', 'http://169.254.169.254/latest/meta-data/x', 'git://127.0.0.1/r.git', 'git@localhost:r.git']) {
      const err = await prepareAddSources([source], { ...base, allowHostOnly: false }).catch((e: Error) => e);
      expect({ source, code: (err as BuildError).code, message: (err as Error).message }).toEqual({ source, code: 'E_ENTITLEMENT', message: expect.stringMatching(/^ADD .*loopback or link-local address.*--allow network\.host/) });
    }
  });
  test('--checksum needs exactly one remote source', async () => {
    await expect(prepareAddSources(['a', 'b'], { ...base, checksum: 'sha256:x' })).rejects.toThrow("can't be specified for multiple sources");
    await expect(prepareAddSources(['a'], { ...base, checksum: 'sha256:x' })).rejects.toThrow('requires HTTP(S) or Git sources');
  });
  test('a bad checksum on an http source is an InstructionError', async () => {
    const err = await prepareAddSources(['http://127.0.0.1:1/f'], { ...base, checksum: 'md5:abc' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(InstructionError);
    expect((err as BuildError).code).toBe('E_INSTRUCTION');
  });
  test('several sources with a remote one need a directory destination', async () => {
    await expect(prepareAddSources(['a', 'http://127.0.0.1:1/f'], { ...base, dest: '/file' })).rejects.toThrow(/must be a directory and end with a \//);
  });
  test('a URL without a file name cannot go into a directory', async () => {
    await expect(prepareAddSources(['http://127.0.0.1:1/'], base)).rejects.toThrow(/no file name/);
  });
  test('COPY refuses URLs and repositories, not odd file names', () => {
    expect(() => refuseRemoteForCopy(['a', 'http://u:pw@host/f'])).toThrow("COPY http://u:xxxxx@host/f: source can't be a URL for COPY (use ADD)");
    expect(() => refuseRemoteForCopy(['git@host:r.git'])).toThrow(/can't be a git repository for COPY/);
    expect(() => refuseRemoteForCopy(['a:b', 'ftp://x/y', 'dir/r.git'])).not.toThrow();
  });
  test('local sources pass through untouched', async () => {
    const r = await prepareAddSources(['a.txt', 'b/'], base);
    expect(r.local).toEqual(['a.txt', 'b/']);
    expect(r.remote).toEqual([]);
  });
});

describe('isHostOnlyAddress', () => {
  test('loopback, unspecified and link-local, also IPv4 written as IPv6; nothing else', () => {
    for (const a of ['127.0.0.1', '127.255.0.9', '0.0.0.0', '169.254.169.254', '::1', '::', 'fe80::1', 'FEBF::2', '::ffff:127.0.0.1', '::ffff:169.254.1.1']) expect({ a, local: isHostOnlyAddress(a) }).toEqual({ a, local: true });
    for (const a of ['10.0.2.2', '192.168.1.1', '8.8.8.8', '169.255.0.1', '128.0.0.1', '2001:db8::1', 'fec0::1', '::ffff:10.0.0.1']) expect({ a, local: isHostOnlyAddress(a) }).toEqual({ a, local: false });
  });
});
