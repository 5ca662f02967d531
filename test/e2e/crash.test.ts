// Crash safety: a build SIGKILLed at any of 20 points (STOWAGE_CRASH_AT, the
// test hook in each package's crash-point.ts) exits non-zero without hanging,
// and the next build on the same --root succeeds with the image an undisturbed
// build gives, byte for byte. Before that rebuild, every point asserts what the
// kill left (so its cleanup is really exercised). Afterwards the root holds nothing of the dead
// build (scratch, active snapshots, partial downloads, staging, containers,
// mounts), every blob has the bytes its name says, and the output directory
// holds only complete outputs.
import { createHash } from 'node:crypto';
import { chown, mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  deadActiveSnapshots,
  deadLeases,
  deadScratch,
  leftovers,
  makeWorkDir,
  mountsUnder,
  pidGone,
  processesUnder,
  runStowage,
  skopeoInspectRegistry,
  testEnv,
  type WorkDir,
} from '../lib/index.js';

const T = 60_000;
/** Pushed to by push:upload; the tag must not exist before the recovery build. */
const registryRef = `e2e/crash-${process.pid}:push`;

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
const names = (dir: string) => readdir(dir).catch(() => [] as string[]);
const blobs = (root: string) => names(path.join(root, 'content', 'blobs', 'sha256'));
const committed = (root: string) => names(path.join(root, 'snapshots', 'committed'));
/** The dead build's scratch directories (tmp/build-<pid>-*): there is exactly one. */
const scratch = async (root: string) => {
  const dirs = await deadScratch(root);
  expect(dirs).toHaveLength(1);
  return path.join(root, 'tmp', dirs[0]!);
};
/** The one active snapshot the dead build owned, and what it holds (fs; merged and work when overlay-mounted). */
const deadActive = async (root: string) => {
  const active = await deadActiveSnapshots(root);
  expect(active).toHaveLength(1);
  return active[0]!.entries;
};
/** Step records (cache/steps/*.json): none was written yet at the step points below. */
const stepRecords = (root: string) => names(path.join(root, 'cache', 'steps'));
// A busybox pull stores 4 blobs (index, manifest, config, layer); the COPY step adds its layer as the 5th.
const BASE_BLOBS = 4;

// In build order. The busybox pull stores the index, the amd64 manifest, the config, then the layer (4th blob).
// Every point also leaves the dead build's lease and scratch directory (checked for all below).
const POINTS: Point[] = [
  {
    at: 'pull:manifest',
    // The index is stored, nothing else: no image record, no snapshot.
    left: async (root) => {
      expect(await blobs(root)).toHaveLength(1);
      expect(await names(path.join(root, 'images'))).toEqual([]);
      expect(await committed(root)).toEqual([]);
    },
  },
  { at: 'ingest:partial', left: (root) => nonEmpty(path.join(root, 'content', 'ingest'))() },
  { at: 'ingest:verified:4', left: (root) => nonEmpty(path.join(root, 'content', 'ingest'))() },
  {
    at: 'blob:renamed:4',
    // The layer is a verified blob, not unpacked: nothing committed. (Its streamed unpack may or
    // may not have prepared a snapshot yet: that race is the apply:entry point's to check.)
    left: async (root) => {
      expect(await blobs(root)).toHaveLength(BASE_BLOBS);
      expect(await names(path.join(root, 'content', 'ingest'))).toEqual([]);
      expect(await committed(root)).toEqual([]);
    },
  },
  { at: 'apply:entry:50', left: (root) => nonEmpty(path.join(root, 'snapshots', 'active'))() },
  { at: 'commit:before-publish', left: (root) => nonEmpty(path.join(root, 'snapshots', 'tmp'))() },
  {
    at: 'unpack:committed',
    // The base snapshot is committed; no step has started.
    left: async (root) => {
      expect(await committed(root)).toHaveLength(1);
      expect(await names(path.join(root, 'snapshots', 'active'))).toEqual([]);
      expect(await names(path.join(root, 'cache'))).toEqual([]);
    },
  },
  {
    at: 'prepare:mounted',
    // The COPY step's overlay snapshot (upper, work and mount point); the mount itself lived in the dead build's namespace.
    left: async (root) => expect(await deadActive(root)).toEqual(['fs', 'merged', 'meta.json', 'work']),
  },
  {
    at: 'copy:file',
    // Halfway through COPY: overlay has written into the snapshot (work/work exists once the mount was used).
    left: async (root) => {
      const [active] = await deadActiveSnapshots(root);
      expect(active?.entries).toEqual(['fs', 'merged', 'meta.json', 'work']);
      expect(await names(path.join(root, 'snapshots', 'active', active!.id, 'work'))).toEqual(['work']);
      expect(await stepRecords(root)).toEqual([]);
    },
  },
  {
    at: 'cache:record',
    // The COPY step is committed and its layer stored; its record is only a temp in the dead build's scratch.
    left: async (root) => {
      expect(await committed(root)).toHaveLength(2);
      expect(await blobs(root)).toHaveLength(BASE_BLOBS + 1);
      expect((await names(await scratch(root))).filter((n) => /^\..+\.json\.\w+$/.test(n))).toHaveLength(1);
      expect(await stepRecords(root)).toEqual([]);
    },
  },
  {
    at: 'run:started',
    // --network none: with the sandbox network the step dies with the build (its slirp4netns and
    // namespace holder exit when the build's pipes close), so nothing would be left to recover.
    args: ['--build-arg', 'SLEEP=5', '--network', 'none'],
    // runc and the step outlive the build: the next build must kill them. The container's
    // mount namespace keeps the step's overlay mounted, and its state is in the dead build's scratch.
    left: async (root) => {
      expect((await processesUnder(root)).length).toBeGreaterThan(0);
      expect((await mountsUnder(root)).some((m) => m.endsWith('/merged'))).toBe(true);
      expect((await names(path.join(await scratch(root), 'runc'))).length).toBe(1);
    },
  },
  {
    at: 'run:exited',
    // The container is gone (runc run deletes it), but not its bundle, nor the step's active snapshot.
    left: async (root) => {
      expect(await deadActive(root)).toEqual(['fs', 'merged', 'meta.json', 'work']);
      const dir = await scratch(root);
      const bundles = (await names(dir)).filter((n) => n.startsWith('bundle-'));
      expect(bundles).toHaveLength(1);
      expect(await names(path.join(dir, bundles[0]!))).toContain('config.json');
    },
  },
  { at: 'diff:entry', left: (root) => nonEmpty(path.join(root, 'content', 'ingest'))() },
  {
    at: 'step:imported',
    // The COPY layer is a blob; its snapshot is still active (not committed), no record.
    left: async (root) => {
      expect(await blobs(root)).toHaveLength(BASE_BLOBS + 1);
      expect(await deadActive(root)).toContain('fs');
      expect(await committed(root)).toHaveLength(1);
      expect(await stepRecords(root)).toEqual([]);
    },
  },
  {
    at: 'step:committed',
    // Committed but unrecorded: two snapshots, no active one, no cache record.
    left: async (root) => {
      expect(await committed(root)).toHaveLength(2);
      expect(await names(path.join(root, 'snapshots', 'active'))).toEqual([]);
      expect(await stepRecords(root)).toEqual([]);
    },
  },
  {
    at: 'view:mounted',
    // COPY --from's read-only overlay view (its mount went with the dead build's namespace), and the step's active snapshot.
    left: async (root) => {
      const views = await names(path.join(root, 'snapshots', 'views'));
      expect(views).toHaveLength(1);
      expect(views[0]).toMatch(/^view-\d+-/);
      expect(pidGone(Number(views[0]!.split('-')[1]))).toBe(true);
      expect(await deadActive(root)).toContain('fs');
    },
  },
  {
    at: 'export:partial:2',
    left: async (_root, out) => expect((await readdir(out)).some((n) => /^\.out\.tar\.stowage-\d+-\w+\.tmp$/.test(n))).toBe(true),
  },
  {
    at: 'export:before-rename',
    // The three outputs complete, all still under their temporary names.
    left: async (_root, out) => {
      const files = (await readdir(out)).sort();
      expect(files.map((n) => n.replace(/\.stowage-\d+-\w+\.tmp$/, ''))).toEqual(['.iid', '.meta.json', '.out.tar']);
      expect(files.every((n) => pidGone(Number(/\.stowage-(\d+)-/.exec(n)?.[1])))).toBe(true);
    },
  },
  {
    at: 'export:committed',
    // One of three outputs is in place, the others still temporaries: a crash cannot keep "all or none".
    left: async (_root, out) => expect((await readdir(out)).filter((n) => !n.endsWith('.tmp'))).toEqual(['out.tar']),
  },
  {
    at: 'push:upload',
    push: true,
    // The file outputs are in place; the registry has no manifest under the tag yet.
    left: async (_root, out) => {
      expect((await readdir(out)).sort()).toEqual(['iid', 'meta.json', 'out.tar']);
      const r = await fetch(`http://${testEnv().registry}/v2/${registryRef.replace(':', '/manifests/')}`, { method: 'HEAD' });
      expect(r.status).toBe(404);
    },
  },
];

const sha256 = async (p: string) => createHash('sha256').update(await readFile(p)).digest('hex');

describe('crash at any point, then rebuild on the same --root', () => {
  let work: WorkDir;
  let reference: { tar: string; iid: string; meta: string; digest: string };

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
      // Every point leaves the dead build's lease and scratch directory (tmp/build-<pid>-*).
      expect(await deadLeases(root)).toHaveLength(1);
      await scratch(root);
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
