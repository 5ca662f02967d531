/**
 * `stowage logout [REGISTRY]`, as `docker logout` does it: the registry's
 * credentials are erased from the credential helper that holds them
 * (credHelpers/credsStore) and from config.json. Nothing is contacted.
 */
import { dockerConfigKey, eraseCredentials } from '@stowage/registry-client';
import type { Argv, CommandModule } from 'yargs';
import { loginRegistry } from './login-input.js';

export interface LogoutArgs {
  registry?: string;
}

/** Logs out; returns the exit code (0 also when there was no login, as docker). */
export async function runLogout(args: LogoutArgs, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const registry = loginRegistry(args.registry);
  const key = dockerConfigKey(registry);
  const { erased } = await eraseCredentials(registry);
  out.write(erased ? `Removing login credentials for ${key}\n` : `Not logged in to ${key}\n`);
  return 0;
}

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
  // Errors propagate to main's handler, which prints `error: …` and exits 1.
  handler: async (args) => {
    await runLogout({ registry: args.registry });
  },
};
