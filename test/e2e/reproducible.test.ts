// Builds are reproducible: the same Dockerfile, context and base image give
// the same image digest on two different --roots, by default (every time is
// 1970-01-01) and with SOURCE_DATE_EPOCH (env or build arg), which sets
// `created` and clamps every layer mtime.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { makeWorkDir, runStowage, testEnv, unpackOciTar, type WorkDir } from '../lib/index.js';

const T = 300_000;
const EPOCH = 1_700_000_000;

const DOCKERFILE = `FROM busybox AS b
RUN echo built > /x && mkdir -p /d && touch /d/f
COPY <<EOF /h.txt
heredoc
EOF
FROM scratch
COPY --from=b /x /d /h.txt /out/
COPY file.txt /file.txt
`;

describe('reproducible builds', () => {
  let work: WorkDir;
  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: DOCKERFILE, 'file.txt': 'data\n' });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  const buildTwice = async (tag: string, extra: string[], env: Record<string, string>): Promise<string[]> => {
    const digests: string[] = [];
    for (const name of [`${tag}-one`, `${tag}-two`]) {
      const r = await runStowage(['build', '--root', path.join(work.base, `root-${name}`), '--registry-mirror', `docker.io=${testEnv().registry}`,
        '--iidfile', `${name}.iid`, '--metadata-file', `${name}.json`, ...extra, '-o', `${name}.tar`, '.'], { cwd: work.dir, timeoutMs: T, env });
      expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
      const meta = JSON.parse(await readFile(work.path(`${name}.json`), 'utf8')) as Record<string, string>;
      digests.push(`${await readFile(work.path(`${name}.iid`), 'utf8')} ${meta['containerimage.digest']}`);
    }
    return digests;
  };

  test('SOURCE_DATE_EPOCH in the environment: two roots, one digest; created and mtimes clamped', async () => {
    const digests = await buildTwice('env', [], { SOURCE_DATE_EPOCH: String(EPOCH) });
    expect(digests[0]).toBe(digests[1]);
    const img = await unpackOciTar(work.path('env-one.tar'), path.join(work.base, 'layout-env'));
    expect(img.config.created).toBe(new Date(EPOCH * 1000).toISOString());
    for (const layer of img.layers) for (const e of layer.entries) expect(e.mtime!.getTime() / 1000).toBeLessThanOrEqual(EPOCH);
  }, T);

  test('SOURCE_DATE_EPOCH as a build arg does the same, with no unused-argument warning', async () => {
    const digests = await buildTwice('arg', ['--build-arg', `SOURCE_DATE_EPOCH=${EPOCH}`], {});
    expect(digests[0]).toBe(digests[1]);
    expect(await readFile(work.path('arg-one.iid'), 'utf8')).toBe(await readFile(work.path('env-one.iid'), 'utf8'));
  }, T);

  test('by default: two roots, one digest, every time at 1970-01-01', async () => {
    const digests = await buildTwice('default', [], {});
    expect(digests[0]).toBe(digests[1]);
    const img = await unpackOciTar(work.path('default-one.tar'), path.join(work.base, 'layout-default'));
    expect(img.config.created).toBe('1970-01-01T00:00:00.000Z');
    for (const layer of img.layers) for (const e of layer.entries) expect(e.mtime!.getTime()).toBe(0);
  }, T);

  test('a malformed SOURCE_DATE_EPOCH is refused', async () => {
    const r = await runStowage(['build', '--root', path.join(work.base, 'root-bad'), '-o', 'bad.tar', '.'], { cwd: work.dir, timeoutMs: T, env: { SOURCE_DATE_EPOCH: 'yesterday' } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/SOURCE_DATE_EPOCH=yesterday: expected whole seconds since 1970/);
  }, T);
});
