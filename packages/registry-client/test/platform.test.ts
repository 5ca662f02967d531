import { hostPlatform, normalizePlatform, platformMatches, platformScore, type Platform } from '../src/index.js';

const p = (os: string, architecture: string, variant?: string): Platform => ({ os, architecture, ...(variant !== undefined ? { variant } : {}) });

test('hostPlatform maps node arch names to OCI names', () => {
  const h = hostPlatform();
  const expected: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' };
  expect(h.os).toBe(process.platform);
  if (expected[process.arch] !== undefined) expect(h.architecture).toBe(expected[process.arch]);
  if (process.arch === 'arm64') expect(h.variant).toBe('v8');
});

const table: Array<[Platform, Platform, boolean]> = [
  [p('linux', 'amd64'), p('linux', 'amd64'), true],
  [p('linux', 'amd64'), p('linux', 'arm64'), false],
  [p('linux', 'amd64'), p('windows', 'amd64'), false],
  [p('linux', 'amd64'), p('linux', 'x86_64'), true],
  [p('Linux', 'AMD64'), p('linux', 'amd64'), true],
  [p('linux', 'arm64'), p('linux', 'arm64', 'v8'), true],
  [p('linux', 'arm64', 'v8'), p('linux', 'arm64'), true],
  [p('linux', 'aarch64'), p('linux', 'arm64', 'v8'), true],
  [p('linux', 'arm64'), p('linux', 'arm64', 'v9'), false],
  [p('linux', 'arm', 'v7'), p('linux', 'arm', 'v7'), true],
  [p('linux', 'arm', 'v7'), p('linux', 'arm', 'v6'), true],
  [p('linux', 'arm', 'v7'), p('linux', 'arm', 'v5'), true],
  [p('linux', 'arm', 'v6'), p('linux', 'arm', 'v7'), false],
  [p('linux', 'arm'), p('linux', 'arm', 'v7'), true],
  [p('linux', 'armhf'), p('linux', 'arm', 'v7'), true],
  [p('linux', 'arm', 'v7'), p('linux', 'arm64'), false],
  [p('linux', 'amd64', 'v3'), p('linux', 'amd64'), true],
  [p('linux', 'amd64', 'v3'), p('linux', 'amd64', 'v2'), true],
  [p('linux', 'amd64'), p('linux', 'amd64', 'v3'), false],
  [p('linux', 'amd64'), p('linux', 'amd64', 'v1'), true],
  [p('linux', 'ppc64le'), p('linux', 'ppc64le'), true],
  [p('linux', 'riscv64'), p('linux', 'amd64'), false],
  [p('linux', 'amd64'), p('unknown', 'unknown'), false],
];

test.each(table)('want %j, have %j → %s', (want, have, expected) => {
  expect(platformMatches(want, have)).toBe(expected);
});

test('exact variant ranks above a compatible older one', () => {
  const want = p('linux', 'arm', 'v7');
  expect(platformScore(want, p('linux', 'arm', 'v7'))).toBeGreaterThan(platformScore(want, p('linux', 'arm', 'v6')));
  expect(platformScore(want, p('linux', 'arm', 'v6'))).toBeGreaterThan(platformScore(want, p('linux', 'arm', 'v5')));
});

test('normalizePlatform folds aliases', () => {
  expect(normalizePlatform(p('linux', 'x86_64'))).toEqual(p('linux', 'amd64'));
  expect(normalizePlatform(p('linux', 'aarch64'))).toEqual(p('linux', 'arm64', 'v8'));
  expect(normalizePlatform(p('linux', 'armel'))).toEqual(p('linux', 'arm', 'v6'));
});
