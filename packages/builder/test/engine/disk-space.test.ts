import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { availableBytes, fullRootNote, noSpaceError } from '../../src/engine/disk-space.js';
import { BuildError, withLocation } from '../../src/errors.js';
import { StagingNoSpaceError, stagingWrites } from '../../src/export/oci-archive.js';

const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });

describe('noSpaceError', () => {
  test('ENOSPC becomes E_NO_SPACE naming --root and keeps the Dockerfile line', () => {
    const err = noSpaceError(withLocation(enospc(), { file: 'Dockerfile', line: 3 }), '/r') as BuildError;
    expect(err).toBeInstanceOf(BuildError);
    expect(err.code).toBe('E_NO_SPACE');
    expect(err.message).toBe('no space left on the device holding --root /r (ENOSPC: no space left on device, write): free space there or use another --root; the state root stays consistent');
    expect({ file: err.file, line: err.line }).toEqual({ file: 'Dockerfile', line: 3 });
  });

  test('other errors pass unchanged', () => {
    const other = Object.assign(new Error('EACCES'), { code: 'EACCES' });
    expect(noSpaceError(other, '/r')).toBe(other);
    expect(noSpaceError('text', '/r')).toBe('text');
  });
});

describe('free space of --root', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'disk-space-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a device with room gives no note; an unknown one neither', async () => {
    expect(await availableBytes(dir)).toBeGreaterThan(1 << 20);
    expect(await fullRootNote(dir)).toBe('');
    expect(await availableBytes(join(dir, 'missing'))).toBeUndefined();
    expect(await fullRootNote(join(dir, 'missing'))).toBe('');
  });
});

describe('stagingWrites', () => {
  test('ENOSPC is marked as the staging area’s, other errors are not', async () => {
    const full = await stagingWrites(() => Promise.reject(enospc())).catch((e: unknown) => e);
    expect(full).toBeInstanceOf(StagingNoSpaceError);
    expect((full as StagingNoSpaceError).message).toBe('ENOSPC: no space left on device, write');
    const other = new Error('boom');
    await expect(stagingWrites(() => Promise.reject(other))).rejects.toBe(other);
    await expect(stagingWrites(async () => 7)).resolves.toBe(7);
  });
});
