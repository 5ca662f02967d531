import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chainIds, nextChainId } from '../../src/engine/chain-id.js';
import { DEFAULT_PATH, EnvList, addHistory, cloneConfig, containerConfig, exposedPorts, PortSpecError, scratchConfig, withoutEmptyFields } from '../../src/engine/image-config.js';
import { formatPlatform, parsePlatform, platformArgs } from '../../src/engine/platform.js';
import { Progress, plainRenderer } from '../../src/engine/progress.js';
import { defaultStateRoot, openStateRoot } from '../../src/engine/state-root.js';

describe('EnvList', () => {
  test('keeps order, overrides in place, appends new keys', () => {
    const env = new EnvList(['PATH=/bin', 'A=1', 'B=x=y', 'EMPTY=', 'BARE']);
    expect(env.get('B')).toBe('x=y');
    expect(env.get('BARE')).toBe('');
    expect(env.has('EMPTY')).toBe(true);
    expect(env.has('NOPE')).toBe(false);
    env.set('A', '2');
    env.set('C', '3');
    expect(env.toList()).toEqual(['PATH=/bin', 'A=2', 'B=x=y', 'EMPTY=', 'BARE=', 'C=3']);
    expect(env.toRecord()).toEqual({ PATH: '/bin', A: '2', B: 'x=y', EMPTY: '', BARE: '', C: '3' });
  });

  test('a duplicated key in the list: the later value wins at the first position', () => {
    expect(new EnvList(['A=1', 'B=2', 'A=3']).toList()).toEqual(['A=3', 'B=2']);
  });
});

describe('exposedPorts (Docker\'s port-spec rules)', () => {
  test.each([
    ['80', ['80/tcp']],
    ['80/tcp', ['80/tcp']],
    ['53/udp', ['53/udp']],
    ['53/UDP', ['53/udp']],
    ['9000/sctp', ['9000/sctp']],
    ['7000-7002', ['7000/tcp', '7001/tcp', '7002/tcp']],
    ['7000-7001/udp', ['7000/udp', '7001/udp']],
    ['127.0.0.1:8080:80', ['80/tcp']],
  ])('%s → %j', (input, out) => {
    expect(exposedPorts(input)).toEqual(out);
  });
  test.each(['http', '80/icmp', '9-1', '70000'])('%s is refused', (input) => {
    expect(() => exposedPorts(input)).toThrow(PortSpecError);
  });
});

describe('withoutEmptyFields', () => {
  test('null, empty arrays, maps and strings are left out (BuildKit: omitempty)', () => {
    expect(withoutEmptyFields({ Cmd: null, Entrypoint: [], User: '', Labels: {}, Env: ['A=1'], ExposedPorts: { '80/tcp': {} } } as never))
      .toEqual({ Env: ['A=1'], ExposedPorts: { '80/tcp': {} } });
  });
});

describe('image config helpers', () => {
  test('scratch config has the default PATH and no layers', () => {
    const cfg = scratchConfig({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(cfg).toMatchObject({ os: 'linux', architecture: 'arm64', variant: 'v8', rootfs: { type: 'layers', diff_ids: [] } });
    expect(cfg.config?.Env).toEqual([`PATH=${DEFAULT_PATH}`]);
    expect(cfg.config?.WorkingDir).toBe('/');
    expect('variant' in scratchConfig({ os: 'linux', architecture: 'amd64' })).toBe(false);
  });

  test('cloneConfig is deep', () => {
    const a = scratchConfig({ os: 'linux', architecture: 'amd64' });
    const b = cloneConfig(a);
    containerConfig(b).Env!.push('X=1');
    addHistory(b, { created_by: 'RUN x' });
    expect(a.config?.Env).toHaveLength(1);
    expect(a.history).toEqual([]);
    expect(b.history).toHaveLength(1);
  });
});

describe('chain IDs', () => {
  const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
  const d0 = sha('layer zero');
  const d1 = sha('layer one');
  const d2 = sha('layer two');

  test('follow the OCI definition', () => {
    const c1 = sha(`${d0} ${d1}`);
    const c2 = sha(`${c1} ${d2}`);
    expect(chainIds([d0, d1, d2])).toEqual([d0, c1, c2]);
    expect(nextChainId(undefined, d0)).toBe(d0);
    expect(nextChainId(d0, d1)).toBe(c1);
    expect(chainIds([])).toEqual([]);
  });

  test('known value', () => {
    // Independent check of a fixed input.
    const a = 'sha256:' + 'a'.repeat(64);
    const b = 'sha256:' + 'b'.repeat(64);
    const expected = 'sha256:' + createHash('sha256').update(Buffer.from(`${a} ${b}`, 'utf8')).digest('hex');
    expect(chainIds([a, b])[1]).toBe(expected);
  });
});

describe('platform', () => {
  test('parse and format', () => {
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(parsePlatform('linux/amd64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(() => parsePlatform('linux')).toThrow(/invalid platform/);
    expect(() => parsePlatform('')).toThrow(/invalid platform/);
    expect(formatPlatform({ os: 'linux', architecture: 'arm', variant: 'v7' })).toBe('linux/arm/v7');
  });

  test('platform ARGs', () => {
    const args = platformArgs({ os: 'linux', architecture: 'arm64', variant: 'v8' }, { os: 'linux', architecture: 'amd64' });
    expect(args).toEqual({
      TARGETPLATFORM: 'linux/arm64/v8', TARGETOS: 'linux', TARGETARCH: 'arm64', TARGETVARIANT: 'v8',
      BUILDPLATFORM: 'linux/amd64', BUILDOS: 'linux', BUILDARCH: 'amd64', BUILDVARIANT: '',
    });
  });
});

describe('progress', () => {
  test('numbers steps and prefixes their lines', () => {
    const lines: string[] = [];
    const p = new Progress(plainRenderer((l) => lines.push(l)));
    const a = p.start('first');
    a.log('output');
    a.done();
    const b = p.start('second');
    b.fail('boom');
    p.note('summary');
    expect(lines[0]).toBe('#1 first');
    expect(lines[1]).toBe('#1 output');
    expect(lines[2]).toMatch(/^#1 DONE \d+\.\ds$/);
    expect(lines.slice(3)).toEqual(['#2 second', '#2 ERROR: boom', 'summary']);
  });
});

describe('state root', () => {
  test('default follows XDG_DATA_HOME', () => {
    expect(defaultStateRoot({ XDG_DATA_HOME: '/xdg' })).toBe('/xdg/stowage');
    expect(defaultStateRoot({})).toMatch(/\.local\/share\/stowage$/);
  });

  test('creates the layout and removes temp dirs of dead builds only', async () => {
    const root = await mkdtemp(join(tmpdir(), 'stowage-state-'));
    try {
      await mkdir(join(root, 'tmp', 'build-999999999-abc'), { recursive: true });
      await mkdir(join(root, 'tmp', `build-${process.pid}-old`));
      await mkdir(join(root, 'tmp', 'unrelated'));
      const st = await openStateRoot(root);
      expect(st.content).toBe(join(root, 'content'));
      expect(st.snapshots).toBe(join(root, 'snapshots'));
      expect((await stat(st.buildTmp)).isDirectory()).toBe(true);
      const names = await readdir(join(root, 'tmp'));
      expect(names).not.toContain('build-999999999-abc');
      expect(names).toContain(`build-${process.pid}-old`);
      expect(names).toContain('unrelated');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
