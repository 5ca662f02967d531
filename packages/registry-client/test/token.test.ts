import { parseTokenResponse, TokenCache } from '../src/auth/token.js';

const NOW = Date.parse('2026-01-01T00:00:00Z');

test('no expires_in: 60 s, as the token spec says; refreshed 5 s early', () => {
  const t = parseTokenResponse(JSON.stringify({ token: 'a' }), 'x', NOW);
  expect(t.expiresAt).toBe(NOW + 60_000);
  expect(t.refreshAt).toBe(NOW + 55_000);
  expect(t.refreshToken).toBeUndefined();
});

test('a short-lived token is still reused for most of its life (skew ≤ a tenth of what is left)', () => {
  const t = parseTokenResponse(JSON.stringify({ token: 'a', expires_in: 3 }), 'x', NOW);
  expect(t.expiresAt).toBe(NOW + 3000);
  expect(t.refreshAt).toBe(NOW + 2700);
});

test('issued_at in the past shortens the life; in the future (clock skew) or absurd it is ignored', () => {
  const past = parseTokenResponse(JSON.stringify({ token: 'a', expires_in: 300, issued_at: new Date(NOW - 290_000).toISOString() }), 'x', NOW);
  expect(past.expiresAt).toBe(NOW + 10_000);
  expect(past.refreshAt).toBe(NOW + 9_000);
  const future = parseTokenResponse(JSON.stringify({ token: 'a', expires_in: 300, issued_at: new Date(NOW + 30_000).toISOString() }), 'x', NOW);
  expect(future.expiresAt).toBe(NOW + 300_000);
  const stale = parseTokenResponse(JSON.stringify({ token: 'a', expires_in: 300, issued_at: '2000-01-01T00:00:00Z' }), 'x', NOW);
  expect(stale.expiresAt).toBe(NOW + 300_000);
});

test('access_token and refresh_token (OAuth2 form)', () => {
  const t = parseTokenResponse(JSON.stringify({ access_token: 'b', refresh_token: 'r', expires_in: 120 }), 'x', NOW);
  expect(t).toMatchObject({ token: 'b', refreshToken: 'r', expiresAt: NOW + 120_000 });
});

test('no token is an auth error that does not quote the body', () => {
  expect(() => parseTokenResponse('{"details":"secret-ish"}', 'pull x', NOW)).toThrow(/^pull x: token endpoint returned no token$/);
  expect(() => parseTokenResponse('<html>', 'pull x', NOW)).toThrow(/invalid JSON/);
});

test('TokenCache shares one fetch between concurrent callers and refetches after refreshAt', async () => {
  const cache = new TokenCache();
  let fetches = 0;
  const fetcher = async () => {
    fetches++;
    await new Promise((r) => setTimeout(r, 10));
    return { token: `t${fetches}`, expiresAt: Date.now() + 60_000, refreshAt: Date.now() + 60 };
  };
  const key = TokenCache.key('h', 's', ['repository:a:pull']);
  expect(await Promise.all([cache.get(key, fetcher), cache.get(key, fetcher), cache.get(key, fetcher)])).toEqual(['t1', 't1', 't1']);
  expect(await cache.get(key, fetcher)).toBe('t1');
  await new Promise((r) => setTimeout(r, 80));
  expect(await cache.get(key, fetcher)).toBe('t2');
  cache.invalidate(key);
  expect(await cache.get(key, fetcher)).toBe('t3');
});
