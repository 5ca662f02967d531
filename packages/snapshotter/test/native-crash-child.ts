/**
 * Child process for native.test.ts crash tests: opens the root and runs one operation;
 * the test kills it (SIGKILL via STOWAGE_CRASH_AT, or from outside mid-copy).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Snapshotter } from '../src/index.js';

const [root, op, parent, out] = process.argv.slice(2);
if (!root || !op || !parent) throw new Error('usage: native-crash-child <root> prepare|step <parent> [layer]');
const snap = await Snapshotter.open(root, { backend: 'native' });
process.stdout.write('opened\n');
const p = await snap.prepare(`crash-${op}-${process.pid}`, parent);
if (op === 'step') {
  writeFileSync(join(p, 'from-crashed-step'), 'x');
  await snap.diff(`crash-${op}-${process.pid}`, out ?? join(root, '..', 'crash.tgz'));
  await snap.commit('sha256:crashed', `crash-${op}-${process.pid}`);
}
process.stdout.write('done\n');
await new Promise((r) => setTimeout(r, 60_000));
