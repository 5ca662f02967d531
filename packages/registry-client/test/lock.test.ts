import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { acquireLock, lockAddress, withLock, LockTimeoutError } from '../src/index.js';

const lockModule = fileURLToPath(new URL('../src/lock.js', import.meta.url));
const scope = `/lock-test/${process.pid}/${Date.now()}`;

/** A child process holding lock `name` until it is killed; resolves once it holds it. */
function holder(name: string): Promise<ChildProcess> {
  const script = `import(${JSON.stringify(lockModule)}).then(async ({ acquireLock }) => {
    await acquireLock(${JSON.stringify(scope)}, ${JSON.stringify(name)}, { what: 'holding it for the test' });
    process.stdout.write('held\\n');
    setInterval(() => undefined, 1000);
  });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => (b.toString().includes('held') ? resolve(child) : undefined));
    child.on('exit', (code) => reject(new Error(`lock holder exited early (${code})`)));
  });
}

test('a lock held by another process is waited for, named in the timeout error, and freed by its SIGKILL', async () => {
  const child = await holder('a');
  try {
    const waits: string[] = [];
    const err = await acquireLock(scope, 'a', { what: 'mine', timeoutMs: 200, onWait: (h) => waits.push(h) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect(err).toMatchObject({ code: 'E_LOCK_TIMEOUT', holder: `pid ${child.pid}: holding it for the test` });
    expect((err as Error).message).toMatch(/timed out after 0 s waiting to start mine: another process on the same state root holds it \(pid \d+: holding it for the test\)/);
    expect(waits).toEqual([`pid ${child.pid}: holding it for the test`]);
    // A waiter that is already waiting gets it as soon as the holder dies: nothing stale to break.
    const started = Date.now();
    const waiting = acquireLock(scope, 'a', { what: 'mine', timeoutMs: 10_000 });
    child.kill('SIGKILL');
    const lock = await waiting;
    expect(Date.now() - started).toBeLessThan(3000);
    await lock.release();
  } finally {
    child.kill('SIGKILL');
  }
}, 20_000);

test('names and scopes are separate locks; withLock releases on failure; onTimeout lets the work run unlocked', async () => {
  expect(lockAddress(scope, 'a')).not.toBe(lockAddress(`${scope}-other`, 'a'));
  expect(lockAddress(scope, 'a').startsWith('\0')).toBe(true);
  const a = await acquireLock(scope, 'x', { what: 'x' });
  const b = await acquireLock(scope, 'y', { what: 'y', timeoutMs: 100 });
  const c = await acquireLock(`${scope}-other`, 'x', { what: 'x', timeoutMs: 100 });
  const timeouts: string[] = [];
  expect(await withLock(scope, 'x', { what: 'x again', timeoutMs: 100, onTimeout: (e) => timeouts.push(e.code) }, async () => 'ran anyway')).toBe('ran anyway');
  expect(timeouts).toEqual(['E_LOCK_TIMEOUT']);
  await Promise.all([a.release(), b.release(), c.release(), a.release()]);
  await expect(withLock(scope, 'x', { what: 'x' }, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  // Released despite the failure:
  await (await acquireLock(scope, 'x', { what: 'x', timeoutMs: 100 })).release();
});
