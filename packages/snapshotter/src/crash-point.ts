import { writeSync } from 'node:fs';

/**
 * Test hook for crash-safety tests: with `STOWAGE_CRASH_AT=<name>` (or
 * `<name>:<n>`, the n-th time it is reached) the process SIGKILLs itself at
 * `crashPoint(name)`, as a power cut or the OOM killer would. One check of a
 * constant otherwise. Copied in each package so none depends on another for it.
 */
const at = /^(.+?)(?::(\d+))?$/.exec(process.env.STOWAGE_CRASH_AT ?? '');
let hits = 0;

export function crashPoint(name: string): void {
  if (at === null || at[1] !== name || ++hits < Number(at[2] ?? 1)) return;
  writeSync(2, `crash point ${name} reached: SIGKILL\n`);
  process.kill(process.pid, 'SIGKILL');
}
