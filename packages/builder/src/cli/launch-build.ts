// `stowage build` runs inside a user namespace: the process the user started
// only re-executes itself there, and the child parses and checks the options
// itself. Going there straight away spares that first process loading yargs,
// the command list and the engine chunk. Anything else (help, another
// command, already inside, a namespace problem to report in the chosen
// progress format) takes the ordinary path through main.ts, which behaves as
// before.
import { exitProcess, terminalHungUp } from '../interrupt.js';
import { currentMappingMode, runInUserNamespace } from '../rootless/reexec.js';

class OrdinaryPath extends Error {}

/** Re-executes a build inside the namespace; resolves false when main.ts should handle `args` instead. */
export async function launchBuild(args: readonly string[]): Promise<boolean> {
  if (args[0] !== 'build' || args.some((a) => a === '-h' || a === '--help')) return false;
  if (currentMappingMode() !== undefined) return false;
  try {
    // The only message before the child starts is the single-id warning, which the
    // ordinary path prints in the right progress format (a rawjson `note`, say).
    const code = await runInUserNamespace(process.argv.slice(1), () => {
      throw new OrdinaryPath();
    });
    // The terminal was closed (the child stopped on the forwarded SIGHUP): an ordinary exit would abort (see exitProcess).
    if (terminalHungUp()) exitProcess(code);
    process.exitCode = code;
    return true;
  } catch {
    // Nothing was started (or the child was killed before its maps were written): main.ts tries again and reports.
    return false;
  }
}
