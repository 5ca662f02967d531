import { formatError } from './format-error.js';

/**
 * Runs a command's work and records its exit code for main(): an error is
 * printed as `error: …` (the stack only with --debug) and exits 1.
 */
export async function runCommand(debug: boolean | undefined, work: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await work();
  } catch (err) {
    process.stderr.write(`${formatError(err, debug === true)}\n`);
    process.exitCode = 1;
  }
}

/** The parsed options of a command from its yargs builder function. */
export type BuilderArgs<B> = B extends (y: import('yargs').Argv) => import('yargs').Argv<infer T> ? T : never;
