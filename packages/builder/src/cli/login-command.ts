/**
 * `stowage login [REGISTRY]`, as `docker login` does it: the credentials are
 * checked against the registry (GET /v2/, then Basic or a token from its
 * realm) before anything is saved, then saved where docker would put them
 * (a credential helper from credHelpers/credsStore, else config.json), so
 * docker, buildx, skopeo and stowage share one login. No user namespace:
 * this command never touches the build state.
 */
import {
  dockerConfigCredentials,
  dockerConfigKey,
  storeCredentials,
  verifyLogin,
  type Credentials,
} from '@stowage/registry-client';
import { InvalidOptionError } from '../errors.js';
import { loginRegistry, passwordFromStdinText, promptLine, readAll } from './login-input.js';

export interface LoginArgs {
  registry?: string;
  username?: string;
  password?: string;
  passwordStdin?: boolean;
  /** Plain HTTP to the registry (loopback always is). */
  insecure?: boolean;
}

export interface LoginIo {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

const processIo = (): LoginIo => ({ stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });

/** Username and password from the options, stdin or the terminal; docker's rules and messages. */
async function askCredentials(args: LoginArgs, io: LoginIo, stored: Credentials | undefined): Promise<Credentials> {
  let username = args.username?.trim();
  let password = args.password;
  if (args.passwordStdin === true) {
    if (password !== undefined) throw new InvalidOptionError('--password and --password-stdin are mutually exclusive');
    if (username === undefined || username === '') throw new InvalidOptionError('must provide --username with --password-stdin');
    password = passwordFromStdinText(await readAll(io.stdin));
  } else if (password !== undefined) {
    io.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
  }
  const tty = io.stdin.isTTY === true && typeof io.stdin.setRawMode === 'function';
  if (username === undefined || username === '') {
    if (!tty) throw new InvalidOptionError('cannot perform an interactive login from a non TTY device; give --username and --password-stdin');
    const suggested = stored?.username;
    username = (await promptLine(io.stdin, io.stderr, suggested !== undefined ? `Username (${suggested}): ` : 'Username: ', false)).trim() || suggested;
  }
  if (username === undefined || username === '') throw new InvalidOptionError('a username is required');
  if (password === undefined) {
    if (!tty) throw new InvalidOptionError('cannot perform an interactive login from a non TTY device; give --password-stdin');
    password = await promptLine(io.stdin, io.stderr, 'Password: ', true);
  }
  if (password === '') throw new InvalidOptionError('a password is required');
  return { username, password };
}

/**
 * Logs in; returns the exit code. Without -u/-p/--password-stdin, saved
 * credentials for the registry are tried first (docker's "Authenticating
 * with existing credentials"), and the user is asked only if they fail.
 */
export async function runLogin(args: LoginArgs, io: LoginIo = processIo()): Promise<number> {
  const registry = loginRegistry(args.registry);
  const key = dockerConfigKey(registry);
  const insecureRegistries = args.insecure === true ? [registry] : [];
  const explicit = args.username !== undefined || args.password !== undefined || args.passwordStdin === true;
  // As docker: saved credentials are consulted only when none are given.
  const stored = explicit ? undefined : await dockerConfigCredentials()(registry);
  let verified: Awaited<ReturnType<typeof verifyLogin>> | undefined;
  if (stored !== undefined && (stored.password !== undefined || stored.identityToken !== undefined)) {
    io.stderr.write(`Authenticating with existing credentials${stored.username !== undefined ? ` [Username: ${stored.username}]` : ''}...\n`);
    verified = await verifyLogin({ registry, credentials: stored, insecureRegistries }).catch((err: unknown) => {
      io.stderr.write(`Login did not succeed, error: ${(err as Error).message}\n`);
      return undefined;
    });
  }
  if (verified === undefined) {
    const creds = await askCredentials(args, io, stored);
    verified = await verifyLogin({ registry, credentials: creds, insecureRegistries });
  }
  const where = await storeCredentials(registry, verified.credentials);
  if (where.kind === 'file') {
    io.stderr.write(
      `WARNING! Your credentials are stored unencrypted in '${where.path}'.\n` +
        'Configure a credential helper (credsStore or credHelpers in that file) to remove this warning.\n',
    );
  }
  io.stdout.write(`Login Succeeded${verified.scheme === 'none' ? ` (${key} asks for no authentication)` : ''}\n`);
  return 0;
}
