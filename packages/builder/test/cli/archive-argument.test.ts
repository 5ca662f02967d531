import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { classifyImageArgument } from '../../src/cli/archive-argument.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-arg-'));
  await writeFile(join(dir, 'img.tar'), '');
  await writeFile(join(dir, 'odd:name.tar'), '');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('transport prefixes, an optional image name after the path, existing files, else a reference', async () => {
  const tar = join(dir, 'img.tar');
  expect(await classifyImageArgument(`oci-archive:${tar}`)).toEqual({ kind: 'archive', path: tar });
  expect(await classifyImageArgument(`docker-archive:${tar}:app:1`)).toEqual({ kind: 'archive', path: tar, name: 'app:1' });
  expect(await classifyImageArgument(`oci-archive:${join(dir, 'odd:name.tar')}`)).toEqual({ kind: 'archive', path: join(dir, 'odd:name.tar') });
  expect(await classifyImageArgument(tar)).toEqual({ kind: 'archive', path: tar });
  expect(await classifyImageArgument(`oci-archive:${join(dir, 'missing.tar')}`)).toEqual({ kind: 'archive', path: join(dir, 'missing.tar') });
  expect(await classifyImageArgument('busybox:latest')).toEqual({ kind: 'registry', ref: 'busybox:latest' });
  expect(await classifyImageArgument(dir)).toEqual({ kind: 'registry', ref: dir }); // a directory is not an archive
});
