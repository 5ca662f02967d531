// The programmatic API, `import { build } from '@stowage/builder'`, called by
// a script the unprivileged user runs: it gets the events and the image's
// digest; an AbortController stops a build in the middle of a RUN quickly
// and leaves no container; a failing RUN rejects with BuildFailedError and
// its Dockerfile line.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { buildSync } from 'esbuild';
import { makeWorkDir, repoRoot, run, runAsUser, skopeoInspect, testEnv, type WorkDir } from '../lib/index.js';

const T = 300_000;

/**
 * The script imports the built package by its name. It is bundled (with the
 * package) into the work dir because the checkout may sit where the test user
 * cannot read; the CLI it runs is the copy testEnv() made for the user.
 */
const SCRIPT = `
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { build, BuildFailedError, AbortError } from '@stowage/builder';

const [mode, cli, context, root, registry, out] = process.argv.slice(2);
const base = { cli, context, root, registryMirrors: { 'docker.io': [registry] } };
const print = (v) => process.stdout.write(JSON.stringify(v) + '\\n');

if (mode === 'ok') {
  const events = [];
  const result = await build({ ...base, tags: ['api-test:1'], outputs: [{ type: 'oci', dest: out }], onEvent: (e) => events.push(e) });
  print({ result, events, resultIsTyped: typeof result.durationMs === 'number' });
} else if (mode === 'abort') {
  const ac = new AbortController();
  let abortedAt = 0;
  let runcDirs = [];
  try {
    await build({ ...base, signal: ac.signal, onEvent: (e) => {
      if (e.type === 'step.log' && e.line === 'sleeping' && !abortedAt) {
        // Where runc keeps this build's containers, seen while the RUN is alive.
        runcDirs = readdirSync(join(root, 'tmp')).map((d) => join(root, 'tmp', d, 'runc')).filter((d) => existsSync(d));
        abortedAt = Date.now();
        ac.abort();
      }
    } });
    print({ resolved: true });
  } catch (err) {
    print({ name: err.name, code: err.code, isAbortError: err instanceof AbortError, ms: Date.now() - abortedAt, runcDirs });
  }
} else if (mode === 'fail') {
  try {
    await build(base);
    print({ resolved: true });
  } catch (err) {
    print({ isBuildFailed: err instanceof BuildFailedError, name: err.name, code: err.code, exitCode: err.exitCode, file: err.file, line: err.line, location: err.location?.(), message: err.message });
  }
}
`;

function bundleScript(outfile: string): void {
  buildSync({
    stdin: { contents: SCRIPT, resolveDir: path.join(repoRoot, 'test'), sourcefile: 'api-script.mjs', loader: 'js' },
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    logLevel: 'warning',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
}

describe('build() API', () => {
  let script: string;
  const works: WorkDir[] = [];
  const call = async (mode: string, work: WorkDir, out = '') => {
    const e = testEnv();
    const r = await runAsUser([e.nodePath, script, mode, e.cliPath, work.dir, work.root, e.registry, out], { cwd: work.base, timeoutMs: T });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    return JSON.parse(r.stdout) as Record<string, any>;
  };
  const workDir = async (dockerfile: string) => {
    const w = await makeWorkDir({ Dockerfile: dockerfile });
    works.push(w);
    return w;
  };

  beforeAll(async () => {
    const scriptDir = await workDir('');
    script = path.join(scriptDir.base, 'api-script.mjs');
    bundleScript(script);
    await run(['chmod', '0644', script]);
  }, T);
  afterAll(async () => {
    for (const w of works) await w.rm();
  }, T);

  test('build() resolves with the digest skopeo sees, the config digest, size and outputs; onEvent gets every event', async () => {
    const work = await workDir('FROM busybox\nRUN echo from-run && echo x > /f\n');
    const out = path.join(work.base, 'api.tar');
    const { result, events, resultIsTyped } = await call('ok', work, out);
    expect(resultIsTyped).toBe(true);
    const inspected = await skopeoInspect(out);
    const config = await skopeoInspect(out, { config: true });
    expect(result.digest).toBe(inspected.Digest);
    expect(result.configDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(result.outputs).toEqual([{ type: 'oci', dest: out }]);
    expect(result.size).toBeGreaterThan(1000);
    expect(config.rootfs.diff_ids).toHaveLength(2);
    const types = new Set(events.map((e: { type: string }) => e.type));
    for (const t of ['step.start', 'step.log', 'step.end', 'summary']) expect(types).toContain(t);
    expect(events.filter((e: { type: string }) => e.type === 'step.start').length).toBe(events.filter((e: { type: string }) => e.type === 'step.end').length);
    expect(events.at(-1)).toMatchObject({ type: 'summary', digest: result.digest, size: result.size });
    expect(events.some((e: { type: string; line?: string }) => e.type === 'step.log' && e.line === 'from-run')).toBe(true);
  }, T);

  test('aborting mid-RUN rejects with AbortError within seconds and leaves no container or scratch space', async () => {
    const work = await workDir('FROM busybox\nRUN echo sleeping && sleep 30\n');
    const r = await call('abort', work);
    expect(r).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR', isAbortError: true });
    expect(r.ms).toBeLessThan(5000);
    expect(r.runcDirs.length).toBeGreaterThan(0);
    expect(await readdir(path.join(work.root, 'tmp'))).toEqual([]);
    // Gone with the build's scratch space; `runc list` would create a missing root, so only an existing one is asked.
    for (const dir of r.runcDirs as string[]) {
      if (!existsSync(dir)) continue;
      const list = await run(['runc', '--root', dir, 'list', '-q']);
      expect({ code: list.code, containers: list.stdout.trim() }).toEqual({ code: 0, containers: '' });
    }
    expect(spawnSync('pgrep', ['-u', String(testEnv().uid), '-f', 'sleep 30'], { encoding: 'utf8' }).stdout.trim()).toBe('');
  }, T);

  test('a failing RUN rejects with BuildFailedError carrying exit code, error code and the Dockerfile line', async () => {
    const work = await workDir('FROM busybox\nRUN true\nRUN echo bad >&2 && exit 3\n');
    const r = await call('fail', work);
    expect(r).toMatchObject({
      isBuildFailed: true,
      name: 'BuildFailedError',
      code: 'E_RUN_FAILED',
      exitCode: 1,
      file: 'Dockerfile',
      line: 3,
      location: 'Dockerfile:3',
      message: expect.stringMatching(/exit code 3/),
    });
  }, T);
});
