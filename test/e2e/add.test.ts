// ADD of local files: tar archives (recognised by content, any compression
// Docker supports: gzip, bzip2, xz) unpack into the destination; anything else is copied.
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { create as createTar } from 'tar';
import { makeWorkDir, runImage, runStowage, testEnv, unpackOciTar, type WorkDir } from '../lib/index.js';

const T = 300_000;

const DOCKERFILE = `FROM busybox
ADD app.tar.gz /opt/
ADD misnamed.txt /plain-tar/
ADD --chown=1000:1000 app.tar.gz /owned
ADD notes.txt.gz /notes/
ADD notes.txt /copied.txt
ADD app.tar.bz2 /bz/
ADD app.tar.xz /xz/
`;

/** A tar holding app/bin/run (0755, owned 33:33 in the archive) and app/README. */
async function makeTar(): Promise<Buffer> {
  const src = await mkdtemp(path.join(tmpdir(), 'stowage-add-src-'));
  try {
    await mkdir(path.join(src, 'app', 'bin'), { recursive: true });
    await writeFile(path.join(src, 'app', 'bin', 'run'), '#!/bin/sh\necho run\n', { mode: 0o755 });
    await writeFile(path.join(src, 'app', 'README'), 'readme\n');
    execFileSync('chown', ['-R', '33:33', path.join(src, 'app')]);
    const chunks: Buffer[] = [];
    for await (const chunk of createTar({ cwd: src, portable: false }, ['app'])) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  } finally {
    await rm(src, { recursive: true, force: true });
  }
}

describe('ADD of local files', () => {
  let work: WorkDir;
  beforeAll(async () => {
    const tar = await makeTar();
    work = await makeWorkDir({
      Dockerfile: DOCKERFILE,
      'app.tar.gz': gzipSync(tar),
      'misnamed.txt': tar,
      'notes.txt.gz': gzipSync(Buffer.from('just text, not a tar\n')),
      'notes.txt': 'notes\n',
      // Compressed by the Debian tools a user would use (bzip2, xz-utils), not by us.
      'app.tar.bz2': execFileSync('bzip2', ['-c'], { input: tar }),
      'app.tar.xz': execFileSync('xz', ['-c'], { input: tar }),
    });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('unpacks archives by content, keeps their owners unless --chown, copies everything else', async () => {
    const r = await runStowage(['build', '--root', work.root, '--registry-mirror', `docker.io=${testEnv().registry}`, '-o', 'add.tar', '.'], { cwd: work.dir, timeoutMs: T });
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    const img = await unpackOciTar(work.path('add.tar'), path.join(work.base, 'layout'));
    const layers = img.layers.slice(-7).map((l) => new Map(l.entries.map((e) => [e.path, e])));
    const [gz, plain, owned, notGz, copied, bz, xz] = layers as [typeof layers[0], typeof layers[0], typeof layers[0], typeof layers[0], typeof layers[0], typeof layers[0], typeof layers[0]];
    expect(gz.get('opt/app/bin/run')).toMatchObject({ type: 'File', uid: 33, gid: 33, mode: 0o755 });
    expect(gz.get('opt/app/README')).toMatchObject({ uid: 33, gid: 33 });
    expect(plain.get('plain-tar/app/README')).toMatchObject({ type: 'File' });
    expect(owned.get('owned/app/bin/run')).toMatchObject({ uid: 1000, gid: 1000, mode: 0o755 });
    expect(owned.get('owned/app')).toMatchObject({ type: 'Directory', uid: 1000, gid: 1000 });
    // A gzip of plain text is not an archive: copied as the file it is.
    expect(notGz.get('notes/notes.txt.gz')).toMatchObject({ type: 'File' });
    expect(copied.get('copied.txt')).toMatchObject({ type: 'File', uid: 0, gid: 0 });
    for (const [layer, dir] of [[bz, 'bz'], [xz, 'xz']] as const) {
      expect(layer.get(`${dir}/app/bin/run`)).toMatchObject({ type: 'File', uid: 33, gid: 33, mode: 0o755 });
      expect(layer.get(`${dir}/app/README`)).toMatchObject({ type: 'File', size: 7 });
    }
    const run = await runImage(work.path('add.tar'), { args: ['/opt/app/bin/run'] });
    expect(run.stdout).toBe('run\n');
  }, T);
});
