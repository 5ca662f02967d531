/**
 * ADD of a git repository with the real `git` CLI, as BuildKit's git source:
 * `git ls-remote` resolves the ref to a commit (the cache key, so an
 * unchanged ref costs no clone), then a shallow fetch of that commit into a
 * fresh repository under the build's tmp dir and a detached checkout.
 *
 * git runs with a clean environment: no terminal prompts, no system or user
 * config (HOME is an empty directory), no hooks, no reflogs, no `ext::`
 * transport. Proxy variables are not passed on. Submodules are not fetched.
 * Files get mode 0644, or 0755 when executable, directories 0755 (BuildKit's
 * rule) and every mtime is the commit's time, so the same commit always
 * gives the same layer.
 */
import { spawn } from 'node:child_process';
import { chmod, lstat, lutimes, mkdir, readdir, rm } from 'node:fs/promises';
import { posix } from 'node:path';
import { redactUrlsIn } from './redact-url.js';
import { resolveInRoot } from './secure-path.js';

export interface GitSource {
  /** What git fetches from: the source without its `#fragment`. */
  remote: string;
  /** Branch, tag or commit from `#ref`; the remote's HEAD when absent. */
  ref?: string;
  /** Directory inside the repository from `#ref:subdir`. */
  subdir?: string;
}

export class GitSourceError extends Error {}

const SCP_LIKE = /^([A-Za-z0-9_][A-Za-z0-9_.-]*)@([A-Za-z0-9][A-Za-z0-9.-]*):([^#]+)(?:#(.*))?$/;
const COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * A git source as BuildKit's Dockerfile frontend recognises one: `git://` and
 * `ssh://` URLs, http(s) URLs whose path ends in `.git`, and scp-like
 * `user@host:path` (a user is required, so a local file name with a colon
 * stays a file). The fragment is `#ref[:subdir]`.
 */
export function parseGitSource(source: string): GitSource | undefined {
  const hash = source.indexOf('#');
  const remote = hash < 0 ? source : source.slice(0, hash);
  const fragment = hash < 0 ? '' : source.slice(hash + 1);
  const scheme = /^([a-z0-9]+):\/\//i.exec(remote)?.[1]?.toLowerCase();
  if (scheme !== undefined) {
    if (scheme === 'http' || scheme === 'https') {
      let path: string;
      try {
        path = new URL(remote).pathname;
      } catch {
        return undefined;
      }
      if (!path.endsWith('.git')) return undefined;
    } else if (scheme !== 'git' && scheme !== 'ssh') {
      return undefined;
    }
  } else if (!SCP_LIKE.test(source)) {
    return undefined;
  }
  return { remote, ...parseFragment(fragment, source) };
}

function parseFragment(fragment: string, source: string): Pick<GitSource, 'ref' | 'subdir'> {
  if (fragment === '') return {};
  const colon = fragment.indexOf(':');
  const ref = colon < 0 ? fragment : fragment.slice(0, colon);
  const subdir = colon < 0 ? '' : fragment.slice(colon + 1);
  // Refs reach git's command line: nothing that could read as an option or a revision expression.
  if (ref !== '' && (ref.startsWith('-') || /[\s\0~^:?*[\\]|\.\.|@\{/.test(ref))) {
    throw new GitSourceError(`invalid git ref "${ref}" in ${source}`);
  }
  const cleaned = subdir === '' ? '' : posix.normalize(`/${subdir}`).slice(1).replace(/\/+$/, '');
  return { ...(ref !== '' ? { ref } : {}), ...(cleaned !== '' ? { subdir: cleaned } : {}) };
}

/** The host a git remote names: the URL's host, or the host of scp-like `user@host:path`. */
export function gitRemoteHost(remote: string): string {
  const scp = SCP_LIKE.exec(remote);
  if (scp && !/^[a-z0-9]+:\/\//i.test(remote)) return scp[2]!;
  return new URL(remote).hostname;
}

export function isCommitHash(ref: string): boolean {
  return COMMIT.test(ref);
}

/** `git ls-remote` output: ref name → object id. */
export function parseLsRemote(out: string): Map<string, string> {
  const refs = new Map<string, string>();
  for (const line of out.split('\n')) {
    const m = /^([0-9a-f]{40}|[0-9a-f]{64})\t(\S+)$/.exec(line.trim());
    if (m) refs.set(m[2]!, m[1]!);
  }
  return refs;
}

/**
 * The commit a ref names among the remote's refs, in git's rev-parse order
 * (`<ref>`, `refs/<ref>`, `refs/tags/<ref>`, `refs/heads/<ref>`, …); an
 * annotated tag is peeled to its commit.
 */
export function pickRef(refs: Map<string, string>, ref: string): { name: string; commit: string } | undefined {
  for (const name of [ref, `refs/${ref}`, `refs/tags/${ref}`, `refs/heads/${ref}`, `refs/remotes/${ref}`, `refs/remotes/${ref}/HEAD`]) {
    const id = refs.get(name);
    if (id !== undefined) return { name, commit: refs.get(`${name}^{}`) ?? id };
  }
  return undefined;
}

export interface GitRunOptions {
  /** An empty directory used as HOME, so no user config is read. */
  home: string;
  /** Shown instead of the remote in messages (credentials hidden). */
  shown: string;
  /** Strings to scrub from git's output (passwords, tokens). */
  secrets: string[];
  /** Kills a git process running longer than this (default 30 minutes). */
  timeoutMs?: number;
}

export interface ResolvedCommit {
  commit: string;
  /** The ref name ls-remote matched (undefined for a commit given by hash). */
  refName?: string;
}

/** The commit `src.ref` (or the remote's HEAD) points to now, asking the remote with ls-remote. */
export async function resolveGitCommit(src: GitSource, opts: GitRunOptions): Promise<ResolvedCommit> {
  if (src.ref !== undefined && isCommitHash(src.ref)) return { commit: src.ref };
  const ref = src.ref ?? 'HEAD';
  const out = await git(['ls-remote', src.remote, ref, `${ref}^{}`], opts, 'cannot list its refs');
  const found = pickRef(parseLsRemote(out), ref);
  if (!found) {
    const hint = /^[0-9a-f]{4,39}$/.test(ref) ? ' (a commit must be given by its full hash)' : '';
    throw new GitSourceError(`${opts.shown}: no ref "${ref}" in the repository${hint}`);
  }
  return { commit: found.commit, refName: found.name };
}

export interface Checkout {
  /** The directory to copy: the checkout, or its subdir. */
  root: string;
  /** The commit's committer time (seconds), given to every file. */
  mtime: number;
}

/**
 * Fetches `resolved.commit` (shallow) into `<dir>/tree` and checks it out.
 * `.git` is removed unless keepGitDir; when kept, its origin is the remote
 * with credentials hidden and FETCH_HEAD and reflogs are gone.
 */
export async function checkoutGit(src: GitSource, resolved: ResolvedCommit, dir: string, opts: GitRunOptions & { keepGitDir: boolean }): Promise<Checkout> {
  const tree = posix.join(dir, 'tree');
  await mkdir(dir, { recursive: true });
  await git(['-c', 'init.defaultBranch=main', 'init', '-q', '--template=', tree], opts, 'git init failed');
  const inTree = (args: string[], what: string) => git(['-C', tree, ...args], opts, what);
  const { commit } = resolved;
  const failed = `cannot fetch ${commit}`;
  try {
    await inTree(['fetch', '-q', '--depth=1', '--no-tags', '--no-write-fetch-head', src.remote, commit], failed);
  } catch (err) {
    // Servers that refuse a commit by hash (protocol v0 without allowReachableSHA1InWant).
    if (resolved.refName !== undefined) {
      await inTree(['fetch', '-q', '--depth=1', '--no-tags', src.remote, `+${resolved.refName}:refs/stowage/fetched`], failed);
      const got = (await inTree(['rev-parse', 'refs/stowage/fetched^{commit}'], failed)).trim();
      await inTree(['update-ref', '-d', 'refs/stowage/fetched'], failed);
      if (got !== commit) throw new GitSourceError(`${opts.shown}: ${resolved.refName} moved from ${commit} to ${got} during the build`);
    } else {
      await inTree(['fetch', '-q', '--no-tags', src.remote, '+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*'], failed).catch(() => {
        throw err;
      });
    }
  }
  await inTree(['cat-file', '-e', `${commit}^{commit}`], `commit ${commit} is not in the repository`);
  await inTree(['checkout', '-q', '--detach', commit], `cannot check out ${commit}`);
  const mtime = Number((await inTree(['show', '-s', '--format=%ct', commit], `cannot read commit ${commit}`)).trim());
  if (!Number.isInteger(mtime)) throw new GitSourceError(`cannot read the time of commit ${commit}`);
  const gitDir = posix.join(tree, '.git');
  if (opts.keepGitDir && src.subdir === undefined) {
    await rm(posix.join(gitDir, 'FETCH_HEAD'), { force: true });
    await rm(posix.join(gitDir, 'logs'), { recursive: true, force: true });
    await inTree(['remote', 'add', 'origin', opts.shown], 'git remote add failed');
  } else {
    await rm(gitDir, { recursive: true, force: true });
  }
  await normalizeTree(tree, mtime, true);
  let root = tree;
  if (src.subdir !== undefined) {
    // Resolved inside the checkout: a symlink in the repository cannot point the copy elsewhere.
    root = await resolveInRoot(tree, src.subdir);
    const st = await lstat(root).catch(() => undefined);
    if (!st?.isDirectory()) throw new GitSourceError(`${opts.shown}: no directory "${src.subdir}" in commit ${commit}`);
  }
  return { root, mtime };
}

/** Modes as BuildKit's checkout gives them whatever the umask, and one mtime for everything; directories last. */
async function normalizeTree(dir: string, mtime: number, top: boolean): Promise<void> {
  for (const name of await readdir(dir)) {
    const path = posix.join(dir, name);
    const st = await lstat(path);
    const inGitDir = top && name === '.git';
    if (st.isDirectory()) {
      if (inGitDir) await touchTree(path, mtime);
      else await normalizeTree(path, mtime, false);
    } else {
      if (st.isFile() && !inGitDir) await chmod(path, st.mode & 0o111 ? 0o755 : 0o644);
      await lutimes(path, mtime, mtime);
    }
  }
  await chmod(dir, 0o755);
  await lutimes(dir, mtime, mtime);
}

/** .git keeps git's own modes (objects are read-only); only its times are fixed. */
async function touchTree(dir: string, mtime: number): Promise<void> {
  for (const name of await readdir(dir)) {
    const path = posix.join(dir, name);
    if ((await lstat(path)).isDirectory()) await touchTree(path, mtime);
    else await lutimes(path, mtime, mtime);
  }
  await lutimes(dir, mtime, mtime);
}

const STDERR_TAIL = 4096;

/** Runs git with the sandboxed environment; rejects with a GitSourceError carrying git's (scrubbed) message. */
function git(args: string[], opts: GitRunOptions, what: string): Promise<string> {
  const argv = [
    '-c', 'protocol.file.allow=user',
    '-c', 'protocol.ext.allow=never',
    '-c', 'core.hooksPath=/dev/null',
    '-c', 'core.logAllRefUpdates=false',
    '-c', 'advice.detachedHead=false',
    '-c', 'http.lowSpeedLimit=1',
    '-c', 'http.lowSpeedTime=60',
    ...args,
  ];
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: opts.home,
    LC_ALL: 'C',
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_SSH_COMMAND: 'ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null',
  };
  return new Promise((resolve, reject) => {
    const child = spawn('git', argv, { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 30 * 60_000, killSignal: 'SIGKILL' });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => {
      err = (err + b.toString('utf8')).slice(-STDERR_TAIL);
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(new GitSourceError(e.code === 'ENOENT' ? 'git is not installed (ADD of a git repository runs the git CLI)' : `${opts.shown}: ${what}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(Buffer.concat(out).toString('utf8'));
      const detail = scrub(err.trim().split('\n').filter((l) => l.trim() !== '').slice(-3).join('; '), opts);
      reject(new GitSourceError(`${opts.shown}: ${what}: ${signal ? `git killed by ${signal}` : `git exited with ${code}`}${detail ? `: ${detail}` : ''}`));
    });
  });
}

function scrub(text: string, opts: GitRunOptions): string {
  let s = redactUrlsIn(text);
  for (const secret of opts.secrets) if (secret.length > 0) s = s.split(secret).join('xxxxx');
  return s;
}
