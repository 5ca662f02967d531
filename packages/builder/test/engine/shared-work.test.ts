import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, lockScope } from '@stowage/registry-client';
import { lockSharedWork } from '../../src/engine/shared-work.js';

// Locks are files under their scope (`<scope>/locks/`), so the scope is a real directory.
let scope: string;
beforeAll(async () => {
  scope = await lockScope(await mkdtemp(join(tmpdir(), 'shared-work-test-')));
});
afterAll(async () => {
  await rm(scope, { recursive: true, force: true });
});

test('waits for the holder, says whom it waits for, and after the timeout does the work itself', async () => {
  const held = await acquireLock(scope, 'step k', { what: 'running RUN make' });
  const before = process.env.STOWAGE_LOCK_TIMEOUT;
  process.env.STOWAGE_LOCK_TIMEOUT = '0.2';
  try {
    const log: string[] = [];
    expect(await lockSharedWork(scope, 'step k', 'running RUN make', (l) => log.push(l))).toBeUndefined();
    expect(log).toEqual([
      `waiting for pid ${process.pid}: running RUN make`,
      expect.stringMatching(/^warning: timed out after 0 s waiting to start running RUN make: .*\(pid \d+: running RUN make\).*; doing it here too$/),
    ]);
    // Free again: taken at once, nothing logged.
    await held.release();
    const quiet: string[] = [];
    const lock = await lockSharedWork(scope, 'step k', 'x', (l) => quiet.push(l));
    expect(lock).toBeDefined();
    expect(quiet).toEqual([]);
    await lock!.release();
  } finally {
    if (before === undefined) delete process.env.STOWAGE_LOCK_TIMEOUT;
    else process.env.STOWAGE_LOCK_TIMEOUT = before;
    await held.release();
  }
});
