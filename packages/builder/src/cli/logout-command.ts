/**
 * `stowage logout [REGISTRY]`, as `docker logout` does it: the registry's
 * credentials are erased from the credential helper that holds them
 * (credHelpers/credsStore) and from config.json. Nothing is contacted.
 */
import { dockerConfigKey, eraseCredentials } from '@stowage/registry-client';
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
