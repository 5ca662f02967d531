import { BuildArgScope } from '../../src/engine/args.js';
import { ShellLex, parseInstructions } from '../../src/frontend/index.js';

const lex = new ShellLex('\\');
const expand = (w: string, env: Record<string, string>) => lex.processWord(w, env);
const predefined = { TARGETARCH: 'amd64', TARGETOS: 'linux', BUILDPLATFORM: 'linux/amd64' };

function scope(dockerfile: string, provided: Record<string, string> = {}): BuildArgScope {
  return new BuildArgScope(provided, predefined, parseInstructions(dockerfile).metaArgs, expand, 'Dockerfile');
}

describe('global ARGs (before the first FROM)', () => {
  test('defaults expand against earlier global ARGs and predefined platform args', () => {
    const s = scope('ARG REG=example.com\nARG IMAGE=${REG}/app:${TARGETARCH}\nFROM $IMAGE\n');
    expect(s.global.IMAGE).toBe('example.com/app:amd64');
  });

  test('--build-arg overrides a declared default', () => {
    const s = scope('ARG BASE=busybox\nFROM $BASE\n', { BASE: 'alpine' });
    expect(s.global.BASE).toBe('alpine');
    expect(s.unused()).toEqual([]);
  });

  test('a --build-arg that no ARG declares is not visible and is reported unused', () => {
    const s = scope('FROM busybox\n', { BASE: 'alpine' });
    expect(s.global.BASE).toBeUndefined();
    expect(s.unused()).toEqual(['BASE']);
  });

  test('a bare global ARG without value is unset', () => {
    const s = scope('ARG NOVALUE\nFROM busybox\n');
    expect(Object.hasOwn(s.global, 'NOVALUE')).toBe(false);
  });

  test('a bad expansion names the ARG line', () => {
    expect(() => scope('ARG A=1\nARG B=${A}${C:?C_is_required}\nFROM busybox\n')).toThrow(
      expect.objectContaining({ line: 2, file: 'Dockerfile', message: expect.stringContaining("C_is_required") }),
    );
  });
});

describe('ARGs inside a stage', () => {
  test('a bare ARG takes the global value of the same name', () => {
    const s = scope('ARG VERSION=1.2\nFROM busybox\n');
    expect(s.declare('VERSION', undefined, {}, expand)).toBe('1.2');
  });

  test('a bare predefined ARG takes its predefined value', () => {
    const s = scope('FROM busybox\n');
    expect(s.declare('TARGETARCH', undefined, {}, expand)).toBe('amd64');
  });

  test('a stage default expands against the stage environment, not the global scope', () => {
    const s = scope('ARG G=global\nFROM busybox\n');
    expect(s.declare('X', '${G:-none}-${E}', { E: 'env' }, expand)).toBe('none-env');
  });

  test('--build-arg beats the stage default and counts as consumed', () => {
    const s = scope('FROM busybox\n', { X: 'cli' });
    expect(s.declare('X', 'default', {}, expand)).toBe('cli');
    expect(s.unused()).toEqual([]);
  });

  test('declared without default nor value: unset', () => {
    expect(scope('FROM busybox\n').declare('X', undefined, {}, expand)).toBeUndefined();
  });
});

describe('proxy arguments', () => {
  test('reach RUN without an ARG line and are never reported unused', () => {
    const s = scope('FROM busybox\n', { HTTP_PROXY: 'http://proxy:3128', no_proxy: 'localhost', OTHER: '1' });
    // Both spellings, as BuildKit's exec op sets them; any letter case is recognised.
    expect(s.proxyEnv()).toEqual({ HTTP_PROXY: 'http://proxy:3128', http_proxy: 'http://proxy:3128', NO_PROXY: 'localhost', no_proxy: 'localhost' });
    expect(s.unused()).toEqual(['OTHER']);
    expect(scope('FROM busybox\n', { Https_Proxy: 'h' }).proxyEnv()).toEqual({ HTTPS_PROXY: 'h', https_proxy: 'h' });
  });
});
