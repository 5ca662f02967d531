import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeccompArchError } from '../../src/errors.js';
import { defaultSeccompProfile, type LinuxSeccomp, type LinuxSeccompArg, type LinuxSyscall } from '../../src/runtime/seccomp.js';

/** What a RUN step's root holds (Docker's default set); a non-root USER holds none. */
const DEFAULT_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];
const CLONE_NAMESPACE_FLAGS = 0x7e020000;
const EPERM = 1;
const ENOSYS = 38;

const rootProfile = (arch = 'x64') => defaultSeccompProfile({ arch, capabilities: DEFAULT_CAPS });
const rulesFor = (p: LinuxSeccomp, name: string) => p.syscalls.filter((s) => s.names.includes(name));
const allowedOutright = (p: LinuxSeccomp, name: string) => rulesFor(p, name).some((s) => s.action === 'SCMP_ACT_ALLOW' && !s.args?.length);
/** Neither outright nor under an argument rule: the call fails whatever its arguments. */
const neverAllowed = (p: LinuxSeccomp, name: string) => rulesFor(p, name).every((s) => s.action !== 'SCMP_ACT_ALLOW');

describe('defaultSeccompProfile', () => {
  test('everything not allowed fails with EPERM', () => {
    const p = rootProfile();
    expect(p.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(p.defaultErrnoRet).toBe(EPERM);
  });

  test('root with the default capabilities: no namespaces, mounts, keyrings, BPF, modules, kexec', () => {
    const p = rootProfile();
    for (const name of [
      'unshare', 'setns', 'mount', 'umount2', 'pivot_root', 'fsopen', 'move_mount', 'open_tree', 'keyctl', 'add_key', 'request_key',
      'bpf', 'userfaultfd', 'perf_event_open', 'kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module',
      'reboot', 'swapon', 'acct', 'settimeofday', 'clock_settime', 'syslog', 'open_by_handle_at', 'iopl', 'io_uring_setup', 'sethostname',
    ]) {
      expect({ name, allowed: !neverAllowed(p, name) }).toEqual({ name, allowed: false });
    }
  });

  test('the ordinary calls are allowed', () => {
    const p = rootProfile();
    for (const name of ['read', 'write', 'execve', 'openat', 'close', 'mmap', 'fork', 'vfork', 'wait4', 'chown', 'chroot', 'ptrace', 'setuid', 'mknod']) {
      expect({ name, allowed: allowedOutright(p, name) }).toEqual({ name, allowed: true });
    }
  });

  test('clone only without namespace flags; clone3 answers ENOSYS so libc falls back to clone', () => {
    const p = rootProfile();
    expect(rulesFor(p, 'clone')).toEqual([
      { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
    ]);
    expect(rulesFor(p, 'clone3')).toEqual([{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS }]);
  });

  test('s390x has the clone flags in the second argument', () => {
    const [rule] = rulesFor(rootProfile('s390x'), 'clone');
    expect(rule!.args).toEqual([{ index: 1, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]);
  });

  test('CAP_SYS_ADMIN names appear only with that capability, which also lifts the clone rules', () => {
    const adminOnly = ['mount', 'umount2', 'unshare', 'setns', 'sethostname', 'fsopen', 'quotactl', 'lookup_dcookie', 'fanotify_init'];
    const without = rootProfile();
    const withAdmin = defaultSeccompProfile({ arch: 'x64', capabilities: [...DEFAULT_CAPS, 'CAP_SYS_ADMIN'] });
    for (const name of adminOnly) {
      expect({ name, without: allowedOutright(without, name), withAdmin: allowedOutright(withAdmin, name) }).toEqual({ name, without: false, withAdmin: true });
    }
    expect(rulesFor(withAdmin, 'clone')).toEqual([expect.objectContaining({ action: 'SCMP_ACT_ALLOW' })]);
    expect(rulesFor(withAdmin, 'clone')[0]!.args).toBeUndefined();
    expect(rulesFor(withAdmin, 'clone3').map((s) => s.action)).toEqual(['SCMP_ACT_ALLOW']);
  });

  test('other capability-gated names follow their capability', () => {
    const allowedWith = (caps: string[], name: string) => allowedOutright(defaultSeccompProfile({ arch: 'x64', capabilities: caps }), name);
    expect(allowedWith(['CAP_BPF'], 'bpf')).toBe(true);
    expect(allowedWith(['CAP_BPF'], 'perf_event_open')).toBe(false);
    expect(allowedWith(['CAP_PERFMON'], 'perf_event_open')).toBe(true);
    expect(allowedWith(['CAP_SYS_PTRACE'], 'kcmp')).toBe(true);
    expect(allowedWith(['CAP_SYS_MODULE'], 'init_module')).toBe(true);
    expect(allowedWith(['CAP_SYS_TIME'], 'clock_settime')).toBe(true);
    expect(allowedWith(['CAP_SYS_NICE'], 'mbind')).toBe(true);
    expect(allowedWith(['CAP_DAC_READ_SEARCH'], 'open_by_handle_at')).toBe(true);
  });

  test('a non-root USER (no capabilities) loses chroot too', () => {
    expect(allowedOutright(rootProfile(), 'chroot')).toBe(true);
    expect(neverAllowed(defaultSeccompProfile({ arch: 'x64', capabilities: [] }), 'chroot')).toBe(true);
  });

  test('personality only for the standard personas and the query', () => {
    const values = rulesFor(rootProfile(), 'personality').map((s) => {
      expect(s.action).toBe('SCMP_ACT_ALLOW');
      expect(s.args).toHaveLength(1);
      expect(s.args![0]).toMatchObject({ index: 0, op: 'SCMP_CMP_EQ' });
      return s.args![0]!.value;
    });
    expect(values.sort((a, b) => a - b)).toEqual([0x0, 0x8, 0x20000, 0x20008, 0xffffffff]);
  });

  test('socket for every domain but AF_ALG (38) and AF_VSOCK (40)', () => {
    const rules = rulesFor(rootProfile(), 'socket');
    expect(rules.every((s) => s.action === 'SCMP_ACT_ALLOW' && s.args?.length === 1 && s.args[0]!.index === 0)).toBe(true);
    const domainAllowed = (domain: number) => rules.some((s) => matches(s.args![0]!, domain));
    expect([0, 1, 2, 10, 16, 17, 37, 39, 41, 45].filter((d) => !domainAllowed(d))).toEqual([]);
    expect(domainAllowed(38)).toBe(false);
    expect(domainAllowed(40)).toBe(false);
  });

  test('architectures follow the host; arch-specific names only there', () => {
    const x64 = rootProfile('x64');
    const arm64 = rootProfile('arm64');
    expect(x64.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    expect(arm64.architectures).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    expect(rootProfile('s390x').architectures).toEqual(['SCMP_ARCH_S390X', 'SCMP_ARCH_S390']);
    expect(allowedOutright(x64, 'arch_prctl') && allowedOutright(x64, 'modify_ldt')).toBe(true);
    expect(allowedOutright(arm64, 'arch_prctl') || allowedOutright(arm64, 'modify_ldt')).toBe(false);
    expect(allowedOutright(arm64, 'sync_file_range2') && allowedOutright(arm64, 'set_tls')).toBe(true);
    expect(allowedOutright(x64, 'sync_file_range2')).toBe(false);
    expect(defaultSeccompProfile({ capabilities: [] }).architectures).toEqual(defaultSeccompProfile({ arch: process.arch, capabilities: [] }).architectures);
  });

  test('an architecture without a profile is refused with E_SECCOMP_ARCH, not run unfiltered', () => {
    for (const arch of ['loong64', 'mips', 'ppc', 's390', 'sparc', 'toString']) {
      const err = (() => { try { defaultSeccompProfile({ arch, capabilities: [] }); } catch (e) { return e; } })();
      expect(err).toBeInstanceOf(SeccompArchError);
      expect(err).toMatchObject({ code: 'E_SECCOMP_ARCH', message: expect.stringContaining(arch) });
    }
  });

  test('shape runc relies on: one allow list without duplicates, no rule that repeats the default action', () => {
    for (const caps of [DEFAULT_CAPS, [], [...DEFAULT_CAPS, 'CAP_SYS_ADMIN', 'CAP_BPF', 'CAP_PERFMON', 'CAP_SYSLOG']]) {
      const p = defaultSeccompProfile({ arch: 'x64', capabilities: caps });
      const plainAllow = p.syscalls.filter((s) => s.action === 'SCMP_ACT_ALLOW' && !s.args);
      expect(plainAllow).toHaveLength(1);
      expect(new Set(plainAllow[0]!.names).size).toBe(plainAllow[0]!.names.length);
      // runc drops a rule whose action equals the default one, so such a rule would be a no-op.
      expect(p.syscalls.filter((s) => s.action === p.defaultAction && (s.errnoRet ?? EPERM) === p.defaultErrnoRet)).toEqual([]);
      for (const s of p.syscalls) for (const a of s.args ?? []) expect(a.index).toBeLessThan(6);
    }
  });

  test('each call returns a fresh object', () => {
    const a = rootProfile();
    a.architectures.push('SCMP_ARCH_PPC');
    a.syscalls[0]!.names.push('kexec_load');
    expect(rootProfile().architectures).toHaveLength(3);
    expect(allowedOutright(rootProfile(), 'kexec_load')).toBe(false);
  });
});

function matches(arg: LinuxSeccompArg, value: number): boolean {
  switch (arg.op) {
    case 'SCMP_CMP_EQ': return value === arg.value;
    case 'SCMP_CMP_NE': return value !== arg.value;
    case 'SCMP_CMP_LT': return value < arg.value;
    case 'SCMP_CMP_LE': return value <= arg.value;
    case 'SCMP_CMP_GT': return value > arg.value;
    case 'SCMP_CMP_GE': return value >= arg.value;
    case 'SCMP_CMP_MASKED_EQ': return (value & arg.value) === (arg.valueTwo ?? 0);
  }
}

/*
 * The containers-common profile (Debian's /usr/share/containers/seccomp.json,
 * golang-github-containers-common 0.50.1) evaluated for the same capabilities
 * and architecture, compared name by name. It is NOT Docker's profile: podman
 * lets containers nest, so it allows namespaces and mounts to all, and it is
 * older than Docker's current one. Every name treated differently is below.
 */
const CONTAINERS_COMMON_PROFILE = '/usr/share/containers/seccomp.json';

const INTENDED_DIFFERENCES: readonly string[] = [
  // Namespaces and mounts. Docker (and we) allow them only with CAP_SYS_ADMIN, which a
  // RUN step never has: clone only without CLONE_NEW* flags, clone3 ENOSYS (its flags
  // are out of seccomp's reach), pivot_root never. containers-common allows all to all.
  'clone', 'clone3', 'unshare', 'setns', 'mount', 'umount', 'umount2', 'pivot_root',
  'mount_setattr', 'move_mount', 'open_tree', 'fsopen', 'fsconfig', 'fsmount', 'fspick',
  // Keyrings are not namespaced: Docker denies keyctl (add_key, request_key too); containers-common allows keyctl.
  'keyctl',
  // Docker gates these behind a capability the step lacks (CAP_SYSLOG or CAP_SYS_ADMIN,
  // CAP_SYS_BOOT, CAP_SYS_PTRACE, CAP_SYS_NICE); containers-common allows them to all.
  'syslog', 'reboot', 'pidfd_getfd', 'get_mempolicy', 'mbind', 'set_mempolicy',
  // socket: we (Docker) refuse AF_ALG and AF_VSOCK; containers-common instead answers EINVAL
  // for NETLINK_AUDIT sockets when CAP_AUDIT_WRITE is missing, and allows everything else.
  'socket',
  // Syscalls newer than containers-common 0.50.1 (2022), allowed by Docker's current
  // profile; containers-common answers its default ENOSYS.
  'cachestat', 'fchmodat2', 'futex_requeue', 'futex_wait', 'futex_waitv', 'futex_wake', 'map_shadow_stack',
  'mseal', 'listmount', 'statmount', 'getxattrat', 'setxattrat', 'listxattrat', 'removexattrat',
  'riscv_hwprobe', 'uretprobe', 'io_pgetevents_time64',
  // Allowed by Docker, denied (EPERM) by containers-common.
  'io_pgetevents', 'vmsplice',
  // Legacy or other-architecture names containers-common allows and Docker does not list
  // (on x86-64 hosts they would reach the 32-bit x86 table): EPERM here, as in Docker.
  'readdir', 'signal', 'sigaction', 'sigpending', 'sigsuspend', 'syscall', 'timerfd',
];

/** A profile in Docker's format, as containers-common writes it. */
interface DockerFormatRule {
  names: string[];
  action: LinuxSyscall['action'];
  errnoRet?: number;
  args?: LinuxSeccompArg[] | null;
  includes?: { caps?: string[]; arches?: string[]; minKernel?: string };
  excludes?: { caps?: string[]; arches?: string[]; minKernel?: string };
}
interface DockerFormatProfile { defaultAction: LinuxSeccomp['defaultAction']; defaultErrnoRet?: number; syscalls: DockerFormatRule[] }

/** Docker's evaluation (moby/profiles seccomp_linux.go setupSeccomp): includes must all hold, any exclude drops the rule. */
function evaluateDockerFormat(profile: DockerFormatProfile, nativeArch: string, caps: readonly string[]): Pick<LinuxSeccomp, 'defaultErrnoRet' | 'syscalls'> {
  const kept = profile.syscalls.filter(({ includes: inc = {}, excludes: exc = {} }) => {
    if (exc.arches?.includes(nativeArch) || exc.caps?.some((c) => caps.includes(c))) return false;
    if (inc.arches?.length && !inc.arches.includes(nativeArch)) return false;
    if (inc.caps?.some((c) => !caps.includes(c))) return false;
    // minKernel: hosts of stowage have kernels >= 4.8 (see seccomp.ts), Docker's only threshold.
    return exc.minKernel === undefined;
  });
  return { defaultErrnoRet: profile.defaultErrnoRet, syscalls: kept.map(({ names, action, errnoRet, args }) => ({ names, action, errnoRet, args: args ?? undefined })) };
}

/** For each name a profile mentions, what a call gets: "allow", "errno N", or its argument rules. */
function treatments(p: Pick<LinuxSeccomp, 'defaultErrnoRet' | 'syscalls'>): Map<string, string> {
  const byName = new Map<string, Set<string>>();
  for (const rule of p.syscalls) {
    const outcome = rule.action === 'SCMP_ACT_ERRNO' ? `errno ${rule.errnoRet ?? p.defaultErrnoRet}` : rule.action === 'SCMP_ACT_ALLOW' ? 'allow' : rule.action;
    const when = rule.args?.length ? ` if ${rule.args.map((a) => `arg${a.index} ${a.op} ${a.value}/${a.valueTwo ?? 0}`).join(' && ')}` : '';
    for (const name of rule.names) {
      if (!byName.has(name)) byName.set(name, new Set());
      byName.get(name)!.add(outcome + when);
    }
  }
  return new Map([...byName].map(([name, all]) => [name, all.has('allow') ? 'allow' : [...all].sort().join(' | ')]));
}

describe('compared with the containers-common profile', () => {
  // Read in the tests, so that a missing file fails them rather than the whole suite.
  let cached: DockerFormatProfile | undefined;
  const containersCommon = () => (cached ??= JSON.parse(readFileSync(CONTAINERS_COMMON_PROFILE, 'utf8')) as DockerFormatProfile);
  const scenarios = [
    { arch: 'x64', dockerArch: 'amd64', who: 'root', caps: DEFAULT_CAPS },
    { arch: 'x64', dockerArch: 'amd64', who: 'non-root', caps: [] },
    { arch: 'arm64', dockerArch: 'arm64', who: 'root', caps: DEFAULT_CAPS },
    { arch: 'arm64', dockerArch: 'arm64', who: 'non-root', caps: [] },
  ];
  const differing = (s: (typeof scenarios)[number]) => {
    const ours = defaultSeccompProfile({ arch: s.arch, capabilities: s.caps });
    const theirs = evaluateDockerFormat(containersCommon(), s.dockerArch, s.caps);
    const [o, t] = [treatments(ours), treatments(theirs)];
    const diffs = new Map<string, string>();
    for (const name of new Set([...o.keys(), ...t.keys()])) {
      const mine = o.get(name) ?? `errno ${ours.defaultErrnoRet}`;
      const other = t.get(name) ?? `errno ${theirs.defaultErrnoRet}`;
      if (mine !== other) diffs.set(name, `ours: ${mine}; containers-common: ${other}`);
    }
    return diffs;
  };

  test.each(scenarios)('$arch, $who: every difference is an intended one', (s) => {
    const unexpected = [...differing(s)].filter(([name]) => !INTENDED_DIFFERENCES.includes(name));
    expect(unexpected).toEqual([]);
  });

  test('every intended difference still is one (the list does not go stale)', () => {
    const seen = new Set(scenarios.flatMap((s) => [...differing(s).keys()]));
    expect(INTENDED_DIFFERENCES.filter((name) => !seen.has(name))).toEqual([]);
  });

  test('the default errno differs: EPERM as in Docker, where containers-common answers ENOSYS', () => {
    expect(containersCommon().defaultErrnoRet).toBe(ENOSYS);
    expect(rootProfile().defaultErrnoRet).toBe(EPERM);
  });
});

/*
 * The profile in a real runc (the one RUN steps use), as root in a temporary
 * bundle whose rootfs is a static busybox. No skipping: without runc, busybox
 * or root these tests fail and say what is missing.
 */
describe('in runc', () => {
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
  const runcVersion = spawnSync('runc', ['--version'], { encoding: 'utf8' });
  let dir: string;
  let runs = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-seccomp-'));
    const rootfs = join(dir, 'bundle', 'rootfs');
    for (const d of ['bin', 'proc', 'dev', 'mnt', 'tmp']) await mkdir(join(rootfs, d), { recursive: true });
    if (busybox) await copyFile(busybox, join(rootfs, 'bin', 'busybox'));
    for (const applet of ['sh', 'echo', 'grep', 'unshare', 'mount', 'true']) await symlink('busybox', join(rootfs, 'bin', applet));
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /**
   * The process holds CAP_SYS_ADMIN on top of the default set, while the filter is
   * built for the default set: the kernel would allow mount and unshare, so a
   * refusal can only come from the filter (the control run without it shows that).
   */
  async function runInRunc(script: string, seccomp: LinuxSeccomp | undefined, runcFlags: string[] = []) {
    const caps = [...DEFAULT_CAPS, 'CAP_SYS_ADMIN'];
    const config = {
      ociVersion: '1.0.2',
      process: {
        terminal: false, user: { uid: 0, gid: 0 }, args: ['/bin/sh', '-c', script], env: ['PATH=/bin'], cwd: '/',
        capabilities: { bounding: caps, effective: caps, permitted: caps }, noNewPrivileges: true,
      },
      root: { path: 'rootfs', readonly: false },
      mounts: [{ destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] }],
      linux: { namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }], ...(seccomp ? { seccomp } : {}) },
    };
    await writeFile(join(dir, 'bundle', 'config.json'), JSON.stringify(config));
    const id = `stowage-seccomp-${process.pid}-${++runs}`;
    const r = spawnSync('runc', [...runcFlags, '--root', join(dir, 'state'), 'run', '--bundle', join(dir, 'bundle'), id], { encoding: 'utf8', timeout: 20_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  const probe = `echo ok; grep '^Seccomp:' /proc/self/status
    unshare -U true && echo unshare:allowed
    mount -t tmpfs x /mnt && echo mount:allowed
    true`;

  test('runc, a static busybox and root are available (the tests below need them)', () => {
    expect({ runc: runcVersion.error?.message ?? runcVersion.stdout.split('\n')[0] }).toEqual({ runc: expect.stringMatching(/^runc version /) });
    expect({ busybox }).toEqual({ busybox: expect.any(String) });
    expect({ uid: process.getuid?.() }).toEqual({ uid: 0 });
  });

  test('control: without the filter the same process may unshare and mount', async () => {
    const r = await runInRunc(probe, undefined);
    expect(r).toMatchObject({ status: 0, stdout: expect.stringContaining('ok\n') });
    expect(r.stdout).toMatch(/Seccomp:\s+0/);
    expect(r.stdout).toContain('unshare:allowed');
    expect(r.stdout).toContain('mount:allowed');
  });

  test('with the profile: echo works, unshare -U and mount fail with EPERM', async () => {
    const r = await runInRunc(probe, rootProfile(process.arch));
    expect(r).toMatchObject({ status: 0, stdout: expect.stringContaining('ok\n') });
    expect(r.stdout).toMatch(/Seccomp:\s+2/);
    expect(r.stdout).not.toContain('unshare:allowed');
    expect(r.stdout).not.toContain('mount:allowed');
    expect(r.stderr).toContain('unshare(0x10000000): Operation not permitted');
    // busybox mount words EPERM (and EACCES) this way rather than with strerror.
    expect(r.stderr).toContain('mount: permission denied');
  });

  test('runc 1.1 ignores a syscall name libseccomp does not know, with a debug log', async () => {
    const p = rootProfile(process.arch);
    p.syscalls[0]!.names.push('stowage_no_such_syscall');
    const r = await runInRunc('echo ok', p, ['--debug']);
    expect(r).toMatchObject({ status: 0, stdout: 'ok\n' });
    expect(r.stderr).toMatch(/unknown seccomp syscall \\?"stowage_no_such_syscall\\?" ignored/);
  });
});
