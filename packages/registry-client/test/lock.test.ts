import { spawn, type ChildProcess } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireLock, lockAddress, lockScope, withLock, FileLockError, LockTimeoutError } from '../src/index.js';

const lockModule = fileURLToPath(new URL('../src/lock.js', import.meta.url));
let base: string;
let scope: string;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'stowage-lock-'));
  await mkdir(join(base, 'root'));
  scope = await lockScope(join(base, 'root'));
});
afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

/** A child process holding lock `name` until it is killed; resolves once it holds it. `prefix` runs it under another command (unshare …). */
function holder(name: string, prefix: string[] = []): Promise<ChildProcess> {
  const script = `import(${JSON.stringify(lockModule)}).then(async ({ acquireLock }) => {
    await acquireLock(${JSON.stringify(scope)}, ${JSON.stringify(name)}, { what: 'holding it for the test' });
    process.stdout.write('held\\n');
    setInterval(() => undefined, 1000);
  });`;
  const argv = [...prefix, process.execPath, '-e', script];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => (b.toString().includes('held') ? resolve(child) : undefined));
    child.on('exit', (code) => reject(new Error(`lock holder exited early (${code})`)));
  });
}

const exited = (child: ChildProcess): Promise<unknown> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', r));

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

test('a lock whose holder was SIGKILLed is free at once for a newcomer, and its leftover description misleads nobody', async () => {
  const child = await holder('k');
  child.kill('SIGKILL');
  await exited(child);
  const waits: string[] = [];
  const started = Date.now();
  // No wait at all: the kernel dropped the lock with the process (timeoutMs 1: any wait would time out).
  const lock = await acquireLock(scope, 'k', { what: 'after the crash', timeoutMs: 1, onWait: (h) => waits.push(h) });
  expect(Date.now() - started).toBeLessThan(2000);
  expect(waits).toEqual([]);
  // The new holder's own description replaced the dead one's.
  const err = await acquireLock(scope, 'k', { what: 'third', timeoutMs: 100 }).catch((e: unknown) => e);
  expect(err).toMatchObject({ code: 'E_LOCK_TIMEOUT', holder: `pid ${process.pid}: after the crash` });
  await lock.release();
}, 20_000);

test('a holder in another network namespace (unshare --user --map-root-user --net) still holds the same lock', async () => {
  // The point of files over abstract Unix sockets: those belong to a network namespace, so a
  // process in another one (or a RUN step in the host's) could take or squat a name at will.
  const child = await holder('netns', ['unshare', '--user', '--map-root-user', '--net']);
  try {
    expect(await readlink(`/proc/${child.pid}/ns/net`)).not.toBe(await readlink('/proc/self/ns/net'));
    const err = await acquireLock(scope, 'netns', { what: 'mine', timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect(err).toMatchObject({ code: 'E_LOCK_TIMEOUT', holder: expect.stringMatching(/^pid \d+: holding it for the test$/) });
    const waiting = acquireLock(scope, 'netns', { what: 'mine', timeoutMs: 10_000 });
    child.kill('SIGKILL');
    await (await waiting).release();
  } finally {
    child.kill('SIGKILL');
  }
}, 20_000);

test('names and scopes are separate locks; withLock releases on failure; onTimeout lets the work run unlocked', async () => {
  await mkdir(join(base, 'other'));
  const other = await lockScope(join(base, 'other'));
  expect(lockAddress(scope, 'a')).toMatch(new RegExp(`^${scope}/locks/[0-9a-f]{64}\\.lock$`));
  expect(lockAddress(scope, 'a')).not.toBe(lockAddress(scope, 'b'));
  expect(lockAddress(scope, 'a')).not.toBe(lockAddress(other, 'a'));
  const a = await acquireLock(scope, 'x', { what: 'x' });
  const b = await acquireLock(scope, 'y', { what: 'y', timeoutMs: 100 });
  const c = await acquireLock(other, 'x', { what: 'x', timeoutMs: 100 });
  const timeouts: string[] = [];
  expect(await withLock(scope, 'x', { what: 'x again', timeoutMs: 100, onTimeout: (e) => timeouts.push(e.code) }, async () => 'ran anyway')).toBe('ran anyway');
  expect(timeouts).toEqual(['E_LOCK_TIMEOUT']);
  await Promise.all([a.release(), b.release(), c.release(), a.release()]);
  await expect(withLock(scope, 'x', { what: 'x' }, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  // Released despite the failure:
  await (await acquireLock(scope, 'x', { what: 'x', timeoutMs: 100 })).release();
});

test('the lock directory is 0700; symlinks planted for it or its files are refused, never followed', async () => {
  await (await acquireLock(scope, 'm', { what: 'm' })).release();
  const dir = join(scope, 'locks');
  expect((await stat(dir)).mode & 0o777).toBe(0o700);
  // A released lock leaves its file (never deleted: see lock.ts) and no description.
  expect((await readdir(dir)).sort()).toEqual([`${lockAddress(scope, 'm').slice(dir.length + 1)}`]);

  // A link where a lock file goes: E_LOCK_FAILED, and its target is neither created nor touched.
  const target = join(base, 'elsewhere');
  await symlink(target, lockAddress(scope, 'planted'));
  await expect(acquireLock(scope, 'planted', { what: 'p', timeoutMs: 100 })).rejects.toMatchObject({ code: 'E_LOCK_FAILED', message: expect.stringContaining('symbolic link') });
  await expect(lstat(target)).rejects.toMatchObject({ code: 'ENOENT' });
  // A link planted as a lock's description is replaced, not written through.
  await writeFile(join(base, 'victim'), 'untouched');
  await symlink(join(base, 'victim'), `${lockAddress(scope, 'd')}.holder`);
  const d = await acquireLock(scope, 'd', { what: 'd' });
  expect((await lstat(`${lockAddress(scope, 'd')}.holder`)).isFile()).toBe(true);
  await d.release();
  expect(await readFile(join(base, 'victim'), 'utf8')).toBe('untouched');

  // A link in place of the lock directory itself.
  await mkdir(join(base, 'root2'));
  const scope2 = await lockScope(join(base, 'root2'));
  await mkdir(join(base, 'dir-elsewhere'));
  await symlink(join(base, 'dir-elsewhere'), join(scope2, 'locks'));
  const err = await acquireLock(scope2, 'z', { what: 'z', timeoutMs: 100 }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(FileLockError);
  expect(err).toMatchObject({ code: 'E_LOCK_FAILED', message: expect.stringContaining('is a symbolic link') });
  expect(await readdir(join(base, 'dir-elsewhere'))).toEqual([]);
});
