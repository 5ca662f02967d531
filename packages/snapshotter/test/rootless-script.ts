/**
 * Run by rootless.test.ts as an unprivileged user inside
 * `unshare --user --mount --map-root-user --map-auto`: exercises the overlay
 * backend with `userxattr` and prints a JSON report on stdout.
 */
import { chmodSync, lstatSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyLayer, Snapshotter } from '../src/index.js';
import { describeTree, listLayer, makeTar, stream } from './fixtures.js';

async function main(): Promise<void> {
  const work = process.argv[2];
  if (!work) throw new Error('usage: rootless-script <workdir>');
  const snap = await Snapshotter.open(join(work, 'snaps'), { backend: 'auto' });
  try {
    const b = await snap.prepare('b');
    const base = await applyLayer(
      b,
      stream(
        makeTar([
          { path: 'home/user/', type: 'Directory', uid: 1000, gid: 1000 },
          { path: 'home/user/f', body: 'f', uid: 1000, gid: 1000, mode: 0o600 },
          { path: 'd/x', body: 'x' },
          { path: 'd/y', body: 'y' },
          { path: 'gone', body: 'g' },
          { path: 'bin/su', body: 'su', mode: 0o4755 },
        ]),
        true,
      ),
    );
    await snap.commit('base', 'b');
    const t = await snap.prepare('t', 'base');
    await applyLayer(t, stream(makeTar([{ path: 'd/.wh..wh..opq' }, { path: 'd/n', body: 'n' }, { path: '.wh.gone' }])));
    await snap.commit('top', 't');

    // A "RUN step": mutate the merged view, then diff the upper dir.
    const r = await snap.prepare('run', 'top');
    rmSync(join(r, 'bin/su'));
    rmSync(join(r, 'home/user'), { recursive: true });
    mkdirSync(join(r, 'home/user'));
    writeFileSync(join(r, 'home/user/new'), 'new');
    const layer = join(work, 'run.tgz');
    const diff = await snap.diff('run', layer);
    const entries = (await listLayer(layer)).map((e) => e.path);
    await snap.commit('run', 'run');

    // A step that makes and removes a mount stub in d/ and restores d's times (as
    // runc.ts does), leaves bin/ alone after touching a file in it, and changes
    // home/'s mode: only home/ (and bin/'s new file) is a change.
    const s = await snap.prepare('stub', 'run');
    const d = lstatSync(join(s, 'd'), { bigint: true });
    writeFileSync(join(s, 'd/stub'), '');
    rmSync(join(s, 'd/stub'));
    utimesSync(join(s, 'd'), Number((d.atimeNs + 500n) / 1000n) / 1e6, Number((d.mtimeNs + 500n) / 1000n) / 1e6);
    writeFileSync(join(s, 'bin/new'), 'b');
    chmodSync(join(s, 'home'), 0o700);
    const stubLayer = join(work, 'stub.tgz');
    await snap.diff('stub', stubLayer);
    const stubEntries = (await listLayer(stubLayer)).map((e) => e.path);
    await snap.release(s);

    const v = await snap.view('run');
    const tree = describeTree(v);
    await snap.release(v);
    process.stdout.write(
      JSON.stringify({
        backend: snap.backend,
        uidMap: readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/).join(' '),
        baseDiffID: base.diffID,
        diffEmpty: diff.empty,
        entries,
        stubEntries,
        tree,
      }),
    );
  } finally {
    await snap.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
