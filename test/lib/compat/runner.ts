// Runs compatibility cases: each case's context is prepared once, then built by BuildKit
// (scripts/buildkit build, as root) and by stowage (as the unprivileged test user) at the
// same time, and the results are compared (compare.ts).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { testEnv } from '../env.js';
import { runImage } from '../oci.js';
import { run, runStowage } from '../proc.js';
import { chownTree, removeTree, scratchParent } from '../workdir.js';
import { applyListing, configDifferences, compareRootfs, markdownAnchors, type Difference } from './compare.js';
import { innerConfig, readOciTarConfig } from './config.js';
import { baseImageRefs, mirrorRef, type CompatCase } from './corpus.js';
import { indexFromJson, indexRootfs, indexToJson, type RootfsIndex, type RootfsIndexJson } from './rootfs.js';

export type CaseResultKind =
  | 'identical'
  | 'listed-diff'
  | 'DIFFERENT'
  | 'stowage-failed'
  | 'buildkit-failed'
  | 'both-fail'
  | 'stale-listing'
  | 'case-error'
  | 'harness-error';

export interface RunOutcome {
  stdout: string;
  stderr: string;
  code: number | null;
  /** How the image was run. */
  via: string;
  /** Wall time of unpacking + running. */
  seconds?: number;
}

export interface SideResult {
  ok: boolean;
  /** Wall time of the build (for a cached oracle result: the time it took when it was built). */
  seconds: number;
  cached?: boolean;
  /** Last lines of the build output when it failed. */
  error?: string;
  run?: RunOutcome;
}

export interface CaseResult {
  name: string;
  group: string;
  dir: string;
  result: CaseResultKind;
  pass: boolean;
  slow: boolean;
  expectFailure: boolean;
  buildkit: SideResult;
  stowage: SideResult;
  /** Every difference found; listed ones carry `listed`. */
  differences: Difference[];
  /** Stale listings, bad `why`s, case.json errors, prepare failures, harness errors. */
  problems: string[];
  seconds: number;
  /** The case's scratch directory when kept (--keep). */
  tempDir?: string;
}

export interface HarnessOptions {
  /** Cases built at once (each runs both builders concurrently). Default 2. */
  concurrency?: number;
  /** Take BuildKit's result from the oracle cache when it has one (default true); fresh results are always stored. */
  cache?: boolean;
  /** Build with BuildKit from scratch: neither the oracle cache nor BuildKit's own build cache. */
  cold?: boolean;
  /** Keep each case's scratch directory. */
  keep?: boolean;
  /** Progress lines (one per finished case). */
  log?: (line: string) => void;
}

const CACHE_VERSION = 'compat-cache-v2';
const TAIL_LINES = 40;
const tail = (s: string, n = TAIL_LINES) => s.trimEnd().split('\n').slice(-n).join('\n');
const secs = (t0: number) => Math.round((Date.now() - t0) / 100) / 10;

export function buildkitScript(): string {
  return path.join(testEnv().repoRoot, 'scripts', 'buildkit');
}

/** `scripts/buildkit start` (idempotent); throws with its output when it fails. */
export async function startOracle(): Promise<{ seconds: number; version: string }> {
  const t0 = Date.now();
  const r = await run(['bash', buildkitScript(), 'start'], { timeoutMs: 180_000 });
  if (r.code !== 0) throw new Error(`scripts/buildkit start failed (exit ${r.code}):\n${tail(r.stderr + r.stdout)}`);
  return { seconds: secs(t0), version: await oracleVersion() };
}

let versionMemo: string | undefined;
export async function oracleVersion(): Promise<string> {
  if (versionMemo) return versionMemo;
  const r = await run(['bash', buildkitScript(), 'version'], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`scripts/buildkit version failed: ${r.stderr}`);
  versionMemo = r.stdout.trim();
  return versionMemo;
}

function docker(args: string[], timeoutMs = 120_000) {
  return run(['bash', buildkitScript(), 'docker', ...args], { timeoutMs });
}

// ----------------------------------------------------------------------- cache

function cacheRoot(): string {
  return path.join(testEnv().stateDir, 'compat-cache');
}

/**
 * sha256 over a directory tree as a build sees it: names, types, modes, owners, contents,
 * symlink targets (not mtimes), and xattrs (getfattr) when ATTRS.
 */
async function hashTree(dir: string, attrs: boolean): Promise<string> {
  const h = createHash('sha256');
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = path.join(rel, name);
      const p = path.join(dir, r);
      const st = fs.lstatSync(p);
      h.update(`${JSON.stringify(r)} ${st.mode} ${st.uid}:${st.gid} ${st.nlink}\n`);
      if (st.isSymbolicLink()) h.update(fs.readlinkSync(p));
      else if (st.isFile()) h.update(fs.readFileSync(p));
      else if (st.isDirectory()) walk(r);
      h.update('\0');
    }
  };
  walk('');
  if (attrs) {
    const r = await run(['getfattr', '-R', '-h', '-d', '-m', '-', '-e', 'hex', '.'], { cwd: dir, timeoutMs: 60_000 });
    h.update(`xattrs ${r.code === 0 || r.code === 1 ? r.stdout : `getfattr failed ${r.code}`}`);
  }
  return h.digest('hex');
}

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

async function registryDigest(registry: string, repo: string, reference: string): Promise<string> {
  try {
    const r = await fetch(`http://${registry}/v2/${repo}/manifests/${reference}`, {
      method: 'HEAD',
      headers: { Accept: MANIFEST_ACCEPT },
      signal: AbortSignal.timeout(10_000),
    });
    return r.ok ? (r.headers.get('docker-content-digest') ?? 'no-digest') : `http-${r.status}`;
  } catch (e) {
    return `error:${(e as Error).message}`;
  }
}

/** Every library/* tag's digest on the loopback registry (for Dockerfiles whose base images cannot be read off). */
async function allFixtureDigests(registry: string): Promise<string[]> {
  const out: string[] = [];
  try {
    const cat = (await (await fetch(`http://${registry}/v2/_catalog?n=1000`, { signal: AbortSignal.timeout(10_000) })).json()) as { repositories?: string[] };
    for (const repo of (cat.repositories ?? []).filter((r) => r.startsWith('library/')).sort()) {
      const tags = (await (await fetch(`http://${registry}/v2/${repo}/tags/list`, { signal: AbortSignal.timeout(10_000) })).json()) as { tags?: string[] };
      for (const t of (tags.tags ?? []).sort()) out.push(`${repo}:${t}=${await registryDigest(registry, repo, t)}`);
    }
  } catch (e) {
    out.push(`catalog-error:${(e as Error).message}`);
  }
  return out;
}

/**
 * The oracle cache key of a case: its Dockerfile and case.json, the prepared context in
 * BASE/ctx (after `prepare`: a prepare whose output varies, e.g. a tar with the current
 * mtimes in it, makes a new key each time, so it never reuses a stale result), the digests
 * the loopback registry serves for the images the Dockerfile names, the docker/BuildKit
 * version and scripts/buildkit itself.
 */
export async function oracleCacheKey(c: CompatCase, base: string): Promise<string> {
  const e = testEnv();
  const h = createHash('sha256');
  h.update(`${CACHE_VERSION}\n${await oracleVersion()}\n`);
  h.update(fs.readFileSync(buildkitScript()));
  h.update(fs.readFileSync(path.join(c.dir, 'Dockerfile')));
  h.update(JSON.stringify(c.spec));
  for (const f of ['Dockerfile.dockerignore']) if (fs.existsSync(path.join(c.dir, f))) h.update(fs.readFileSync(path.join(c.dir, f)));
  h.update(await hashTree(path.join(base, 'ctx'), true));
  const refs = baseImageRefs(fs.readFileSync(path.join(c.dir, 'Dockerfile'), 'utf8'), c.spec.buildArgs ?? {});
  for (const ref of refs) {
    const m = mirrorRef(ref);
    if (ref.includes('$') || !m) {
      h.update(`unresolved ${ref}\n${(await allFixtureDigests(e.registry)).join('\n')}\n`);
      continue;
    }
    h.update(`${ref}=${await registryDigest(e.registry, m.repo, m.reference)}\n`);
  }
  return h.digest('hex');
}

interface CachedOracle {
  ok: boolean;
  seconds: number;
  error?: string;
  config?: unknown;
  run?: RunOutcome;
}

async function cacheGet(key: string): Promise<{ meta: CachedOracle; index?: RootfsIndex } | undefined> {
  const dir = path.join(cacheRoot(), key);
  try {
    const meta = JSON.parse(await fsp.readFile(path.join(dir, 'meta.json'), 'utf8')) as CachedOracle;
    const index = meta.ok ? indexFromJson(JSON.parse(await fsp.readFile(path.join(dir, 'index.json'), 'utf8')) as RootfsIndexJson) : undefined;
    const now = new Date();
    await fsp.utimes(dir, now, now).catch(() => undefined);
    return index ? { meta, index } : { meta };
  } catch {
    return undefined;
  }
}

async function cachePut(key: string, meta: CachedOracle, index: RootfsIndex | undefined, buildLog: string | undefined): Promise<void> {
  const root = cacheRoot();
  await fsp.mkdir(root, { recursive: true });
  const tmp = await fsp.mkdtemp(path.join(root, '.tmp-'));
  await fsp.writeFile(path.join(tmp, 'meta.json'), JSON.stringify(meta));
  if (index) await fsp.writeFile(path.join(tmp, 'index.json'), JSON.stringify(indexToJson(index)));
  if (buildLog && fs.existsSync(buildLog)) await fsp.copyFile(buildLog, path.join(tmp, 'build.log'));
  const dest = path.join(root, key);
  await fsp.rm(dest, { recursive: true, force: true });
  await fsp.rename(tmp, dest).catch(async () => fsp.rm(tmp, { recursive: true, force: true }));
}

/** Drops cache entries unused for DAYS days (and stray temp dirs). */
export async function pruneCache(days = 30): Promise<void> {
  const root = cacheRoot();
  if (!fs.existsSync(root)) return;
  const limit = Date.now() - days * 86_400_000;
  for (const n of await fsp.readdir(root)) {
    const p = path.join(root, n);
    const st = await fsp.stat(p).catch(() => undefined);
    if (st && (st.mtimeMs < limit || (n.startsWith('.tmp-') && st.mtimeMs < Date.now() - 86_400_000))) await fsp.rm(p, { recursive: true, force: true });
  }
}

// ----------------------------------------------------------------------- one case

const GiB = 1024 ** 3;
let scratchMemo: string | undefined;

/**
 * Where the cases' scratch directories go: STOWAGE_COMPAT_TMP if set; else /dev/shm when
 * it is a tmpfs with at least 8 GiB free; else the e2e tests' scratch parent (/tmp). On
 * this kind of machine creating files on the ext4 disk costs ~0.7 ms each (a 33,800-file
 * node image: 23 s of extraction against 0.7 s on tmpfs), which more than doubles the
 * time of a real-world case; what is compared does not depend on the file system. A case
 * needs at most a few GiB (stowage's --root with its base images, both builders' tars).
 */
export function compatScratchParent(): string {
  if (scratchMemo) return scratchMemo;
  const env = process.env.STOWAGE_COMPAT_TMP;
  if (env) return (scratchMemo = env);
  try {
    const isTmpfs = fs
      .readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[1] === '/dev/shm' && l.split(' ')[2] === 'tmpfs');
    const st = fs.statfsSync('/dev/shm');
    if (isTmpfs && st.bavail * st.bsize >= 8 * GiB) return (scratchMemo = '/dev/shm');
  } catch {
    // no /dev/shm
  }
  return (scratchMemo = scratchParent());
}

/** mkdtemp under compatScratchParent(), mode 0755, owned by the test user. */
async function makeCaseDir(prefix: string): Promise<string> {
  const e = testEnv();
  const d = await fsp.mkdtemp(path.join(compatScratchParent(), prefix));
  await fsp.chmod(d, 0o755);
  await fsp.chown(d, e.uid, e.gid);
  return d;
}

/** Gives root-owned files under DIR to the user (mode kept: chown clears setuid/setgid). */
async function giveRootFilesToUser(dir: string, uid: number, gid: number): Promise<void> {
  const st = await fsp.lstat(dir);
  if (st.uid === 0 && st.gid === 0) {
    await fsp.lchown(dir, uid, gid);
    if (!st.isSymbolicLink() && st.mode & 0o7000) await fsp.chmod(dir, st.mode & 0o7777);
  }
  if (st.isDirectory()) for (const n of await fsp.readdir(dir)) await giveRootFilesToUser(path.join(dir, n), uid, gid);
}

interface Built {
  side: SideResult;
  index?: RootfsIndex;
  config?: unknown;
}

function buildArgsFlags(c: CompatCase): string[] {
  const out: string[] = [];
  if (c.spec.target) out.push('--target', c.spec.target);
  for (const [k, v] of Object.entries(c.spec.buildArgs ?? {})) out.push('--build-arg', `${k}=${v}`);
  return out;
}

const buildTimeout = (c: CompatCase) => (c.spec.slow ? 30 : 10) * 60_000;

/** The run's argv for an image: Entrypoint + (case args, or nothing to keep the image's Cmd). */
function runArgv(config: unknown, args: string[] | undefined): string[] | undefined {
  if (!args) return undefined;
  const ep = innerConfig(config)?.Entrypoint;
  return [...(Array.isArray(ep) ? (ep as string[]) : []), ...args];
}

/** BuildKit's side; READCACHE: take the oracle cache's result if it has one (a fresh result is always stored). */
async function buildWithBuildkit(c: CompatCase, base: string, readCache: boolean, cold: boolean): Promise<Built> {
  const key = await oracleCacheKey(c, base);
  if (readCache) {
    const hit = await cacheGet(key);
    if (hit) {
      const side: SideResult = { ok: hit.meta.ok, seconds: hit.meta.seconds, cached: true };
      if (hit.meta.error) side.error = hit.meta.error;
      if (hit.meta.run) side.run = hit.meta.run;
      return hit.index ? { side, index: hit.index, config: hit.meta.config } : { side };
    }
  }
  const out = path.join(base, 'buildkit');
  const tag = `stowage-compat/${c.name.toLowerCase().replace(/[^a-z0-9._-]+/g, '-')}:${process.pid}-${Date.now() % 100000}`;
  const t0 = Date.now();
  const r = await run(
    ['bash', buildkitScript(), 'build', '--file', path.join(base, 'Dockerfile'), ...buildArgsFlags(c), ...(c.spec.run ? ['--tag', tag] : []), ...(cold ? ['--no-cache'] : []), path.join(base, 'ctx'), out],
    { timeoutMs: buildTimeout(c) },
  );
  const seconds = secs(t0);
  if (r.code !== 0) {
    if (/dockerd is not running|not installed/.test(r.stderr)) throw new Error(`the BuildKit oracle is not available: ${tail(r.stderr, 5)}`);
    const log = fs.existsSync(path.join(out, 'build.log')) ? await fsp.readFile(path.join(out, 'build.log'), 'utf8') : r.stderr;
    const side: SideResult = { ok: false, seconds, error: tail(log + (r.timedOut ? '\n(timed out)' : '')) };
    await cachePut(key, { ok: false, seconds, error: side.error! }, undefined, path.join(out, 'build.log'));
    return { side };
  }
  const index = await indexRootfs(path.join(out, 'rootfs.tar'));
  const config = JSON.parse(await fsp.readFile(path.join(out, 'config.json'), 'utf8')) as unknown;
  const side: SideResult = { ok: true, seconds };
  if (c.spec.run) {
    try {
      const argv = c.spec.run.args ?? [];
      const tr = Date.now();
      const rr = await docker(['run', '--rm', '--network', 'none', '--pull', 'never', tag, ...argv], 180_000);
      side.run = { stdout: rr.stdout, stderr: tail(rr.stderr, 20), code: rr.code, via: 'docker run --network none', seconds: secs(tr) };
    } finally {
      await docker(['image', 'rm', tag]).catch(() => undefined);
    }
  }
  const meta: CachedOracle = { ok: true, seconds, config };
  if (side.run) meta.run = side.run;
  await cachePut(key, meta, index, path.join(out, 'build.log'));
  return { side, index, config };
}

const DOCKER_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

interface ExecUser {
  uid: number;
  gid: number;
  home: string;
  additionalGids: number[];
}

/**
 * USER → ids as docker (runc's libcontainer/user.GetExecUser) resolves it against the
 * image's /etc/passwd and /etc/group: "" is root; a name must exist; a number need not (gid
 * then 0); "user:group" likewise; supplementary groups are the groups listing the user.
 */
function resolveUser(rootfs: string, spec: string): ExecUser {
  const read = (f: string) => {
    try {
      return fs
        .readFileSync(path.join(rootfs, f), 'utf8')
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => l.split(':'));
    } catch {
      return [];
    }
  };
  const passwd = read('etc/passwd');
  const groups = read('etc/group');
  const [u = '', g] = spec.split(':');
  const out: ExecUser = { uid: 0, gid: 0, home: '/', additionalGids: [] };
  let name: string | undefined;
  if (u !== '') {
    const ent = passwd.find((p) => p[0] === u) ?? (/^\d+$/.test(u) ? passwd.find((p) => p[2] === u) : undefined);
    if (ent) {
      name = ent[0];
      out.uid = Number(ent[2]);
      out.gid = Number(ent[3]);
      out.home = ent[5] || '/';
    } else if (/^\d+$/.test(u)) out.uid = Number(u);
    else throw new Error(`unable to find user ${u}: no matching entries in passwd file`);
  } else {
    const root = passwd.find((p) => p[2] === '0');
    if (root) {
      name = root[0];
      out.gid = Number(root[3]);
      out.home = root[5] || '/';
    }
  }
  if (g !== undefined && g !== '') {
    const ent = groups.find((x) => x[0] === g) ?? (/^\d+$/.test(g) ? groups.find((x) => x[2] === g) : undefined);
    if (ent) out.gid = Number(ent[2]);
    else if (/^\d+$/.test(g)) out.gid = Number(g);
    else throw new Error(`unable to find group ${g}: no matching entries in group file`);
  }
  if (name !== undefined) {
    out.additionalGids = [...new Set(groups.filter((x) => (x[3] ?? '').split(',').includes(name!)).map((x) => Number(x[2])))].filter((n) => n !== out.gid);
  }
  return out;
}

/**
 * Runs stowage's image as docker would run it, from what stowage built: its root
 * filesystem (the type=tar output, extracted by root with owners, modes and xattrs) and
 * its config (Env, Entrypoint + Cmd or the case's args, WorkingDir, USER resolved against
 * the image's passwd/group files, HOME set when Env lacks it), with runc as root in new
 * namespaces (no network) and docker's default capabilities. Unpacking image.tar's layers
 * with umoci instead (test/lib runImage, rootless) costs ~20 s per large image; set
 * STOWAGE_COMPAT_RUN=umoci for that.
 */
async function runStowageImage(out: string, config: unknown, args: string[] | undefined): Promise<RunOutcome> {
  const cfg = innerConfig(config) ?? {};
  const user = String(cfg.User ?? '');
  const argv = runArgv(config, args);
  if (process.env.STOWAGE_COMPAT_RUN === 'umoci' && (user === '' || /^(0|root)(:(0|root))?$/.test(user))) {
    const r = await runImage(path.join(out, 'image.tar'), { ...(argv ? { args: argv } : {}), timeoutMs: 180_000 });
    return { stdout: r.stdout, stderr: tail(r.stderr, 20), code: r.code, via: 'runc, rootless (umoci --rootless of image.tar)' };
  }
  const base = await fsp.mkdtemp(path.join(out, 'run-'));
  const id = `stowage-compat-${process.pid}-${Date.now() % 1_000_000}`;
  const runcRoot = path.join(base, 'runc');
  const rootfs = path.join(base, 'rootfs');
  try {
    await fsp.mkdir(rootfs);
    const x = await run(['tar', '-xpf', path.join(out, 'rootfs.tar'), '-C', rootfs, '--numeric-owner', '--xattrs', '--xattrs-include=*'], { timeoutMs: 300_000 });
    if (x.code !== 0) throw new Error(`extracting rootfs.tar failed: ${tail(x.stderr, 10)}`);
    const spec = await run(['runc', 'spec'], { cwd: base, timeoutMs: 30_000 });
    if (spec.code !== 0) throw new Error(`runc spec failed: ${spec.stderr}`);
    const cfgPath = path.join(base, 'config.json');
    const s = JSON.parse(await fsp.readFile(cfgPath, 'utf8'));
    const u = resolveUser(rootfs, user);
    const env: string[] = Array.isArray(cfg.Env) ? [...(cfg.Env as string[])] : [];
    if (!env.some((e) => e.startsWith('PATH='))) env.unshift('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${u.home}`);
    const cmd = Array.isArray(cfg.Cmd) ? (cfg.Cmd as string[]) : [];
    const ep = Array.isArray(cfg.Entrypoint) ? (cfg.Entrypoint as string[]) : [];
    s.process.terminal = false;
    s.process.args = argv ?? [...ep, ...cmd];
    s.process.env = env;
    s.process.cwd = typeof cfg.WorkingDir === 'string' && cfg.WorkingDir ? cfg.WorkingDir : '/';
    s.process.user = { uid: u.uid, gid: u.gid, ...(u.additionalGids.length ? { additionalGids: u.additionalGids } : {}) };
    const caps = u.uid === 0 ? DOCKER_CAPS : [];
    s.process.capabilities = { bounding: DOCKER_CAPS, effective: caps, permitted: caps, inheritable: [] };
    s.process.noNewPrivileges = false;
    delete s.process.rlimits; // inherited, as docker's containers inherit the daemon's
    s.root = { path: 'rootfs', readonly: false };
    s.hostname = id.slice(0, 12);
    await fsp.writeFile(cfgPath, JSON.stringify(s));
    const r = await run(['runc', '--root', runcRoot, 'run', '--bundle', base, id], { cwd: base, timeoutMs: 180_000 });
    return { stdout: r.stdout, stderr: tail(r.stderr, 20), code: r.code, via: `runc as root from rootfs.tar${user ? ` (USER ${user})` : ''}` };
  } finally {
    await run(['runc', '--root', runcRoot, 'delete', '--force', id], { timeoutMs: 30_000 }).catch(() => undefined);
    await removeTree(base);
  }
}

async function buildWithStowage(c: CompatCase, base: string): Promise<Built> {
  const e = testEnv();
  const out = path.join(base, 'stowage');
  const root = path.join(base, 'root');
  const t0 = Date.now();
  const r = await runStowage(
    [
      'build',
      '--root',
      root,
      '--registry-mirror',
      `docker.io=${e.registry}`,
      '--progress',
      'plain',
      '-f',
      path.join(base, 'Dockerfile'),
      ...buildArgsFlags(c),
      '-o',
      `type=tar,dest=${path.join(out, 'rootfs.tar')}`,
      '-o',
      `type=oci,dest=${path.join(out, 'image.tar')}`,
      path.join(base, 'ctx'),
    ],
    { cwd: base, timeoutMs: buildTimeout(c) },
  );
  const seconds = secs(t0);
  await fsp.writeFile(path.join(base, 'stowage.log'), r.stderr + r.stdout).catch(() => undefined);
  const missing = ['rootfs.tar', 'image.tar'].filter((f) => !fs.existsSync(path.join(out, f)));
  if (r.code !== 0 || missing.length) {
    const why = r.code !== 0 ? '' : `\n(exit 0 but no ${missing.join(', ')})`;
    return { side: { ok: false, seconds, error: tail(r.stderr + r.stdout + why + (r.timedOut ? '\n(timed out)' : '')) } };
  }
  const [index, config] = await Promise.all([indexRootfs(path.join(out, 'rootfs.tar')), readOciTarConfig(path.join(out, 'image.tar'))]);
  const side: SideResult = { ok: true, seconds };
  if (c.spec.run) {
    const tr = Date.now();
    try {
      side.run = await runStowageImage(out, config, c.spec.run.args);
      side.run.seconds = secs(tr);
    } catch (err) {
      side.run = { stdout: '', stderr: tail(String((err as Error).message ?? err), 20), code: null, via: 'not run' };
    }
  }
  return { side, index, config };
}

let anchorsMemo: { anchors: Set<string> | undefined } | undefined;
function compatAnchors(): Set<string> | undefined {
  if (!anchorsMemo) {
    const f = path.join(testEnv().repoRoot, 'docs', 'compat.md');
    anchorsMemo = { anchors: fs.existsSync(f) ? markdownAnchors(fs.readFileSync(f, 'utf8')) : undefined };
  }
  return anchorsMemo.anchors;
}

const show = (s: string) => JSON.stringify(s);

/** Builds one case with both builders and compares. Never throws (harness errors become harness-error). */
export async function runCase(c: CompatCase, opts: HarnessOptions = {}): Promise<CaseResult> {
  const t0 = Date.now();
  const result: CaseResult = {
    name: c.name,
    group: c.group,
    dir: c.dir,
    result: 'case-error',
    pass: false,
    slow: c.spec.slow === true,
    expectFailure: c.spec.expectFailure === true,
    buildkit: { ok: false, seconds: 0 },
    stowage: { ok: false, seconds: 0 },
    differences: [],
    problems: [...c.problems],
    seconds: 0,
  };
  if (result.problems.length) return finish();
  let base: string | undefined;
  try {
    const e = testEnv();
    base = await makeCaseDir(`stowage-compat-${c.name.slice(0, 40)}-`);
    const ctx = path.join(base, 'ctx');
    if (fs.existsSync(path.join(c.dir, 'context'))) {
      const cp = await run(['cp', '-a', '--', path.join(c.dir, 'context'), ctx]);
      if (cp.code !== 0) throw new Error(`copying context/ failed: ${cp.stderr}`);
    } else {
      await fsp.mkdir(ctx, { mode: 0o755 });
    }
    // The context is the user's (as a real one would be); prepare then runs as root, and
    // what it created as root is given to the user too (owners it set on purpose stay).
    await chownTree(ctx, e.uid, e.gid);
    if (c.spec.prepare) {
      const p = await run(['bash', '-eo', 'pipefail', '-c', c.spec.prepare], { cwd: ctx, timeoutMs: 120_000 });
      if (p.code !== 0) {
        result.problems.push(`prepare failed (exit ${p.code}):\n${tail(p.stderr + p.stdout, 15)}`);
        return finish();
      }
      await giveRootFilesToUser(ctx, e.uid, e.gid);
    }
    await fsp.copyFile(path.join(c.dir, 'Dockerfile'), path.join(base, 'Dockerfile'));
    if (fs.existsSync(path.join(c.dir, 'Dockerfile.dockerignore'))) {
      await fsp.copyFile(path.join(c.dir, 'Dockerfile.dockerignore'), path.join(base, 'Dockerfile.dockerignore'));
    }
    await fsp.mkdir(path.join(base, 'stowage'));
    await fsp.mkdir(path.join(base, 'root'), { mode: 0o700 });
    for (const f of ['Dockerfile', 'Dockerfile.dockerignore', 'stowage', 'root']) {
      if (fs.existsSync(path.join(base, f))) await fsp.chown(path.join(base, f), e.uid, e.gid);
    }

    const [bk, st] = await Promise.all([buildWithBuildkit(c, base, opts.cache !== false && !opts.cold, opts.cold === true), buildWithStowage(c, base)]);
    result.buildkit = bk.side;
    result.stowage = st.side;

    const anchors = compatAnchors();
    const listings = c.spec.differences ?? [];
    if (!bk.side.ok || !st.side.ok) {
      result.result = !bk.side.ok && !st.side.ok ? 'both-fail' : bk.side.ok ? 'stowage-failed' : 'buildkit-failed';
      result.pass = result.result === 'both-fail' && result.expectFailure;
      for (const b of applyListing([], listings, anchors).badWhy) result.problems.push(b.problem);
      if (result.problems.length && result.pass) result.pass = false;
      return finish();
    }
    if (result.expectFailure) result.problems.push('case.json says expectFailure, but both builds succeeded');

    const diffs = [...compareRootfs(bk.index!, st.index!), ...configDifferences(bk.config, st.config)];
    if (c.spec.run) {
      const want = c.spec.run.stdout;
      const a = bk.side.run!;
      const b = st.side.run!;
      if (a.stdout !== want) {
        result.problems.push(
          `BuildKit's image printed ${show(a.stdout)} (exit ${a.code}${a.code ? `: ${tail(a.stderr, 3)}` : ''}), case.json's run.stdout is ${show(want)}: the case's expectation is wrong`,
        );
      }
      if (b.stdout !== a.stdout) diffs.push({ path: 'run.stdout', field: 'stdout', buildkit: show(a.stdout), stowage: show(b.stdout) });
      if (b.code !== a.code) {
        diffs.push({ path: 'run.exit', field: 'exit', buildkit: String(a.code), stowage: `${b.code}${b.code ? ` (${b.via}): ${tail(b.stderr, 5)}` : ''}` });
      }
    }
    const check = applyListing(diffs, listings, anchors);
    result.differences = diffs;
    for (const b of check.badWhy) result.problems.push(b.problem);
    for (const s of check.stale) result.problems.push(`stale listing: ${s.path} (${s.why}) does not differ`);
    if (check.unlisted.length) result.result = 'DIFFERENT';
    else if (result.problems.some((p) => !p.startsWith('stale listing'))) result.result = 'case-error';
    else if (check.stale.length) result.result = 'stale-listing';
    else result.result = diffs.length ? 'listed-diff' : 'identical';
    result.pass = (result.result === 'identical' || result.result === 'listed-diff') && result.problems.length === 0;
    return finish();
  } catch (err) {
    result.result = 'harness-error';
    result.pass = false;
    result.problems.push(`harness error: ${(err as Error).stack ?? String(err)}`);
    return finish();
  } finally {
    if (base) {
      if (opts.keep) result.tempDir = base;
      else await removeTree(base).catch(() => undefined);
    }
  }

  function finish(): CaseResult {
    result.seconds = secs(t0);
    return result;
  }
}

/**
 * Runs CASES, `concurrency` at a time (default 2); results in the order of CASES.
 * The slow cases start first (they take minutes: started last they would leave the pool
 * waiting on one long case at the end), the others fill the remaining slots.
 * `onResult` is called as each case finishes.
 */
export async function runCases(cases: CompatCase[], opts: HarnessOptions = {}, onResult?: (r: CaseResult, i: number) => void): Promise<CaseResult[]> {
  const results: CaseResult[] = new Array(cases.length);
  const order = cases.map((c, i) => ({ c, i })).sort((a, b) => Number(b.c.spec.slow === true) - Number(a.c.spec.slow === true) || a.i - b.i);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const job = order[next++];
      if (!job) return;
      const r = await runCase(job.c, opts);
      results[job.i] = r;
      onResult?.(r, job.i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 2, cases.length)) }, worker));
  return results;
}

/**
 * Starts every case at once through a pool and hands out one promise per case (for the
 * jest test: one test per case awaits its own promise).
 */
export function startCases(cases: CompatCase[], opts: HarnessOptions = {}): Map<string, Promise<CaseResult>> {
  const out = new Map<string, Promise<CaseResult>>();
  const resolvers = new Map<number, (r: CaseResult) => void>();
  cases.forEach((c, i) => out.set(`${c.group}/${c.name}`, new Promise((res) => resolvers.set(i, res))));
  void runCases(cases, opts, (r, i) => resolvers.get(i)?.(r));
  return out;
}
