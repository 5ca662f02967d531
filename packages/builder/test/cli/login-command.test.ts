// Option handling of `stowage login` that is decided before any registry is contacted.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runLogin, type LoginIo } from '../../src/cli/login-command.js';

let dir: string;
const saved = process.env['DOCKER_CONFIG'];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-login-'));
  process.env['DOCKER_CONFIG'] = dir; // empty: no saved credentials
});
afterEach(async () => {
  if (saved === undefined) delete process.env['DOCKER_CONFIG'];
  else process.env['DOCKER_CONFIG'] = saved;
  await rm(dir, { recursive: true, force: true });
});

function io(stdinText = ''): LoginIo & { err: () => string } {
  const stdin = new PassThrough() as unknown as NodeJS.ReadStream;
  (stdin as unknown as PassThrough).end(stdinText);
  let err = '';
  const stderr = new PassThrough();
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  return { stdin, stdout: new PassThrough(), stderr, err: () => err };
}

test('--password-stdin needs --username, and excludes --password', async () => {
  await expect(runLogin({ registry: 'r.example', passwordStdin: true }, io('pw\n'))).rejects.toMatchObject({ code: 'E_INVALID_OPTION', message: 'must provide --username with --password-stdin' });
  await expect(runLogin({ registry: 'r.example', username: 'u', password: 'p', passwordStdin: true }, io('pw\n'))).rejects.toThrow('--password and --password-stdin are mutually exclusive');
});

test('without a terminal, a missing username or password is an error, not a hang', async () => {
  await expect(runLogin({ registry: 'r.example' }, io())).rejects.toThrow(/^cannot perform an interactive login from a non TTY device/);
  await expect(runLogin({ registry: 'r.example', username: 'u' }, io())).rejects.toThrow(/^cannot perform an interactive login from a non TTY device/);
  await expect(runLogin({ registry: 'r.example', username: 'u', passwordStdin: true }, io(''))).rejects.toThrow('a password is required');
});

test('-p warns (as docker) before anything else happens', async () => {
  await expect(runLogin({ registry: 'bad host', username: 'u', password: 'p' }, io())).rejects.toThrow(/is not a registry/);
  const j = io();
  await expect(runLogin({ registry: '127.0.0.1:9', username: 'u', password: '', insecure: true }, j)).rejects.toThrow('a password is required');
  expect(j.err()).toContain('WARNING! Using --password via the CLI is insecure. Use --password-stdin.');
});
