// Four builds at once on one --root: two of the same Dockerfile, two others
// sharing its base image and first steps. Cold, then warm, every build
// succeeds with the digest it has when built alone; the shared work is done
// once (one download of the base layer, one unpack, one run of each shared
// step: the others wait on its lock and reuse the result), and the root is
// left clean.
import { chown, mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { leftovers, makeWorkDir, runStowage, testEnv, type RunResult, type WorkDir } from '../lib/index.js';

const T = 240_000;

const SHARED = `FROM busybox AS base
COPY shared.txt /shared.txt
RUN sleep 1 && cat /shared.txt > /common
`;
const DOCKERFILES: Record<string, string> = {
  a: `${SHARED}FROM base\nRUN echo a > /a\n`,
  b: `${SHARED}FROM base\nRUN echo b > /b\nCOPY b.txt /b.txt\n`,
  c: `${SHARED}FROM scratch\nCOPY --from=base /common /c/common\n`,
};
const SHARED_RUN = 'RUN sleep 1 && cat /shared.txt > /common';

describe('concurrent builds on one --root', () => {
  let work: WorkDir;
  const alone = new Map<string, string>();
  const registry = () => testEnv().registry;

  const outDir = async (name: string) => {
    const dir = path.join(work.base, name);
    await mkdir(dir, { recursive: true });
    await chown(dir, testEnv().uid, testEnv().gid);
    return dir;
  };
  const build = async (root: string, file: string, out: string): Promise<RunResult & { digest?: string }> => {
    const r = await runStowage(
      ['build', '--root', root, '--registry-mirror', `docker.io=${registry()}`, '-f', `Dockerfile.${file}`, '--metadata-file', `${out}/meta.json`, '-o', `${out}/out.tar`, '.'],
      { cwd: work.dir, timeoutMs: T },
    );
    if (r.code !== 0) return r;
    const meta = JSON.parse(await readFile(`${out}/meta.json`, 'utf8')) as Record<string, string>;
    return { ...r, digest: meta['containerimage.digest']! };
  };
  const ok = (r: RunResult) => ({ code: r.code, stderr: r.code === 0 ? '' : r.stderr });
  /** Lines of all builds' progress matching `re`. */
  const count = (results: RunResult[], re: RegExp) => results.reduce((n, r) => n + [...r.stderr.matchAll(re)].length, 0);
  /** How many builds ran (did not take from the cache) the step labelled `text`. */
  const ran = (results: RunResult[], text: string) =>
    results.filter((r) => {
      const id = [...r.stderr.matchAll(/^#(\d+) \[[^\]]*\] (.*)$/gm)].find((m) => m[2] === text)?.[1];
      return id !== undefined && new RegExp(`^#${id} cache miss`, 'm').test(r.stderr);
    }).length;

  beforeAll(async () => {
    work = await makeWorkDir({
      ...Object.fromEntries(Object.entries(DOCKERFILES).map(([k, v]) => [`Dockerfile.${k}`, v])),
      'shared.txt': 'shared\n',
      'b.txt': 'b\n',
    });
    for (const file of Object.keys(DOCKERFILES)) {
      const r = await build(path.join(work.base, `root-alone-${file}`), file, await outDir(`alone-${file}`));
      expect(ok(r)).toEqual({ code: 0, stderr: '' });
      alone.set(file, r.digest!);
    }
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  const files = ['a', 'a', 'b', 'c'];
  const together = async (root: string, round: string) => {
    const results = await Promise.all(files.map(async (file, i) => build(root, file, await outDir(`${round}-${i}`))));
    for (const r of results) expect(ok(r)).toEqual({ code: 0, stderr: '' });
    expect(results.map((r) => r.digest)).toEqual(files.map((f) => alone.get(f)));
    return results;
  };

  test('cold root: all four succeed with their own digests; shared work is done once', async () => {
    const root = path.join(work.base, 'root-shared');
    const results = await together(root, 'cold');
    // The busybox layer: one download (the config and manifests are small and not locked), one unpack.
    expect(count(results, /: downloading [\d.]+ [KM]iB from/g)).toBe(1);
    expect(count(results, /unpacked layer 1\/1/g)).toBe(1);
    // The step all four share ran once; the others waited for it and took its result.
    expect(ran(results, 'COPY shared.txt /shared.txt')).toBe(1);
    expect(ran(results, SHARED_RUN)).toBe(1);
    expect(await leftovers(root)).toEqual([]);
  }, T);

  test('warm root: all four again, every step from the cache, same digests', async () => {
    const root = path.join(work.base, 'root-shared');
    const results = await together(root, 'warm');
    expect(count(results, /cache miss/g)).toBe(0);
    expect(await leftovers(root)).toEqual([]);
  }, T);
});

// Lost updates: six builds at once on one warm --root, each with steps of its own (a build
// arg in a RUN, a file of its own in a COPY) after shared ones. Every shared file under the
// root (cache records, step traces, the context index, image records, snapshot metadata) is
// written whole and renamed, never read-modify-written (docs/reliability.md §5): so no build's
// record may go missing, and every metadata file must parse.
const N = 6;
const OWN = `FROM busybox
COPY shared.txt /shared.txt
RUN cat /shared.txt > /common
ARG N
RUN echo "build $N" > /n
COPY n$N.txt /n.txt
`;

describe('six builds at once on a warm --root: no lost update', () => {
  let work: WorkDir;
  const root = () => path.join(work.base, 'root');
  const build = async (n: string, out: string): Promise<RunResult & { digest?: string }> => {
    const dir = path.join(work.base, out);
    await mkdir(dir, { recursive: true });
    await chown(dir, testEnv().uid, testEnv().gid);
    const r = await runStowage(
      ['build', '--root', root(), '--registry-mirror', `docker.io=${testEnv().registry}`, '--build-arg', `N=${n}`, '--metadata-file', `${dir}/meta.json`, '-o', `${dir}/out.tar`, '.'],
      { cwd: work.dir, timeoutMs: T },
    );
    if (r.code !== 0) return r;
    return { ...r, digest: (JSON.parse(await readFile(`${dir}/meta.json`, 'utf8')) as Record<string, string>)['containerimage.digest']! };
  };
  const ok = (r: RunResult) => ({ code: r.code, stderr: r.code === 0 ? '' : r.stderr });
  const records = async () => (await readdir(path.join(root(), 'cache'))).filter((n) => n.endsWith('.json'));
  const ids = [...Array(N).keys()].map(String);

  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: OWN, 'shared.txt': 'shared\n', 'nw.txt': 'w\n', ...Object.fromEntries(ids.map((i) => [`n${i}.txt`, `${i}\n`])) });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('each build\'s records are kept; a second round is all cached with the same digests; all metadata parses', async () => {
    // Warm: the base pulled and the shared steps cached.
    const warm = await build('w', 'warm');
    expect(ok(warm)).toEqual({ code: 0, stderr: '' });
    const before = await records();

    const first = await Promise.all(ids.map((i) => build(i, `first-${i}`)));
    for (const r of first) expect(ok(r)).toEqual({ code: 0, stderr: '' });
    // Shared steps were hits; each build missed exactly its own two steps (RUN echo, COPY n$N.txt).
    for (const r of first) expect([...r.stderr.matchAll(/cache miss/g)]).toHaveLength(2);
    const digests = first.map((r) => r.digest);
    expect(new Set(digests).size).toBe(N);
    // Two records per build, none lost to another build's write.
    expect((await records()).length).toBe(before.length + 2 * N);

    const again = await Promise.all(ids.map((i) => build(i, `again-${i}`)));
    for (const r of again) expect(ok(r)).toEqual({ code: 0, stderr: '' });
    for (const r of again) expect(r.stderr).not.toMatch(/cache miss/);
    expect(again.map((r) => r.digest)).toEqual(digests);

    // Every metadata file under the root is whole JSON.
    const files = await metadataFiles(root());
    expect(files.length).toBeGreaterThan(2 * N);
    const broken: string[] = [];
    for (const f of files) await readFile(f, 'utf8').then((t) => JSON.parse(t), () => broken.push(f)).catch(() => broken.push(f));
    expect(broken).toEqual([]);
    // The context index holds every file of the context (each build wrote it whole).
    const [index] = await readdir(path.join(root(), 'cache', 'contexts'));
    const indexed = (JSON.parse(await readFile(path.join(root(), 'cache', 'contexts', index!), 'utf8')) as { entries: [string, unknown][] }).entries.map(([p]) => p);
    expect(indexed.sort()).toEqual((await readdir(work.dir)).sort());
    expect(await leftovers(root())).toEqual([]);
  }, T);
});

/** JSON files of the build cache (records, traces, context indexes), image records and snapshot metadata. */
async function metadataFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(dir, e.name);
      if (e.isDirectory() && depth > 0 && e.name !== 'fs' && e.name !== 'tree') await walk(p, depth - 1);
      else if (e.isFile() && e.name.endsWith('.json')) out.push(p);
    }
  };
  await walk(path.join(root, 'cache'), 1);
  await walk(path.join(root, 'images'), 0);
  await walk(path.join(root, 'snapshots', 'committed'), 1);
  return out;
}
