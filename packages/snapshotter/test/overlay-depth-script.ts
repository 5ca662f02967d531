/** Run by overlay-depth.test.ts as stowage-ci inside `unshare --user --mount --map-root-user --map-auto`. */
import { readFileSync } from 'node:fs';
import { runDeepChain } from './overlay-depth-core.js';

const [work, depth] = process.argv.slice(2);
if (!work || !depth) throw new Error('usage: overlay-depth-script <workdir> <depth>');
runDeepChain(work, Number(depth)).then(
  (r) => process.stdout.write(JSON.stringify({ ...r, uidMap: readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/).join(' ') })),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
