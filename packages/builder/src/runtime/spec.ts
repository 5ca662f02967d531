import { kernelHasMountSetattr } from './sandbox.js';

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
  };
  root: { path: string; readonly: boolean };
  hostname?: string;
  mounts: RuntimeMount[];
  linux: {
    namespaces: { type: 'pid' | 'ipc' | 'uts' | 'mount' | 'network' | 'user' | 'cgroup' }[];
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

export type NetworkMode = 'host' | 'none';

export interface StepProcess {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids?: number[];
}

/** Docker's default capability set for containers; RUN steps get the same. */
const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/**
 * Builds the config for one step. The build already runs in its own user
 * namespace, so the spec adds none: the step's root is the namespace's mapped
 * root. Host files that make networking work (resolv.conf, hosts) are bound
 * read-only, as BuildKit does, and only with the host network.
 */
export function buildRuntimeSpec(rootfs: string, proc: StepProcess, opts: { network: NetworkMode; hostname: string; tmpfsTmp: boolean; hostFiles: { resolvConf?: string; hosts?: string } }): RuntimeSpec {
  const caps = proc.uid === 0 ? DEFAULT_CAPABILITIES : [];
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
    mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] });
  }
  if (opts.network === 'host') {
    if (opts.hostFiles.resolvConf) mounts.push({ destination: '/etc/resolv.conf', type: 'bind', source: opts.hostFiles.resolvConf, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
    if (opts.hostFiles.hosts) mounts.push({ destination: '/etc/hosts', type: 'bind', source: opts.hostFiles.hosts, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
  }
  const namespaces: RuntimeSpec['linux']['namespaces'] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (opts.network === 'none') namespaces.push({ type: 'network' });
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
    },
    root: { path: rootfs, readonly: false },
    hostname: opts.hostname,
    mounts,
    linux: {
      namespaces,
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
