/**
 * The yargs side of `stowage login` and `stowage logout`. The work lives in
 * login-command.ts / logout-command.ts and is imported only when the command
 * runs, so `stowage --help` never loads the registry client.
 */
import type { Argv, CommandModule } from 'yargs';
import { runCommand } from './run-command.js';

export function loginBuilder(y: Argv) {
  return y
    .positional('registry', { type: 'string', describe: 'Registry HOST[:PORT] (default: Docker Hub, saved as https://index.docker.io/v1/)' })
    .option('username', { alias: 'u', type: 'string', describe: 'Username' })
    .option('password', { alias: 'p', type: 'string', describe: 'Password or token (insecure: visible to other users of this machine; prefer --password-stdin)' })
    .option('password-stdin', { type: 'boolean', default: false, describe: 'Read the password or token from standard input' })
    .option('insecure', { type: 'boolean', default: false, describe: 'Reach the registry over plain HTTP (loopback always is)' })
    .option('debug', { type: 'boolean', default: false, describe: 'Print stack traces on error' })
    .example('$0 login -u alice --password-stdin registry.example.com < token.txt', 'Log in with a password or token read from a file')
    .example('$0 login', 'Log in to Docker Hub, asking for the username and password')
    .epilog(
      'Credentials are checked against the registry, then saved like docker login saves them: through ' +
        'docker-credential-<helper> when config.json ($DOCKER_CONFIG/config.json, default ~/.docker/config.json) names one ' +
        'in credHelpers (for this registry) or credsStore, otherwise base64-encoded in that file (mode 0600).',
    );
}

type LoginArgv = ReturnType<typeof loginBuilder> extends Argv<infer T> ? T : never;

export const loginCommand: CommandModule<object, LoginArgv> = {
  command: 'login [registry]',
  describe: 'Log in to a registry (credentials for pulls and pushes, shared with docker)',
  builder: loginBuilder,
  handler: (args) =>
    runCommand(args.debug, async () =>
      (await import('./login-command.js')).runLogin({
        registry: args.registry,
        username: args.username,
        password: args.password,
        passwordStdin: args['password-stdin'],
        insecure: args.insecure,
      }),
    ),
};

export function logoutBuilder(y: Argv) {
  return y
    .positional('registry', { type: 'string', describe: 'Registry HOST[:PORT] (default: Docker Hub)' })
    .option('debug', { type: 'boolean', default: false, describe: 'Print stack traces on error' });
}

type LogoutArgv = ReturnType<typeof logoutBuilder> extends Argv<infer T> ? T : never;

export const logoutCommand: CommandModule<object, LogoutArgv> = {
  command: 'logout [registry]',
  describe: 'Log out from a registry (removes the credentials stowage login or docker login saved)',
  builder: logoutBuilder,
  handler: (args) => runCommand(args.debug, async () => (await import('./logout-command.js')).runLogout({ registry: args.registry })),
};
