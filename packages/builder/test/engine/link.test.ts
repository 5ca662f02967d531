import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuildCache } from '../../src/engine/cache.js';
import { linkedChown } from '../../src/engine/link.js';
import { InstructionError } from '../../src/errors.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-link-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const platform = { os: 'linux', architecture: 'amd64' };
const copy = { createdBy: 'COPY app /srv/', inputs: { op: 'COPY', dest: '/srv/', context: 'sha256:aaa', link: true }, platform };

test('the key of a linked step leaves out the parent, and only the parent', () => {
  const cache = new BuildCache(dir);
  const onA = cache.stepKey({ ...copy, parent: 'sha256:parent-a', linked: true });
  expect(cache.stepKey({ ...copy, parent: 'sha256:parent-b', linked: true })).toBe(onA);
  expect(cache.stepKey({ ...copy, parent: null, linked: true })).toBe(onA);
  // Everything else still counts: sources' content, destination, flags, platform.
  expect(cache.stepKey({ ...copy, inputs: { ...copy.inputs, context: 'sha256:bbb' }, parent: 'sha256:parent-a', linked: true })).not.toBe(onA);
  expect(cache.stepKey({ ...copy, inputs: { ...copy.inputs, dest: '/opt/' }, parent: 'sha256:parent-a', linked: true })).not.toBe(onA);
  expect(cache.stepKey({ ...copy, inputs: { ...copy.inputs, chown: '1000' }, parent: 'sha256:parent-a', linked: true })).not.toBe(onA);
  expect(cache.stepKey({ ...copy, platform: { os: 'linux', architecture: 'arm64' }, parent: 'sha256:parent-a', linked: true })).not.toBe(onA);
});

test('an ordinary step keeps its parent in the key, and never shares a key with a linked one', () => {
  const cache = new BuildCache(dir);
  const plain = { ...copy, inputs: { ...copy.inputs, link: undefined } };
  const onA = cache.stepKey({ ...plain, parent: 'sha256:parent-a' });
  expect(cache.stepKey({ ...plain, parent: 'sha256:parent-b' })).not.toBe(onA);
  expect(cache.stepKey({ ...plain, parent: 'sha256:parent-a', linked: false })).toBe(onA);
  // The same inputs with and without --link: different results (a symlinked destination), different keys.
  expect(cache.stepKey({ ...plain, parent: null, linked: true })).not.toBe(cache.stepKey({ ...plain, parent: null }));
  // Keys of ordinary steps are the ones earlier versions wrote, so existing caches stay valid.
  expect(onA).toBe(cache.key({ parent: 'sha256:parent-a', platform, createdBy: plain.createdBy, inputs: plain.inputs }));
});

test('--chown of a linked step takes numeric ids and root, and a uid alone is also the gid (BuildKit)', () => {
  expect(linkedChown('1000', 'COPY')).toEqual({ uid: 1000, gid: 1000 });
  expect(linkedChown('1000:50', 'COPY')).toEqual({ uid: 1000, gid: 50 });
  expect(linkedChown('root', 'COPY')).toEqual({ uid: 0, gid: 0 });
  expect(linkedChown('root:100', 'ADD')).toEqual({ uid: 0, gid: 100 });
  expect(linkedChown('33:root', 'COPY')).toEqual({ uid: 33, gid: 0 });
});

test('--chown of a linked step refuses other names: there is no passwd or group file to read', () => {
  expect(() => linkedChown('nobody', 'COPY')).toThrow(InstructionError);
  expect(() => linkedChown('nobody', 'COPY')).toThrow(/COPY --link --chown=nobody: the user name nobody cannot be looked up.*\/etc\/passwd.*numeric/);
  expect(() => linkedChown('1000:staff', 'ADD')).toThrow(/ADD --link --chown=1000:staff: the group name staff .*\/etc\/group/);
  expect(() => linkedChown('-1', 'COPY')).toThrow(InstructionError);
});
