// Four builds at once on one --root: two of the same Dockerfile, two others
// sharing its base image and first steps. Cold, then warm, every build
// succeeds with the digest it has when built alone; the shared work is done
// once (one download of the base layer, one unpack, one run of each shared
// step: the others wait on its lock and reuse the result), and the root is
// left clean.
import { chown, mkdir, readFile } from 'node:fs/promises';
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
