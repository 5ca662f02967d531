// Resource bounds: a build that copies a big file into a new layer, exports
// it and pushes it, the push of that archive by `stowage push`, and a build
// FROM the pushed image on an empty --root (pull, unpack, export), each keep
// the peak RSS of stowage's processes under 150 MB. The layer is STOWAGE_TEST_BIG_LAYER_MB megabytes
// (256 by default; 1024 for the 1 GB figure), part random so that
// gzip works on it as on a real layer.
//
// Peak RSS is GNU time's maxrss, as scripts/bench measures it: wait4()'s
// figure for the child covers every descendant that was waited for, so the
// CLI's re-exec inside the user namespace (a grandchild: unshare, then node)
// is included. A calibration test checks exactly that.
import { createCipheriv, createHash } from 'node:crypto';
import { open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeWorkDir, runAsUser, skopeoInspect, startScratchRegistry, testEnv, type RunResult, type ScratchRegistry, type WorkDir } from '../lib/index.js';

const BIG_MB = Number(process.env.STOWAGE_TEST_BIG_LAYER_MB || 256);
const LIMIT_MB = 150;
/** Below this the figure cannot be a build's inner process (Node alone is about 40 MB): the wrong process was measured. */
const FLOOR_MB = 40;
const T = Math.max(300_000, BIG_MB * 1000);

/**
 * BIG_MB megabytes, written 1 MiB at a time: 40 % AES-CTR output
 * (incompressible), 60 % repeated text, like scripts/bench.d/make-tree.mjs.
 */
async function writeBigFile(file: string): Promise<void> {
  const key = createHash('sha256').update('stowage resources test').digest().subarray(0, 16);
  const prng = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const text = Buffer.from('layer snapshot registry digest manifest overlay stream buffer cache image build step\n');
  const chunk = Buffer.alloc(1 << 20);
  const randomPart = Math.floor(chunk.length * 0.4);
  for (let at = randomPart; at < chunk.length; at += text.length) text.copy(chunk, at);
  const fh = await open(file, 'w', 0o644);
  try {
    for (let i = 0; i < BIG_MB; i++) {
      prng.update(Buffer.alloc(randomPart)).copy(chunk, 0);
      await fh.write(chunk);
    }
  } finally {
    await fh.close();
  }
}

interface Measured extends RunResult {
  /** Peak RSS of the largest process of the command's tree, MB. */
  peakMB: number;
}

let seq = 0;
/** The CLI as the test user under /usr/bin/time (no --enable-source-maps: measured as it is run). */
async function measuredStowage(work: WorkDir, args: string[], env: Record<string, string> = {}): Promise<Measured> {
  const e = testEnv();
  const timeFile = path.join(work.base, `time-${++seq}.txt`);
  const r = await runAsUser(['/usr/bin/time', '-f', 'maxrss=%M', '-o', timeFile, e.nodePath, e.cliPath, ...args], { cwd: work.dir, env, timeoutMs: T });
  const text = await readFile(timeFile, 'utf8').catch(() => '');
  const kb = /maxrss=(\d+)/.exec(text)?.[1];
  if (kb === undefined) throw new Error(`no maxrss from /usr/bin/time in ${timeFile}: ${JSON.stringify(text)}\n${r.stderr}`);
  return { ...r, peakMB: Number(kb) / 1024 };
}

const ok = (r: RunResult) => ({ code: r.code, stderr: r.code === 0 ? '' : r.stderr });

describe(`resource bounds (${BIG_MB} MB layer)`, () => {
  let work: WorkDir;
  let registry: ScratchRegistry;
  let ref: string;
  let copyLayers: string[] = [];

  beforeAll(async () => {
    work = await makeWorkDir({
      'copy.Dockerfile': 'FROM scratch\nCOPY big /big\n',
      'small.Dockerfile': 'FROM scratch\nCOPY small /small\n',
      small: 'small\n',
    });
    await writeBigFile(work.path('big'));
    const { uid, gid } = testEnv();
    const { chown } = await import('node:fs/promises');
    await chown(work.path('big'), uid, gid);
    registry = await startScratchRegistry();
    ref = `${registry.host}/resources/big:1`;
  }, T);
  afterAll(async () => {
    await registry?.stop();
    await work?.rm();
  }, T);

  test('the measurement covers the build inside the user namespace', async () => {
    // 200 MB touched by the re-executed process only (it alone has STOWAGE_USERNS_MODE).
    const balloon = path.join(work.base, 'balloon.cjs');
    await writeFile(balloon, "if (process.env.STOWAGE_USERNS_MODE) globalThis.balloon = Buffer.alloc(200 * 1024 * 1024, 1);\n", { mode: 0o644 });
    const args = ['build', '--root', path.join(work.base, 'root-calibrate'), '--progress', 'plain', '-f', 'small.Dockerfile', '.'];
    const inflated = await measuredStowage(work, args, { NODE_OPTIONS: `--require ${balloon}` });
    expect(ok(inflated)).toEqual({ code: 0, stderr: '' });
    expect(inflated.peakMB).toBeGreaterThan(200);
    const plain = await measuredStowage(work, args);
    expect(ok(plain)).toEqual({ code: 0, stderr: '' });
    expect(plain.peakMB).toBeLessThan(200);
    expect(plain.peakMB).toBeGreaterThan(FLOOR_MB);
  }, T);

  test(`COPY of ${BIG_MB} MB into a new layer, OCI export and push (-o type=registry), then \`stowage push\` of the archive: peak RSS < ${LIMIT_MB} MB each`, async () => {
    const out = path.join(work.base, 'copy.tar');
    const r = await measuredStowage(work, ['build', '--root', work.root, '--progress', 'plain', '-f', 'copy.Dockerfile', '-o', `type=oci,dest=${out}`, '-o', `type=registry,name=${ref}`, '.']);
    expect(ok(r)).toEqual({ code: 0, stderr: '' });
    expect(r.stderr).toMatch(/blobs: 2 uploaded/);
    const manifest = await skopeoInspect(out, { raw: true });
    copyLayers = manifest.layers.map((l: { digest: string }) => l.digest);
    expect(copyLayers).toHaveLength(1);
    // Part random: the compressed layer is well over a third of the file.
    expect(manifest.layers[0].size).toBeGreaterThan(BIG_MB * 0.35 * 1024 * 1024);
    // Another repository: the layer is uploaded again, from the archive this time.
    const pushed = await measuredStowage(work, ['push', out, `${registry.host}/resources/archive:1`]);
    expect(ok(pushed)).toEqual({ code: 0, stderr: '' });
    expect(pushed.stderr).toMatch(/blobs: 2 uploaded/);
    process.stderr.write(`resources: COPY ${BIG_MB} MB + OCI export + push: peak RSS ${r.peakMB.toFixed(1)} MB; push of the archive: ${pushed.peakMB.toFixed(1)} MB\n`);
    for (const m of [r, pushed]) {
      expect(m.peakMB).toBeGreaterThan(FLOOR_MB);
      expect(m.peakMB).toBeLessThan(LIMIT_MB);
    }
    await rm(out, { force: true });
  }, T);

  test(`FROM the image on an empty --root (pull, unpack, OCI export of the ${BIG_MB} MB layer): peak RSS < ${LIMIT_MB} MB`, async () => {
    expect(copyLayers).toHaveLength(1); // the previous test pushed the image
    await writeFile(work.path('pull.Dockerfile'), `FROM ${ref}\nLABEL resources=pull\n`);
    const root = path.join(work.base, 'root-pull');
    const out = path.join(work.base, 'pull.tar');
    const r = await measuredStowage(work, ['build', '--root', root, '--progress', 'plain', '-f', 'pull.Dockerfile', '-o', `type=oci,dest=${out}`, '.']);
    expect(ok(r)).toEqual({ code: 0, stderr: '' });
    process.stderr.write(`resources: FROM a ${BIG_MB} MB layer, pull + unpack + export: peak RSS ${r.peakMB.toFixed(1)} MB\n`);
    expect(r.stderr).toMatch(/unpacked layer 1\/1 sha256:/);
    expect(r.peakMB).toBeGreaterThan(FLOOR_MB);
    expect(r.peakMB).toBeLessThan(LIMIT_MB);
    const manifest = await skopeoInspect(out, { raw: true });
    expect(manifest.layers.map((l: { digest: string }) => l.digest)).toEqual(copyLayers);
    await rm(out, { force: true });
  }, T);
});
