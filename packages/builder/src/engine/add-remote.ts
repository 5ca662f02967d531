/**
 * ADD's remote sources between the Dockerfile and the copy: what the build
 * cache key needs before the step runs, and the files the step copies.
 *
 * BuildKit's keys: an http source with `--checksum` is keyed by that
 * checksum, so a cached step downloads nothing; without one it is downloaded
 * first and keyed by the content's digest (an unchanged file is a cache hit).
 * A git source is keyed by the commit its ref points to (`git ls-remote`), so
 * an unchanged ref is a hit without a clone.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { posix } from 'node:path';
import { Transport } from '@stowage/registry-client';
import { BuildError, EntitlementError, InstructionError } from '../errors.js';
import { checkoutGit, gitRemoteHost, GitSourceError, resolveGitCommit, type GitSource } from './git-source.js';
import { hostOnlyReason } from './host-only-address.js';
import {
  ChecksumMismatchError, classifyAddSource, downloadToFile, escapeGlob, parseHttpChecksum, redactUrl, remoteFileName,
  RemoteSourceError, type HttpChecksum,
} from './remote-source.js';

export interface RemoteFiles {
  /** Root of what to copy (a download directory or a checkout). */
  sourceRoot: string;
  /** Sources relative to sourceRoot, for copyInto. */
  sources: string[];
  /** Destination for copyInto (a git tree fills it as a directory). */
  dest: string;
  /** Whether an archive is unpacked (`--unpack=true`; remote files are not by default). */
  unpack: boolean;
}

export interface RemoteSource {
  /** The source with credentials hidden, for history and messages. */
  shown: string;
  /** What the step's result depends on, for the build cache key (no credentials). */
  identity: Record<string, unknown>;
  /** Fetches (if not done yet) and returns what to copy; runs inside the step. */
  materialize(): Promise<RemoteFiles>;
}

export interface AddSources {
  /** Context (or stage) sources, in order. */
  local: string[];
  remote: RemoteSource[];
  /** Removes downloads and checkouts. */
  cleanup(): Promise<void>;
}

export interface AddSourceOptions {
  /** Destination as resolved against WORKDIR (trailing `/` kept). */
  dest: string;
  /** Heredoc files also being added (for the one-source rule). */
  inlineCount: number;
  checksum?: string;
  keepGitDir: boolean;
  /** `--unpack`; undefined when not given. */
  unpack?: boolean;
  /** The build's scratch directory; downloads and checkouts go below it. */
  tmp: string;
  /** `--allow network.host` or `--network host`: URLs may name this machine's loopback and link-local addresses. */
  allowHostOnly: boolean;
  log(line: string): void;
  bytes(id: string, current: number, total?: number): void;
}

/**
 * Splits ADD's sources into local and remote ones and resolves the remote
 * ones as far as the cache key needs. Errors are InstructionErrors naming the
 * source without credentials; a checksum mismatch is E_DIGEST_MISMATCH.
 */
export async function prepareAddSources(sources: string[], opts: AddSourceOptions): Promise<AddSources> {
  const classified = sources.map((s) => {
    try {
      return classifyAddSource(s);
    } catch (err) {
      throw toBuildError(err);
    }
  });
  const checksum = opts.checksum;
  if (checksum !== undefined) {
    if (sources.length !== 1) throw new InstructionError('ADD --checksum can\'t be specified for multiple sources');
    if (classified[0]!.kind === 'local') throw new InstructionError('ADD --checksum requires HTTP(S) or Git sources');
  }
  const remoteCount = classified.filter((c) => c.kind !== 'local').length;
  const dirLike = opts.dest.endsWith('/') || opts.dest.endsWith('/.');
  if (remoteCount > 0 && sources.length + opts.inlineCount > 1 && !dirLike) {
    throw new InstructionError('when using ADD with more than one source file, the destination must be a directory and end with a /');
  }

  const dirs: string[] = [];
  const scratch = async (prefix: string) => {
    const dir = await mkdtemp(posix.join(opts.tmp, prefix));
    dirs.push(dir);
    return dir;
  };
  const cleanup = async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  };
  const local: string[] = [];
  const remote: RemoteSource[] = [];
  try {
    for (const c of classified) {
      if (c.kind === 'local') local.push(c.source);
      else if (c.kind === 'http') remote.push(await prepareHttp(c.url, opts, scratch));
      else remote.push(await prepareGit(c.source, c.git, opts, scratch));
    }
  } catch (err) {
    await cleanup();
    throw toBuildError(err);
  }
  return { local, remote, cleanup };
}

/** COPY takes no URLs or repositories: BuildKit refuses them rather than look for such a file. */
export function refuseRemoteForCopy(sources: string[]): void {
  for (const source of sources) {
    let kind: string;
    try {
      kind = classifyAddSource(source).kind;
    } catch {
      continue;
    }
    if (kind === 'http') throw new InstructionError(`COPY ${redactUrl(source)}: source can't be a URL for COPY (use ADD)`);
    if (kind === 'git') throw new InstructionError(`COPY ${redactUrl(source)}: source can't be a git repository for COPY (use ADD)`);
  }
}

type Scratch = (prefix: string) => Promise<string>;

async function prepareHttp(url: URL, opts: AddSourceOptions, scratch: Scratch): Promise<RemoteSource> {
  const shown = redactUrl(url.toString());
  const name = remoteFileName(url);
  if (name === undefined && (opts.dest.endsWith('/') || opts.dest.endsWith('/.'))) {
    throw new RemoteSourceError(`${shown}: the URL has no file name to use in the destination directory ${opts.dest}; name the destination file`);
  }
  // BuildKit's name for a URL without a path, used only when the destination turns out to be a directory.
  const fileName = name ?? '__unnamed__';
  const checksum: HttpChecksum | undefined = opts.checksum !== undefined ? parseHttpChecksum(opts.checksum) : undefined;
  const unpack = opts.unpack === true;
  const transport = new Transport({
    log: (line) => opts.log(line),
    // Checked at every redirect hop too: a public URL must not bounce the builder to 127.0.0.1.
    ...(opts.allowHostOnly ? {} : { checkDestination: (u: URL) => hostOnlyReason(u.hostname) }),
  });
  const fetchInto = async (): Promise<RemoteFiles & { digest: string; lastModified?: Date }> => {
    const dir = await scratch('http-');
    opts.log(`downloading ${shown}`);
    const got = await downloadToFile(url, posix.join(dir, fileName), {
      transport,
      ...(checksum ? { expected: checksum.digest } : {}),
      onBytes: (current, total) => opts.bytes(shown, current, total),
    });
    opts.log(`downloaded ${got.size} bytes, ${got.digest}`);
    return { sourceRoot: dir, sources: [escapeGlob(fileName)], dest: opts.dest, unpack, digest: got.digest, ...(got.lastModified ? { lastModified: got.lastModified } : {}) };
  };
  if (checksum) {
    return {
      shown,
      identity: { kind: 'http', digest: checksum.digest, name: fileName, unpack },
      materialize: fetchInto,
    };
  }
  const files = await fetchInto();
  return {
    shown,
    // The mtime comes from Last-Modified, so it is part of the result (BuildKit keys on it too).
    identity: { kind: 'http', digest: files.digest, name: fileName, unpack, lastModified: files.lastModified?.toISOString() },
    materialize: async () => files,
  };
}

async function prepareGit(source: string, git: GitSource, opts: AddSourceOptions, scratch: Scratch): Promise<RemoteSource> {
  const shown = redactUrl(source);
  const home = posix.join(opts.tmp, 'git-home');
  await mkdir(home, { recursive: true, mode: 0o700 });
  const run = { home, shown: redactUrl(git.remote), secrets: secretsOf(git.remote) };
  if (!opts.allowHostOnly) {
    const refused = await hostOnlyReason(gitRemoteHost(git.remote));
    if (refused !== undefined) throw new EntitlementError(`ADD ${shown}: ${refused}`);
  }
  const resolved = await resolveGitCommit(git, run);
  opts.log(`${shown}: ${resolved.refName ?? 'commit'} is ${resolved.commit}`);
  if (opts.checksum !== undefined) {
    const expected = opts.checksum.toLowerCase();
    if (!/^[0-9a-f]{1,64}$/.test(expected)) throw new RemoteSourceError(`--checksum=${opts.checksum}: for a git source it is a commit hash (or a prefix of one)`);
    if (!resolved.commit.startsWith(expected)) throw new ChecksumMismatchError(shown, expected, resolved.commit);
  }
  // .git is kept only for a whole repository, as BuildKit does.
  const keepGitDir = opts.keepGitDir && git.subdir === undefined;
  return {
    shown,
    identity: { kind: 'git', commit: resolved.commit, subdir: git.subdir ?? '', keepGitDir },
    materialize: async () => {
      const dir = await scratch('git-');
      opts.log(`fetching ${resolved.commit}`);
      const checkout = await checkoutGit(git, resolved, dir, { ...run, keepGitDir });
      return { sourceRoot: checkout.root, sources: ['/'], dest: treeDest(opts.dest), unpack: false };
    },
  };
}

/**
 * A tree always fills a directory, trailing slash or not. Named without the
 * slash, a directory the copy creates takes the checkout's (commit) time, so
 * the layer does not depend on when it was built.
 */
function treeDest(dest: string): string {
  const trimmed = dest.replace(/(\/\.?)+$/, '');
  return trimmed === '' ? '/' : trimmed;
}

/** The user and password of a URL remote, decoded and raw, to scrub from git's messages. */
function secretsOf(remote: string): string[] {
  try {
    const u = new URL(remote);
    const out = [u.password, u.username !== '' && /^https?:$/.test(u.protocol) ? u.username : ''];
    return [...out, ...out.map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    })].filter((s) => s.length >= 3);
  } catch {
    return [];
  }
}

/** Lower-level errors as the engine reports them; the message never carries credentials. */
export function toBuildError(err: unknown): unknown {
  if (err instanceof ChecksumMismatchError) return new BuildError('E_DIGEST_MISMATCH', `ADD ${err.message}`);
  if (err instanceof RemoteSourceError || err instanceof GitSourceError) return new InstructionError(`ADD ${err.message}`);
  return err;
}
