// The compatibility harness's comparison (test/lib/compat), on synthetic tars: no builder,
// registry or user needed. (Lives with the e2e tests because jest's unit project only
// looks in packages/*; it runs in milliseconds.)
import { Readable } from 'node:stream';
import {
  applyListing,
  compareRootfs,
  configDifferences,
  markdownAnchors,
  normListingPath,
  type Difference,
} from '../lib/compat/compare.js';
import { configValue } from '../lib/compat/config.js';
import { baseImageRefs, mirrorRef } from '../lib/compat/corpus.js';
import { indexRootfs, normPath, type RootfsIndex } from '../lib/compat/rootfs.js';
import { makeTar, readTar, type TarWriteEntry } from '../lib/compat/tarstream.js';

/** Index of a synthetic tar, fed in awkward chunk sizes (framing across chunk edges). */
async function index(entries: TarWriteEntry[], chunk = 97): Promise<RootfsIndex> {
  const buf = makeTar(entries);
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) parts.push(buf.subarray(i, i + chunk));
  return indexRootfs(Readable.from(parts));
}

const BASE: TarWriteEntry[] = [
  { path: 'etc/', type: 'Directory' },
  { path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n' },
  { path: 'bin/', type: 'Directory' },
  { path: 'bin/tool', content: '#!/bin/sh\n', mode: 0o755 },
  { path: 'bin/link', type: 'SymbolicLink', linkpath: 'tool' },
  { path: 'data/', type: 'Directory', mode: 0o1777 },
  { path: 'data/a', content: 'shared', uid: 100, gid: 200 },
  { path: 'data/b', type: 'Link', linkpath: 'data/a' },
];

const variant = (edit: (e: TarWriteEntry) => TarWriteEntry | undefined, extra: TarWriteEntry[] = []): TarWriteEntry[] =>
  [...BASE.map((e) => edit({ ...e })).filter((e): e is TarWriteEntry => !!e), ...extra];

async function diff(a: TarWriteEntry[], b: TarWriteEntry[]): Promise<Difference[]> {
  return compareRootfs(await index(a), await index(b));
}

const brief = (ds: Difference[]) => ds.map((d) => `${d.path} ${d.field}: ${d.buildkit} | ${d.stowage}`);

describe('compat harness: root filesystem comparison', () => {
  test('identical trees have no differences (and leading ./ or / and trailing / do not matter)', async () => {
    const other = BASE.map((e) => ({ ...e, path: e.path.startsWith('etc') ? `./${e.path}` : `/${e.path}` }));
    expect(await diff(BASE, other)).toEqual([]);
    expect(normPath('./a/b/')).toBe('a/b');
    expect(normPath('/')).toBe('');
    expect(normPath('.//x//y')).toBe('x/y');
  });

  test('mode differs (setuid/sticky bits included)', async () => {
    const b = variant((e) => (e.path === 'bin/tool' ? { ...e, mode: 0o4755 } : e.path === 'data/' ? { ...e, mode: 0o777 } : e));
    expect(brief(await diff(BASE, b))).toEqual(['/bin/tool mode: 0755 | 4755', '/data mode: 1777 | 0777']);
  });

  test('uid and gid differ', async () => {
    const b = variant((e) => (e.path === 'etc/passwd' ? { ...e, uid: 1000 } : e.path === 'bin/tool' ? { ...e, gid: 5 } : e));
    expect(brief(await diff(BASE, b))).toEqual(['/bin/tool gid: 0 | 5', '/etc/passwd uid: 0 | 1000']);
  });

  test('content differs: same size → sha256, other size → size', async () => {
    const same = variant((e) => (e.path === 'etc/passwd' ? { ...e, content: 'ROOT:x:0:0::/root:/bin/sh\n' } : e));
    const ds = await diff(BASE, same);
    expect(ds.map((d) => `${d.path} ${d.field}`)).toEqual(['/etc/passwd sha256']);
    expect(ds[0]!.buildkit).toMatch(/^[0-9a-f]{64}$/);
    const longer = variant((e) => (e.path === 'etc/passwd' ? { ...e, content: 'root:x:0:0::/root:/bin/bash\n' } : e));
    expect(brief(await diff(BASE, longer))).toEqual(['/etc/passwd size: 26 | 28']);
  });

  test('symlink target differs', async () => {
    const b = variant((e) => (e.path === 'bin/link' ? { ...e, linkpath: '/bin/tool' } : e));
    expect(brief(await diff(BASE, b))).toEqual(['/bin/link target: tool | /bin/tool']);
  });

  test('hardlink group differs (a copy instead of a link; a link to another file)', async () => {
    const copy = variant((e) => (e.path === 'data/b' ? { path: 'data/b', content: 'shared', uid: 100, gid: 200 } : e));
    expect(brief(await diff(BASE, copy))).toEqual(['/data/a hardlinks: /data/a, /data/b | (none)', '/data/b hardlinks: /data/a, /data/b | (none)']);
    const three = variant((e) => e, [{ path: 'etc/c', type: 'Link', linkpath: 'data/a' }]);
    const ds = await diff(BASE, three);
    expect(ds.map((d) => `${d.path} ${d.field}`)).toEqual(['/data/a hardlinks', '/data/b hardlinks', '/etc/c exists']);
    expect(ds[0]!.stowage).toBe('/data/a, /data/b, /etc/c');
  });

  test('a hardlink takes its target: type, mode, owner, content', async () => {
    const i = await index(BASE);
    const b = i.entries.get('data/b')!;
    expect(b).toMatchObject({ type: 'file', uid: 100, gid: 200, size: 6 });
    expect(b.sha256).toBe(i.entries.get('data/a')!.sha256);
    const dangling = await index([{ path: 'x', type: 'Link', linkpath: 'nowhere' }]);
    expect(dangling.entries.get('x')).toMatchObject({ type: 'dangling-hardlink', target: 'nowhere' });
  });

  test('entry missing on one side', async () => {
    const b = variant((e) => (e.path === 'bin/link' ? undefined : e), [{ path: 'extra/', type: 'Directory' }]);
    expect(brief(await diff(BASE, b))).toEqual(['/bin/link exists: symlink -> tool 0644 0:0 | missing', '/extra exists: missing | dir 0755 0:0']);
  });

  test('type differs: only the type is reported', async () => {
    const b = variant((e) => (e.path === 'bin/link' ? { path: 'bin/link', content: 'tool', mode: 0o600 } : e));
    expect(brief(await diff(BASE, b))).toEqual(['/bin/link type: symlink -> tool 0644 0:0 | file 0600 0:0 4B']);
  });

  test('xattrs: compared by name, binary values exactly', async () => {
    const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
    const a = variant((e) => (e.path === 'bin/tool' ? { ...e, xattrs: { 'security.capability': cap, 'user.note': 'x' } } : e));
    const capOther = Buffer.from(cap);
    capOther[4] = 0x80; // a byte that UTF-8 decoding would mangle
    const b = variant((e) => (e.path === 'bin/tool' ? { ...e, xattrs: { 'security.capability': capOther } } : e));
    const ds = brief(await diff(a, b));
    expect(ds).toEqual([
      `/bin/tool xattr:security.capability: hex:${cap.toString('hex')} | hex:${capOther.toString('hex')}`,
      '/bin/tool xattr:user.note: "x" | (unset)',
    ]);
    expect(await diff(a, a)).toEqual([]);
  });

  test('long names (pax path) and devices are read', async () => {
    const long = `d/${'x'.repeat(150)}/f`;
    const i = await index([{ path: long, content: 'deep' }, { path: 'dev/null', type: 'CharacterDevice', devmajor: 1, devminor: 3, mode: 0o666 }], 13);
    expect(i.entries.get(long)).toMatchObject({ type: 'file', size: 4 });
    expect(i.entries.get('dev/null')).toMatchObject({ type: 'char', dev: '1:3' });
  });

  test('a later entry for a path replaces the earlier one; an empty archive is an empty tree', async () => {
    const i = await index([{ path: 'f', content: 'one' }, { path: 'f', content: 'three', mode: 0o600 }]);
    expect(i.entries.get('f')).toMatchObject({ size: 5, mode: 0o600 });
    expect((await indexRootfs(Readable.from([]))).entries.size).toBe(0);
  });

  test('a corrupt header is an error, not a silent difference', async () => {
    const buf = makeTar([{ path: 'f', content: 'x' }]);
    buf[0] = buf[0]! ^ 0xff;
    await expect(readTar(Readable.from([buf]), () => undefined)).rejects.toThrow(/checksum/);
  });
});

describe('compat harness: config comparison', () => {
  const cfg = (c: Record<string, unknown>) => ({ architecture: 'amd64', os: 'linux', config: c });
  const PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

  test('Env differs', () => {
    const ds = configDifferences(cfg({ Env: [PATH, 'A=1'] }), cfg({ Env: [PATH, 'A=2'] }));
    expect(brief(ds)).toEqual([`config.Env Env: ${JSON.stringify([PATH, 'A=1'])} | ${JSON.stringify([PATH, 'A=2'])}`]);
  });

  test('Env order matters', () => {
    expect(configDifferences(cfg({ Env: ['A=1', 'B=2'] }), cfg({ Env: ['B=2', 'A=1'] }))).toHaveLength(1);
  });

  test('unset ≡ null ≡ empty where docker treats them alike; not otherwise', () => {
    expect(configDifferences(cfg({}), cfg({ Cmd: null, Entrypoint: [], Env: [], Labels: {}, Volumes: null, WorkingDir: '', OnBuild: null, Shell: [] }))).toEqual([]);
    expect(configDifferences(cfg({ ArgsEscaped: true }), cfg({}))).toEqual([]);
    expect(brief(configDifferences(cfg({ WorkingDir: '/' }), cfg({})))).toEqual(['config.WorkingDir WorkingDir: "/" | (unset)']);
    expect(configDifferences(cfg({ Healthcheck: { Test: ['NONE'] } }), cfg({}))).toHaveLength(1);
    expect(configDifferences(cfg({ Healthcheck: { Test: ['CMD', 'true'], Interval: 0 } }), cfg({ Healthcheck: { Test: ['CMD', 'true'] } }))).toEqual([]);
    expect(configDifferences(cfg({ ExposedPorts: { '80/tcp': {}, '53/udp': {} } }), cfg({ ExposedPorts: { '53/udp': {}, '80/tcp': {} } }))).toEqual([]);
    expect(configValue({ Cmd: ['a', 'b'] }, 'Cmd')).toBe('["a","b"]');
  });

  test('every compared field is looked at', () => {
    const a = cfg({ Cmd: ['a'], Entrypoint: ['e'], User: 'u', ExposedPorts: { '1/tcp': {} }, Volumes: { '/v': {} }, Labels: { l: '1' }, StopSignal: 'SIGINT', Shell: ['/bin/bash', '-c'], OnBuild: ['RUN x'] });
    expect(configDifferences(a, cfg({})).map((d) => d.field)).toEqual(['Cmd', 'Entrypoint', 'User', 'ExposedPorts', 'Volumes', 'Labels', 'StopSignal', 'Shell', 'OnBuild']);
  });
});

describe('compat harness: listed differences', () => {
  const anchors = markdownAnchors('# Compat\n## Harness self-test\n## `COPY --chmod` on directories\n### Why? (and how)\n## Why? (and how)\n');
  const d = (path: string, field = 'sha256'): Difference => ({ path, field, buildkit: 'a', stowage: 'b' });

  test('GitHub anchors', () => {
    expect([...anchors]).toEqual(['compat', 'harness-self-test', 'copy---chmod-on-directories', 'why-and-how', 'why-and-how-1']);
  });

  test('a listed difference is accepted and marked; an unlisted one is not', () => {
    const ds = [d('/random-id'), d('/other')];
    const r = applyListing(ds, [{ path: '/random-id', why: 'compat.md#harness-self-test' }], anchors);
    expect(r.unlisted.map((x) => x.path)).toEqual(['/other']);
    expect(ds[0]!.listed).toBe('compat.md#harness-self-test');
    expect(r.stale).toEqual([]);
    expect(r.badWhy).toEqual([]);
  });

  test('stale listing: a listed path that does not differ', () => {
    const r = applyListing([d('/a')], [{ path: '/a', why: 'compat.md#harness-self-test' }, { path: 'config.Env', why: 'compat.md#harness-self-test' }], anchors);
    expect(r.unlisted).toEqual([]);
    expect(r.stale).toEqual([{ path: 'config.Env', why: 'compat.md#harness-self-test' }]);
  });

  test('an unstable listing may or may not differ: never stale', () => {
    const l = [{ path: '/etc/shadow', why: 'compat.md#harness-self-test', unstable: true }];
    expect(applyListing([], l, anchors)).toEqual({ unlisted: [], stale: [], badWhy: [] });
    const ds = [d('/etc/shadow')];
    expect(applyListing(ds, l, anchors).unlisted).toEqual([]);
    expect(ds[0]!.listed).toBe('compat.md#harness-self-test');
  });

  test('a listing must name an anchor docs/compat.md has', () => {
    const r = applyListing([d('/a'), d('/b')], [{ path: '/a', why: 'compat.md#nope' }, { path: 'b', why: 'see the docs' }], anchors);
    expect(r.badWhy.map((b) => b.problem)).toEqual([expect.stringMatching(/no heading with the anchor #nope/), expect.stringMatching(/must be "compat.md#anchor"/)]);
    expect(applyListing([d('/a')], [{ path: '/a', why: 'compat.md#x' }], undefined).badWhy[0]!.problem).toMatch(/does not exist/);
  });

  test('paths are normalised; /** covers a subtree; config.X and run.X are exact', () => {
    expect(normListingPath('var/log/')).toBe('/var/log');
    expect(normListingPath('/var/log/**')).toBe('/var/log/**');
    const ds = [d('/var/log'), d('/var/log/dpkg.log'), d('/var/logs'), d('config.Env', 'Env')];
    const r = applyListing(ds, [{ path: '/var/log/**', why: 'compat.md#harness-self-test' }, { path: 'config.Env', why: 'compat.md#harness-self-test' }], anchors);
    expect(r.unlisted.map((x) => x.path)).toEqual(['/var/logs']);
  });
});

describe('compat harness: base images of a Dockerfile (oracle cache key)', () => {
  test('FROM, COPY --from and RUN --mount from=, with ARG defaults and build args', () => {
    const df = [
      'ARG BASE=busybox',
      'ARG TAG',
      'FROM --platform=linux/amd64 golang:1.21 AS build',
      'RUN --mount=type=bind,from=debian:bookworm,target=/d true',
      'FROM ${BASE}:${TAG:-latest} AS final',
      'COPY --from=build /x /x',
      'COPY --from=alpine:3 /y /y',
      'COPY --from=0 /z /z',
      'FROM scratch',
    ].join('\n');
    expect(baseImageRefs(df)).toEqual(['alpine:3', 'busybox:latest', 'debian:bookworm', 'golang:1.21']);
    expect(baseImageRefs(df, { BASE: 'debian', TAG: 'bookworm' })).toContain('debian:bookworm');
    expect(mirrorRef('busybox')).toEqual({ repo: 'library/busybox', reference: 'latest' });
    expect(mirrorRef('docker.io/library/golang:1.21')).toEqual({ repo: 'library/golang', reference: '1.21' });
    expect(mirrorRef('quay.io/x/y:1')).toBeUndefined();
  });
});
