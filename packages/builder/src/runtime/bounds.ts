import { totalmem } from 'node:os';

/**
 * Resource bounds of a RUN step, so that one step cannot exhaust the
 * runner: every tmpfs the build mounts has a size, and the step's processes
 * a count limit.
 *
 * The process limit is RLIMIT_NPROC, not a pids cgroup: a CI runner's build
 * user seldom has a delegated cgroup v2 subtree (that needs a systemd user
 * session), and runc's rootless cgroup setup fails without one. Since Linux
 * 5.14 the count behind RLIMIT_NPROC is kept per user namespace (ucounts),
 * so it counts the processes of the step's user inside this build's own
 * namespace, not all of the user's processes on the host: in effect a limit
 * per build user, shared by steps of concurrent stages.
 */
export interface StepBounds {
  /** `size=` of a tmpfs mounted without one (/tmp when the image has none, RUN --mount=type=tmpfs). */
  tmpfsBytes: number;
  /** RLIMIT_NPROC of the step's processes; 0 leaves it unlimited. */
  pidsLimit: number;
}

const GiB = 1024 ** 3;

/** Podman's default pids limit is 2048; twice that leaves room for concurrent stages. */
const DEFAULT_PIDS_LIMIT = 4096;

/**
 * The defaults, or `STOWAGE_PIDS_LIMIT` (a count, 0 = unlimited) and
 * `STOWAGE_TMPFS_SIZE` (bytes, or with a k/m/g suffix). A tmpfs defaults to a
 * quarter of the machine's memory, at most 1 GiB: the kernel's own default
 * (half of memory) lets one step take half the runner's RAM.
 */
export function stepBounds(env: NodeJS.ProcessEnv = process.env): StepBounds {
  return {
    tmpfsBytes: parseBytes(env.STOWAGE_TMPFS_SIZE) ?? Math.min(GiB, Math.floor(totalmem() / 4)),
    pidsLimit: parseCount(env.STOWAGE_PIDS_LIMIT) ?? DEFAULT_PIDS_LIMIT,
  };
}

function parseCount(v: string | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new Error(`STOWAGE_PIDS_LIMIT=${v}: expected a whole number (0 for no limit)`);
  return Number(v);
}

function parseBytes(v: string | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  const m = /^(\d+)([kmg]?)$/i.exec(v);
  if (!m || Number(m[1]) === 0) throw new Error(`STOWAGE_TMPFS_SIZE=${v}: expected a size in bytes, e.g. 512m or 2g`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: GiB }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * unit;
}
