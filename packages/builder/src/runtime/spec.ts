import { kernelHasMountSetattr } from './sandbox.js';
import { defaultSeccompProfile, type LinuxSeccomp } from './seccomp.js';

/**
 * The subset of the OCI runtime-spec (config.json) that stowage generates for
 * a RUN step. Written by us, since no maintained types package exists.
 */
export interface RuntimeMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface RuntimeSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities?: { bounding: string[]; effective: string[]; permitted: string[]; inheritable?: string[]; ambient?: string[] };
    noNewPrivileges: boolean;
    rlimits?: { type: 'RLIMIT_NPROC'; hard: number; soft: number }[];
  };
  root: { path: string; readonly: boolean };
  hostname?: string;
  mounts: RuntimeMount[];
  linux: {
    namespaces: { type: 'pid' | 'ipc' | 'uts' | 'mount' | 'network' | 'user' | 'cgroup'; path?: string }[];
    maskedPaths: string[];
    readonlyPaths: string[];
    seccomp?: LinuxSeccomp;
  };
}

/**
 * `sandbox`: a network namespace of the step's own with outbound access
 * through slirp4netns (runtime/network.ts); `host`: the host's network;
 * `none`: a namespace with only loopback.
 */
export type NetworkMode = 'sandbox' | 'host' | 'none';

/** Files bound over the step's /etc/resolv.conf and /etc/hosts (read-only). */
export interface NetworkFiles {
  resolvConf?: string;
  hosts?: string;
}

export interface SpecOptions {
  network: NetworkMode;
  /** With `sandbox`: the prepared namespace runc joins. */
  netnsPath?: string;
  networkFiles: NetworkFiles;
  hostname: string;
  /** Mount a tmpfs on /tmp (the image has none). */
  tmpfsTmp: boolean;
  /** `size=` of every tmpfs the spec mounts without one of its own. */
  tmpfsBytes: number;
  /** RLIMIT_NPROC of the step's processes; 0: no limit. */
  pidsLimit: number;
  /** `RUN --security=insecure`, granted with --allow security.insecure: every capability. */
  insecure?: boolean;
}

export interface StepProcess {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids?: number[];
}

/** Docker's default capability set for containers; RUN steps get the same. */
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/**
 * Every capability a process can hold (Linux 5.9+), for `RUN
 * --security=insecure`: as privileged as BuildKit's insecure mode, but only
 * over the build's own user namespace.
 */
const ALL_CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK',
  'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE',
  'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

/** The capabilities a step's process starts with. */
export function stepCapabilities(uid: number, insecure: boolean): string[] {
  if (insecure) return ALL_CAPABILITIES;
  return uid === 0 ? DEFAULT_CAPABILITIES : [];
}

/**
 * Builds the config for one step. The build already runs in its own user
 * namespace, so the spec adds none: the step's root is the namespace's mapped
 * root. resolv.conf and hosts are bound read-only, as BuildKit does: the
 * host's with the host network, generated ones with the sandbox network.
 * Every tmpfs has a size, and the step's processes a count limit, so one
 * step cannot fill the runner's memory or process table.
 */
export function buildRuntimeSpec(rootfs: string, proc: StepProcess, opts: SpecOptions): RuntimeSpec {
  const caps = stepCapabilities(proc.uid, opts.insecure ?? false);
  const mounts: RuntimeMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    // A user namespace cannot mount a fresh sysfs without its own network namespace.
    // Sandbox: `rro` (runc >= 1.1, mount_setattr) makes the submounts read-only too: plain
    // `ro` left the host's cgroup hierarchies under /sys/fs/cgroup writable, where a user's
    // delegated cgroup (owned by the uid the step's root maps to) could be changed.
    { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro', ...(kernelHasMountSetattr() ? ['rro'] : [])] },
  ];
  if (opts.tmpfsTmp) {
    mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', `size=${opts.tmpfsBytes}`] });
  }
  const files = opts.network === 'none' ? {} : opts.networkFiles;
  if (files.resolvConf) mounts.push({ destination: '/etc/resolv.conf', type: 'bind', source: files.resolvConf, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
  if (files.hosts) mounts.push({ destination: '/etc/hosts', type: 'bind', source: files.hosts, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
  const namespaces: RuntimeSpec['linux']['namespaces'] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (opts.network === 'none') namespaces.push({ type: 'network' });
  if (opts.network === 'sandbox') {
    if (!opts.netnsPath) throw new Error('sandbox network without a prepared namespace');
    namespaces.push({ type: 'network', path: opts.netnsPath });
  }
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: proc.uid, gid: proc.gid, ...(proc.additionalGids?.length ? { additionalGids: proc.additionalGids } : {}) },
      args: proc.args,
      env: proc.env,
      cwd: proc.cwd,
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: true,
      ...(opts.pidsLimit > 0 ? { rlimits: [{ type: 'RLIMIT_NPROC' as const, hard: opts.pidsLimit, soft: opts.pidsLimit }] } : {}),
    },
    root: { path: rootfs, readonly: false },
    hostname: opts.hostname,
    mounts,
    linux: {
      namespaces,
      // Docker's default profile for the step's capabilities: unshare, mount, keyctl, bpf… get EPERM.
      ...(opts.insecure ? {} : { seccomp: defaultSeccompProfile({ capabilities: caps }) }),
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
