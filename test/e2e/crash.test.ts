// Crash safety: a build SIGKILLed at any of 20 points (STOWAGE_CRASH_AT, the
// test hook in each package's crash-point.ts) exits non-zero without hanging,
// and the next build on the same --root succeeds with the image an undisturbed
// build gives, byte for byte. Afterwards the root holds nothing of the dead
// build (scratch, active snapshots, partial downloads, staging, containers,
// mounts), every blob has the bytes its name says, and the output directory
// holds only complete outputs.
import { createHash } from 'node:crypto';
import { chown, mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { leftovers, makeWorkDir, processesUnder, runStowage, skopeoInspectRegistry, testEnv, type WorkDir } from '../lib/index.js';

const T = 60_000;

// SLEEP keeps the RUN step's container alive after its build died (run:started); it is
// not in the image (ARG history is its text, RUN's is the unexpanded command).
const DOCKERFILE = `FROM busybox AS b
ARG SLEEP=0
COPY file.txt /src/file.txt
RUN mkdir -p /out && cp /src/file.txt /out/a && echo hello > /out/b && sleep $SLEEP
FROM scratch
COPY --from=b /out /out
`;

interface Point {
  /** STOWAGE_CRASH_AT value: a point name, `:N` for its N-th hit. */
  at: string;
  /** Arguments of the crashing build only. */
  args?: string[];
  /** Push to the loopback registry too (both builds). */
  push?: boolean;
  /** What the dead build must have left, checked before the rebuild (so that its cleanup is tested). */
  left?: (root: string, outDir: string) => Promise<void>;
}

const nonEmpty = (dir: string) => async () => expect((await readdir(dir)).length).toBeGreaterThan(0);

// In build order. The busybox pull stores the index, the amd64 manifest, the config, then the layer (4th blob).
const POINTS: Point[] = [
  { at: 'pull:manifest' },
  { at: 'ingest:partial', left: (root) => nonEmpty(path.join(root, 'content', 'ingest'))() },
  { at: 'ingest:verified:4', left: (root) => nonEmpty(path.join(root, 'content', 'ingest'))() },
  { at: 'blob:renamed:4' },
  { at: 'apply:entry:50', left: (root) => nonEmpty(path.join(root, 'snapshots', 'active'))() },
  { at: 'commit:before-publish', left: (root) => nonEmpty(path.join(root, 'snapshots', 'tmp'))() },
  { at: 'unpack:committed' },
  { at: 'prepare:mounted' },
  { at: 'copy:file' },
  { at: 'cache:record' },
  {
    at: 'run:started',
    args: ['--build-arg', 'SLEEP=5'],
    // runc and the step outlive the build: the next build must kill them.
    left: async (root) => expect((await processesUnder(root)).length).toBeGreaterThan(0),
  },
  { at: 'run:exited' },
  { at: 'diff:entry', left: (root) => nonEmpty(path.join(root, 'content', 'ingest'))() },
  { at: 'step:imported' },
  { at: 'step:committed' },
  { at: 'view:mounted' },
  {
    at: 'export:partial:2',
    left: async (_root, out) => expect((await readdir(out)).some((n) => /^\.out\.tar\.stowage-\d+-\w+\.tmp$/.test(n))).toBe(true),
  },
  { at: 'export:before-rename' },
  {
    at: 'export:committed',
    // One of three outputs is in place, the others still temporaries: a crash cannot keep "all or none".
    left: async (_root, out) => expect((await readdir(out)).filter((n) => !n.endsWith('.tmp'))).toEqual(['out.tar']),
  },
  { at: 'push:upload', push: true },
];

const sha256 = async (p: string) => createHash('sha256').update(await readFile(p)).digest('hex');

describe('crash at any point, then rebuild on the same --root', () => {
  let work: WorkDir;
  let reference: { tar: string; iid: string; meta: string; digest: string };
  const registryRef = `e2e/crash-${process.pid}:push`;

  /** A directory for one build's outputs, owned by the test user. */
  const outDir = async (name: string) => {
    const dir = path.join(work.base, name);
    await mkdir(dir);
    await chown(dir, testEnv().uid, testEnv().gid);
    return dir;
  };
  const build = (root: string, out: string, opts: { env?: Record<string, string>; args?: string[]; push?: boolean } = {}) =>
    runStowage(
      [
        'build', '--root', root, '--registry-mirror', `docker.io=${testEnv().registry}`,
        '-o', `type=oci,dest=${out}/out.tar`, '--iidfile', `${out}/iid`, '--metadata-file', `${out}/meta.json`,
        ...(opts.push ? ['-o', `type=registry,name=${testEnv().registry}/${registryRef}`] : []),
        ...(opts.args ?? []), '.',
      ],
      { cwd: work.dir, timeoutMs: T, ...(opts.env ? { env: opts.env } : {}) },
    );

  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: DOCKERFILE, 'file.txt': 'data\n' });
    const out = await outDir('out-reference');
    const r = await build(path.join(work.base, 'root-reference'), out);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    const meta = await readFile(path.join(out, 'meta.json'), 'utf8');
    reference = {
      tar: await sha256(path.join(out, 'out.tar')),
      iid: await readFile(path.join(out, 'iid'), 'utf8'),
      meta,
      digest: (JSON.parse(meta) as Record<string, string>)['containerimage.digest']!,
    };
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  for (const [i, p] of POINTS.entries()) {
    test(`${p.at}: the build dies, the next one recovers`, async () => {
      const root = path.join(work.base, `root-${i}`);
      const out = await outDir(`out-${i}`);
      const crashed = await build(root, out, { env: { STOWAGE_CRASH_AT: p.at }, args: p.args ?? [], push: p.push ?? false });
      expect(crashed.timedOut).toBe(false);
      expect(crashed.stderr).toContain(`crash point ${p.at.replace(/:\d+$/, '')} reached`);
      // The outer process (outside the user namespace) reports the inner one's SIGKILL.
      expect(crashed.code).toBe(137);
      await p.left?.(root, out);

      const again = await build(root, out, { push: p.push ?? false });
      expect({ code: again.code, stderr: again.code === 0 ? '' : again.stderr }).toEqual({ code: 0, stderr: '' });
      expect(await leftovers(root)).toEqual([]);
      // Complete outputs only, identical to an undisturbed build's.
      expect((await readdir(out)).sort()).toEqual(['iid', 'meta.json', 'out.tar']);
      expect(await sha256(path.join(out, 'out.tar'))).toBe(reference.tar);
      expect(await readFile(path.join(out, 'iid'), 'utf8')).toBe(reference.iid);
      const meta = await readFile(path.join(out, 'meta.json'), 'utf8');
      if (!p.push) expect(meta).toBe(reference.meta);
      else {
        // The pushed name is in image.name; the image is the same.
        expect((JSON.parse(meta) as Record<string, string>)['containerimage.digest']).toBe(reference.digest);
        expect((await skopeoInspectRegistry(registryRef)).Digest).toBe(reference.digest);
      }
    }, 2 * T);
  }
});
