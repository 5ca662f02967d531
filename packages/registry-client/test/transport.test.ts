import { Transport, apiHost, isLoopbackHost, parseRetryAfter, splitHostPort } from '../src/transport.js';

test('plain HTTP only for loopback and insecure registries', () => {
  const t = new Transport({ insecureRegistries: ['registry.lan:5000', 'plainhost'] });
  expect(t.schemeFor('localhost:5000')).toBe('http');
  expect(t.schemeFor('localhost')).toBe('http');
  expect(t.schemeFor('127.0.0.1:5000')).toBe('http');
  expect(t.schemeFor('127.8.9.10')).toBe('http');
  expect(t.schemeFor('[::1]:5000')).toBe('http');
  expect(t.schemeFor('registry.lan:5000')).toBe('http');
  expect(t.schemeFor('registry.lan:5001')).toBe('https');
  expect(t.schemeFor('plainhost:1234')).toBe('http');
  expect(t.schemeFor('128.0.0.1')).toBe('https');
  expect(t.schemeFor('localhost.evil.com')).toBe('https');
  expect(t.schemeFor('ghcr.io')).toBe('https');
  expect(t.baseUrl('docker.io')).toBe('https://registry-1.docker.io');
  expect(t.baseUrl('127.0.0.1:5000')).toBe('http://127.0.0.1:5000');
});

test('host helpers', () => {
  expect(apiHost('docker.io')).toBe('registry-1.docker.io');
  expect(apiHost('quay.io')).toBe('quay.io');
  expect(splitHostPort('[::1]:5000')).toEqual({ hostname: '::1', port: '5000' });
  expect(splitHostPort('a.b:1')).toEqual({ hostname: 'a.b', port: '1' });
  expect(splitHostPort('a.b')).toEqual({ hostname: 'a.b' });
  expect(isLoopbackHost('::1')).toBe(true);
  expect(isLoopbackHost('10.0.0.1:5000')).toBe(false);
});

test('Retry-After: seconds and HTTP dates', () => {
  const now = Date.parse('2024-01-01T00:00:00Z');
  expect(parseRetryAfter('3', now)).toBe(3000);
  expect(parseRetryAfter('Mon, 01 Jan 2024 00:00:05 GMT', now)).toBe(5000);
  expect(parseRetryAfter('garbage', now)).toBeUndefined();
  expect(parseRetryAfter(null, now)).toBeUndefined();
});

test('backoff grows exponentially, is jittered, and is capped', () => {
  const t = new Transport({ retry: { baseDelayMs: 100, maxDelayMs: 1000 } });
  for (let i = 0; i < 50; i++) {
    const d0 = t.backoff(0);
    expect(d0).toBeGreaterThanOrEqual(50);
    expect(d0).toBeLessThanOrEqual(100);
    const d3 = t.backoff(3);
    expect(d3).toBeGreaterThanOrEqual(400);
    expect(d3).toBeLessThanOrEqual(800);
    expect(t.backoff(20)).toBeLessThanOrEqual(1000);
  }
});
