// SOURCE_DATE_EPOCH makes a build reproducible: the same Dockerfile, context
// and base image give the same image digest on two different --roots, with
// `created` and every layer mtime clamped to the epoch.
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

describe('reproducible builds with SOURCE_DATE_EPOCH', () => {
  let work: WorkDir;
  beforeAll(async () => {
    work = await makeWorkDir({ Dockerfile: DOCKERFILE, 'file.txt': 'data\n' });
  }, T);
  afterAll(async () => {
    await work?.rm();
  }, T);

  test('two roots, one digest; created and mtimes clamped', async () => {
    const digests: string[] = [];
    for (const name of ['one', 'two']) {
      const r = await runStowage(['build', '--root', path.join(work.base, `root-${name}`), '--registry-mirror', `docker.io=${testEnv().registry}`,
        '--iidfile', `${name}.iid`, '--metadata-file', `${name}.json`, '-o', `${name}.tar`, '.'], { cwd: work.dir, timeoutMs: T, env: { SOURCE_DATE_EPOCH: String(EPOCH) } });
      expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
      const meta = JSON.parse(await readFile(work.path(`${name}.json`), 'utf8')) as Record<string, string>;
      digests.push(`${await readFile(work.path(`${name}.iid`), 'utf8')} ${meta['containerimage.digest']}`);
    }
    expect(digests[0]).toBe(digests[1]);
    const img = await unpackOciTar(work.path('one.tar'), path.join(work.base, 'layout'));
    expect(img.config.created).toBe(new Date(EPOCH * 1000).toISOString());
    for (const layer of img.layers) for (const e of layer.entries) expect(e.mtime!.getTime() / 1000).toBeLessThanOrEqual(EPOCH);
  }, T);
});
