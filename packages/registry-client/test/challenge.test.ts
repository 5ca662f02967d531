import { parseChallenges } from '../src/index.js';

test('docker hub style bearer challenge', () => {
  expect(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/golang:pull"')).toEqual([
    {
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/golang:pull' },
    },
  ]);
});

test('basic challenge, case-insensitive scheme and parameter names', () => {
  expect(parseChallenges('BASIC Realm="Registry Realm"')).toEqual([{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
});

test('several challenges in one header, commas inside quoted strings', () => {
  const h = 'Basic realm="a, b", Bearer realm="https://t.example/token?x=1,2",service="svc",scope="repository:a/b:pull,push"';
  expect(parseChallenges(h)).toEqual([
    { scheme: 'basic', params: { realm: 'a, b' } },
    { scheme: 'bearer', params: { realm: 'https://t.example/token?x=1,2', service: 'svc', scope: 'repository:a/b:pull,push' } },
  ]);
});

test('escaped quotes, token values, whitespace around = and commas', () => {
  expect(parseChallenges('Bearer realm = "say \\"hi\\"" ,  service=plain-token ,error="insufficient_scope"')).toEqual([
    { scheme: 'bearer', params: { realm: 'say "hi"', service: 'plain-token', error: 'insufficient_scope' } },
  ]);
});

test('token68 and parameterless schemes mixed with parameters', () => {
  expect(parseChallenges('Negotiate abc+/123==, Bearer realm="r", NTLM')).toEqual([
    { scheme: 'negotiate', params: {}, token68: 'abc+/123==' },
    { scheme: 'bearer', params: { realm: 'r' } },
    { scheme: 'ntlm', params: {} },
  ]);
});

test('empty and junk input do not throw and terminate', () => {
  expect(parseChallenges('')).toEqual([]);
  expect(parseChallenges(null)).toEqual([]);
  expect(parseChallenges(',,, ,')).toEqual([]);
  expect(parseChallenges('Bearer realm="unterminated')).toEqual([{ scheme: 'bearer', params: { realm: 'unterminated' } }]);
  expect(() => parseChallenges('";=;=",,"\\')).not.toThrow();
});
