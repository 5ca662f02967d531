import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSecrets } from '../../src/cli/options.js';
import { SecretStore } from '../../src/engine/secrets.js';
import { BuildError } from '../../src/errors.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-secrets-'));
  await writeFile(join(dir, 'token.txt'), 's3cr3t-file');
  await mkdir(join(dir, 'adir'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function optionError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BuildError);
    expect((err as BuildError).code).toBe('E_INVALID_OPTION');
    return (err as Error).message;
  }
  throw new Error('expected an error');
}

describe('parseSecrets (--secret, buildx syntax)', () => {
  const env = { API_TOKEN: 'from-env', tok: 'named-like-id' };

  test('id + src (or source), relative to the working directory', () => {
    expect(parseSecrets(['id=t,src=token.txt'], env, dir)).toEqual([{ id: 't', file: join(dir, 'token.txt') }]);
    expect(parseSecrets([`id=t,source=${join(dir, 'token.txt')}`], env, '/')).toEqual([{ id: 't', file: join(dir, 'token.txt') }]);
  });

  test('the id defaults to the file\'s base name or the variable\'s name', () => {
    expect(parseSecrets(['src=token.txt'], env, dir)).toEqual([{ id: 'token.txt', file: join(dir, 'token.txt') }]);
    expect(parseSecrets(['env=API_TOKEN'], env, dir)).toEqual([{ id: 'API_TOKEN', env: 'API_TOKEN' }]);
  });

  test('type=env names the variable with src= or env=; type=file is a file', () => {
    expect(parseSecrets(['type=env,id=t,src=API_TOKEN'], env, dir)).toEqual([{ id: 't', env: 'API_TOKEN' }]);
    expect(parseSecrets(['type=env,id=t,env=API_TOKEN'], env, dir)).toEqual([{ id: 't', env: 'API_TOKEN' }]);
    expect(parseSecrets(['type=file,id=t,src=token.txt'], env, dir)).toEqual([{ id: 't', file: join(dir, 'token.txt') }]);
  });

  test('id alone: a set variable of that name, else a file of that name', () => {
    expect(parseSecrets(['id=tok'], env, dir)).toEqual([{ id: 'tok', env: 'tok' }]);
    expect(parseSecrets(['id=token.txt'], env, dir)).toEqual([{ id: 'token.txt', file: join(dir, 'token.txt') }]);
  });

  test('an unset variable is accepted (the secret is then missing)', () => {
    expect(parseSecrets(['id=x,env=NOT_SET_ANYWHERE'], env, dir)).toEqual([{ id: 'x', env: 'NOT_SET_ANYWHERE' }]);
  });

  test('errors name the option, never a value', () => {
    expect(optionError(() => parseSecrets(['id=t,src=missing.txt'], env, dir))).toMatch(/--secret id=t,src=missing.txt: cannot read .*missing.txt: ENOENT/);
    expect(optionError(() => parseSecrets(['id=t,src=adir'], env, dir))).toMatch(/is not a regular file/);
    expect(optionError(() => parseSecrets(['id=t,src=token.txt,env=API_TOKEN'], env, dir))).toMatch(/not both/);
    expect(optionError(() => parseSecrets(['type=ssh,id=t'], env, dir))).toMatch(/unsupported type "ssh"/);
    expect(optionError(() => parseSecrets(['id=t,colour=red'], env, dir))).toMatch(/unknown key "colour"/);
    expect(optionError(() => parseSecrets(['t'], env, dir))).toMatch(/"t" is not key=value/);
    expect(optionError(() => parseSecrets(['type=env'], env, dir))).toMatch(/give id=ID/);
    expect(optionError(() => parseSecrets(['id=t,env=BAD-NAME'], env, dir))).toMatch(/not an environment variable name/);
    for (const bad of [['id=t,env=API_TOKEN,src=x'], ['id=t,env=API_TOKEN']]) {
      try {
        parseSecrets(bad, env, dir);
      } catch (err) {
        expect((err as Error).message).not.toContain('from-env');
      }
    }
  });
});

describe('SecretStore', () => {
  test('reads a file or a variable when asked; a later id wins; unset variables are missing', async () => {
    const store = new SecretStore([
      { id: 'f', file: join(dir, 'token.txt') },
      { id: 'e', env: 'API_TOKEN' },
      { id: 'e', env: 'OTHER' },
      { id: 'unset', env: 'NOPE' },
    ], { API_TOKEN: 'first', OTHER: 'second' });
    expect((await store.read('f'))?.toString()).toBe('s3cr3t-file');
    expect((await store.read('e'))?.toString()).toBe('second');
    expect(store.has('unset')).toBe(false);
    expect(await store.read('unset')).toBeUndefined();
    expect(store.has('nothing')).toBe(false);
    expect(store.has('f')).toBe(true);
  });
});
