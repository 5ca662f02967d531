import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkDestinations } from '../../src/cli/build-command.js';
import { BuildError } from '../../src/errors.js';

async function optionError(p: Promise<unknown>): Promise<BuildError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BuildError);
    expect((err as BuildError).code).toBe('E_INVALID_OPTION');
    return err as BuildError;
  }
  throw new Error('expected an error');
}

describe('checkDestinations', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-dest-'));
    await mkdir(join(dir, 'empty'));
    await mkdir(join(dir, 'full'));
    await writeFile(join(dir, 'full', 'x'), 'x');
    await writeFile(join(dir, 'file'), 'x');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('new files and a new or empty directory pass; existing files are replaced', async () => {
    await checkDestinations(
      [
        { type: 'oci', dest: join(dir, 'a.tar') },
        { type: 'docker', dest: join(dir, 'file') },
        { type: 'local', dest: join(dir, 'rootfs') },
        { type: 'local', dest: join(dir, 'empty') },
        { type: 'tar', dest: join(dir, 'fs.tar') },
      ],
      join(dir, 'id.txt'),
      join(dir, 'meta.json'),
    );
  });

  test('a missing parent directory', async () => {
    const err = await optionError(checkDestinations([{ type: 'tar', dest: join(dir, 'nope', 'fs.tar') }]));
    expect(err.message).toBe(`-o type=tar,dest=${join(dir, 'nope', 'fs.tar')}: directory ${join(dir, 'nope')} does not exist`);
    await optionError(checkDestinations([], join(dir, 'nope', 'id')));
  });

  test('type=local refuses a non-empty directory and a file', async () => {
    expect((await optionError(checkDestinations([{ type: 'local', dest: join(dir, 'full') }]))).message).toMatch(/exists and is not empty/);
    expect((await optionError(checkDestinations([{ type: 'local', dest: join(dir, 'file') }]))).message).toMatch(/exists and is not a directory/);
  });

  test('a file output naming a directory', async () => {
    expect((await optionError(checkDestinations([{ type: 'oci', dest: join(dir, 'empty') }]))).message).toMatch(/is a directory; give a file name/);
    await optionError(checkDestinations([], undefined, join(dir, 'empty')));
  });

  test('two outputs with one path', async () => {
    const err = await optionError(checkDestinations([{ type: 'oci', dest: join(dir, 'x.tar') }, { type: 'docker', dest: join(dir, 'x.tar') }]));
    expect(err.message).toContain(`is also the destination of -o type=oci,dest=${join(dir, 'x.tar')}`);
    await optionError(checkDestinations([{ type: 'oci', dest: join(dir, 'x.tar') }], join(dir, 'x.tar')));
  });
});
