import { stepBounds } from '../../src/runtime/bounds.js';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IgnoreMatcher } from '../../src/engine/dockerignore.js';
import { RunMounts, type PrepareOptions } from '../../src/engine/run-mounts.js';
import { SecretStore } from '../../src/engine/secrets.js';
import { BuildError } from '../../src/errors.js';

let base: string;
let mounts: RunMounts;

const prep: PrepareOptions = {
  expand: (v) => v.replace('$DIR', 'expanded'),
  workdir: '/work',
  resolveFrom: async (from) => {
    if (from === 'stage') return { snapshot: undefined, identity: 'sha256:stagechain' };
    throw new Error(`unexpected from ${from}`);
  },
};

function make(secretValue: string, ignore: string[] = ['hidden.txt']): RunMounts {
  return new RunMounts({
    contextDir: join(base, 'ctx'),
    ignore: new IgnoreMatcher(ignore),
    buildTmp: join(base, 'tmp'),
    cacheRoot: join(base, 'cache-mounts'),
    // Only `from` stages with a snapshot need views; none here.
    snapshots: undefined as never,
    secrets: new SecretStore([{ id: 'tok', env: 'TOKEN' }], { TOKEN: secretValue }),
  });
}

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'stowage-runmounts-'));
  await mkdir(join(base, 'ctx', 'src'), { recursive: true });
  await mkdir(join(base, 'tmp'));
  await writeFile(join(base, 'ctx', 'src', 'a.txt'), 'a');
  await writeFile(join(base, 'ctx', 'hidden.txt'), 'h');
  mounts = make('value-one');
});

afterEach(async () => {
  await mounts.close();
  await rm(base, { recursive: true, force: true });
});

async function failure(p: Promise<unknown>): Promise<BuildError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BuildError);
    return err as BuildError;
  }
  throw new Error('expected an error');
}

describe('RunMounts', () => {
  test('key inputs: type, target, options, source identity; a secret by id, never its value', async () => {
    const specs = [
      'type=cache,target=cache,sharing=locked',
      'type=bind,source=src,target=/src',
      'type=bind,from=stage,target=/s,rw',
      'type=secret,id=tok,env=TOKEN',
      'type=tmpfs,target=/t,size=1k',
    ];
    const one = await mounts.prepare(specs, prep);
    const two = await make('value-two').prepare(specs, prep);
    expect(one.keyInputs).toEqual(two.keyInputs);
    expect(JSON.stringify(one.keyInputs)).not.toMatch(/value-one/);
    expect(one.keyInputs[0]).toEqual({ type: 'cache', target: '/work/cache', id: '/work/cache', sharing: 'locked', mode: 0o755, uid: 0, gid: 0, readonly: false });
    expect(one.keyInputs[1]).toMatchObject({ type: 'bind', target: '/src', source: 'src', readonly: true, from: expect.stringMatching(/^sha256:/) });
    expect(one.keyInputs[2]).toMatchObject({ type: 'bind', from: 'sha256:stagechain', readonly: false });
    expect(one.keyInputs[3]).toEqual({ type: 'secret', id: 'tok', env: 'TOKEN', required: false, mode: 0o400, uid: 0, gid: 0 });
    expect(one.keyInputs[4]).toEqual({ type: 'tmpfs', target: '/t', size: 1024, readonly: false });
    await one.release();
    await two.release();
  });

  test('a context bind is keyed by the content it shows: a changed file changes the key', async () => {
    const before = await mounts.prepare(['target=/ctx'], prep);
    await writeFile(join(base, 'ctx', 'hidden.txt'), 'ignored change');
    const ignoredChange = await mounts.prepare(['target=/ctx'], prep);
    await writeFile(join(base, 'ctx', 'src', 'a.txt'), 'b');
    const after = await mounts.prepare(['target=/ctx'], prep);
    expect(ignoredChange.keyInputs).toEqual(before.keyInputs);
    expect(after.keyInputs).not.toEqual(before.keyInputs);
    for (const p of [before, ignoredChange, after]) await p.release();
  });

  test('context binds: a staged copy when .dockerignore filters or rw; the context itself, read-only, otherwise', async () => {
    const filtered = await mounts.prepare(['target=/a', 'source=src,target=/b,rw'], prep);
    const staged = await filtered.activate(() => undefined);
    for (const m of staged.mounts) expect(m.source!.startsWith(join(base, 'tmp'))).toBe(true);
    expect(staged.mounts.map((m) => m.options)).toEqual([['rbind', 'ro'], ['rbind', 'rw']]);
    await staged.release();
    await filtered.release();
    const plain = make('v', []);
    const direct = await plain.prepare(['source=src,target=/a'], prep);
    const active = await direct.activate(() => undefined);
    expect(active.mounts).toEqual([{ destination: '/a', type: 'bind', source: join(base, 'ctx', 'src'), options: ['rbind', 'ro'] }]);
    await active.release();
    await direct.release();
    expect(await readFile(join(base, 'ctx', 'src', 'a.txt'), 'utf8')).toBe('a');
  });

  test('the same locked cache twice in one step: one lease, no deadlock', async () => {
    const prepared = await mounts.prepare(['type=cache,id=x,target=/a,sharing=locked', 'type=cache,id=x,target=/b,sharing=locked'], prep);
    const active = await prepared.activate(() => undefined);
    expect(active.mounts.map((m) => m.destination)).toEqual(['/a', '/b']);
    expect(active.mounts[0]!.source).toBe(active.mounts[1]!.source);
    await active.release();
    // Released: a later step gets the lock at once.
    const again = await (await mounts.prepare(['type=cache,id=x,target=/a,sharing=locked'], prep)).activate(() => undefined);
    await again.release();
  });

  test('mounts come out parents first; tmpfs options, a size always (the default when none is given)', async () => {
    const prepared = await mounts.prepare(['type=tmpfs,target=/a/b/c', 'type=tmpfs,target=/a,size=2k,ro'], prep);
    const active = await prepared.activate(() => undefined);
    expect(active.mounts).toEqual([
      { destination: '/a', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=2048', 'ro'] },
      { destination: '/a/b/c', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', `size=${stepBounds().tmpfsBytes}`] },
    ]);
    await active.release();
  });

  test('errors: bad specs quote the spec; duplicate targets; ssh; a missing required secret names its id', async () => {
    expect((await failure(mounts.prepare(['type=cache,target=/x,colour=blue'], prep))).message).toBe('RUN --mount=type=cache,target=/x,colour=blue: unknown mount option "colour" (known: type, from, source, src, target, dst, destination, readonly, ro, readwrite, rw, required, size, id, sharing, mode, uid, gid, env)');
    expect((await failure(mounts.prepare(['type=tmpfs,target=/x', 'type=cache,target=/x'], prep))).message).toMatch(/target \/x is mounted more than once/);
    expect((await failure(mounts.prepare(['type=ssh'], prep))).code).toBe('E_NOT_SUPPORTED');
    const missing = await failure(mounts.prepare(['type=secret,id=other,required'], prep));
    expect(missing.code).toBe('E_INSTRUCTION');
    expect(missing.message).toMatch(/secret "other" is required but was not given/);
    expect((await failure(mounts.prepare(['type=bind,source=../x,target=/x'], prep))).message).toMatch(/outside the build context/);
    expect((await failure(mounts.prepare(['type=bind,source=hidden.txt,target=/x'], prep))).message).toMatch(/excluded by .dockerignore/);
  });
});
