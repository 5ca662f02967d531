/**
 * Process liveness, for telling a crashed run's leftovers from a live sibling's.
 * Internal to the snapshotter (which depends on no other workspace package);
 * the builder uses registry-client's synchronous `isProcessAlive`. Not
 * exported: two functions of one name, one returning a Promise, made
 * `!isProcessAlive(pid)` compile and always be false with the wrong import.
 */
import { readFile } from 'node:fs/promises';

/** Start time of `pid` (clock ticks since boot, field 22 of /proc/<pid>/stat), or undefined if gone. */
export async function processStartTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parens: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19]; // field 22 overall = index 19 after pid and comm
  } catch {
    return undefined;
  }
}

export async function isProcessAlive(pid: number, startTime: string | undefined): Promise<boolean> {
  const now = await processStartTime(pid);
  return now !== undefined && (startTime === undefined || now === startTime);
}
