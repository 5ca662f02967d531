import { SeccompArchError } from '../errors.js';

/**
 * The seccomp filter for RUN steps: Docker's default profile, kept here as
 * data and evaluated into the OCI runtime-spec form runc reads.
 *
 * Source of the data: moby/profiles seccomp v0.2.3 (default.json, May 2026),
 * the profile Docker applies to containers. Facts taken from it: which
 * syscalls are allowed to every process, which only on some architectures,
 * which only with a capability, and the argument rules for clone, clone3,
 * personality and socket. Its JSON layout (archMap, includes/excludes) is not
 * copied; the tables below say the same thing in our terms.
 *
 * Why stowage keeps its own profile rather than reading
 * /usr/share/containers/seccomp.json at run time:
 * 1. that file is absent on runners without containers-common, and a build
 *    must not silently get a weaker sandbox there;
 * 2. it is in Docker's profile format (archMap, includes/excludes by caps,
 *    arch and minKernel), which has to be evaluated into the runtime-spec
 *    format anyway;
 * 3. a pinned profile gives the same sandbox on every host.
 * (Besides, the file Debian 12 installs there is containers/common's profile,
 * not Docker's: so that podman can run inside podman it lets any process call
 * unshare, mount, setns, pivot_root, keyctl... A RUN step gets what a Docker
 * container gets, where those fail with EPERM.)
 *
 * How runc 1.1 (libseccomp 2.5.4) loads it (libcontainer/seccomp):
 * - a name libseccomp does not know is skipped with a debug log ("unknown
 *   seccomp syscall ... ignored"), not an error, so names newer than Debian
 *   12's libseccomp 2.5.4 (statmount, listmount, mseal, lsm_*, the *xattrat
 *   family) stay in the list and take effect with a newer libseccomp;
 * - a syscall numbered above every syscall the filter names (that libseccomp
 *   knows), per architecture, gets ENOSYS instead of the default EPERM (runc's
 *   "-ENOSYS stub"), so libc falls back from syscalls newer than the filter,
 *   statmount and mseal included;
 * - a rule whose action equals the default action is dropped: explicit denials
 *   here must use another errno than EPERM (clone3's ENOSYS does).
 */

/** The parts of the runtime-spec `linux.seccomp` object (config-linux.md, "Seccomp") stowage fills. */
export type SeccompAction =
  | 'SCMP_ACT_KILL' | 'SCMP_ACT_KILL_PROCESS' | 'SCMP_ACT_KILL_THREAD' | 'SCMP_ACT_TRAP'
  | 'SCMP_ACT_ERRNO' | 'SCMP_ACT_TRACE' | 'SCMP_ACT_ALLOW' | 'SCMP_ACT_LOG' | 'SCMP_ACT_NOTIFY';

export type SeccompOperator =
  | 'SCMP_CMP_NE' | 'SCMP_CMP_LT' | 'SCMP_CMP_LE' | 'SCMP_CMP_EQ' | 'SCMP_CMP_GE' | 'SCMP_CMP_GT' | 'SCMP_CMP_MASKED_EQ';

export interface LinuxSeccompArg {
  index: number;
  /** For SCMP_CMP_MASKED_EQ the mask; the argument matches when (arg & value) == valueTwo. */
  value: number;
  valueTwo?: number;
  op: SeccompOperator;
}

export interface LinuxSyscall {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  /** All must match (a logical AND); alternatives are separate rules. */
  args?: LinuxSeccompArg[];
}

export interface LinuxSeccomp {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  /** Empty: only the native architecture (libseccomp's default). */
  architectures: string[];
  syscalls: LinuxSyscall[];
}

const EPERM = 1;
const ENOSYS = 38;

const names = (list: string): readonly string[] => list.trim().split(/\s+/);

/** Allowed to every process, whatever its capabilities and architecture. */
const ALLOWED_TO_ALL = names(`
  accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
  clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
  clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
  epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
  eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
  fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync
  fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync
  ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
  getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups
  getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
  getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
  get_thread_area gettid gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init
  inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
  io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule
  landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listmount
  listxattr listxattrat llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise
  map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2
  mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
  mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock
  munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause
  pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64
  prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev
  pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
  remap_file_pages removexattr removexattrat rename renameat renameat2 restart_syscall riscv_hwprobe
  rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
  rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
  sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
  sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
  sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
  sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
  setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
  setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
  setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask
  sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statmount statx symlink symlinkat
  sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
  timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
  timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask
  uname unlink unlinkat uretprobe utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid
  waitpid write writev
`);

/**
 * Docker allows these to all only on kernels >= 4.8, where seccomp checks a
 * syscall again after a tracer changed it (before, ptrace could bypass the
 * filter). Node 20's official binaries need glibc >= 2.28, which no
 * distribution with an older kernel ships, so here they are always allowed.
 */
const ALLOWED_SINCE_LINUX_4_8 = names('process_vm_readv process_vm_writev ptrace');

/**
 * Allowed only on these architectures, keyed by Docker's name for the native
 * architecture (Docker matches its `includes.arches` against the host's own
 * architecture only, not the 32-bit ones the filter also covers).
 */
const ALLOWED_ON_ARCH: Readonly<Record<string, readonly string[]>> = {
  amd64: names('arch_prctl modify_ldt'),
  x86: names('modify_ldt'),
  arm64: names('arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls'),
  arm: names('arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls'),
  ppc64le: names('sync_file_range2 swapcontext'),
  s390x: names('s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr'),
  riscv64: names('riscv_flush_icache'),
};

/**
 * Allowed only to a process whose bounding set holds the capability. A RUN
 * step's root has Docker's default 14 capabilities, none of these but
 * CAP_SYS_CHROOT; a non-root USER has none, so not even chroot.
 */
const ALLOWED_WITH_CAPABILITY: Readonly<Record<string, readonly string[]>> = {
  CAP_DAC_READ_SEARCH: names('open_by_handle_at'),
  // Namespaces and mounts: with CAP_SYS_ADMIN clone and clone3 lose their rules below too.
  CAP_SYS_ADMIN: names(`
    bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie lsm_get_self_attr
    lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount open_tree perf_event_open quotactl
    quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare
  `),
  CAP_SYS_BOOT: names('reboot'),
  CAP_SYS_CHROOT: names('chroot'),
  CAP_SYS_MODULE: names('delete_module init_module finit_module'),
  CAP_SYS_PACCT: names('acct'),
  CAP_SYS_PTRACE: names('kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace'),
  CAP_SYS_RAWIO: names('iopl ioperm'),
  CAP_SYS_TIME: names('settimeofday stime clock_settime clock_settime64'),
  CAP_SYS_TTY_CONFIG: names('vhangup'),
  CAP_SYS_NICE: names('get_mempolicy mbind set_mempolicy set_mempolicy_home_node'),
  CAP_SYSLOG: names('syslog'),
  CAP_BPF: names('bpf'),
  CAP_PERFMON: names('perf_event_open'),
};

/**
 * personality(2) only for the personas programs really switch to or ask for:
 * PER_LINUX, PER_LINUX32 (setarch i386), UNAME26, UNAME26|PER_LINUX32, and
 * 0xffffffff, which only queries. Other flags (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC...)
 * would weaken the address-space hardening of what runs next.
 */
const ALLOWED_PERSONAS = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/**
 * socket(2) for every address family but AF_ALG (38, the kernel crypto API: kernel
 * attack surface no build needs) and AF_VSOCK (40, host/guest sockets: a way out
 * to the hypervisor's services). One argument cannot be tested twice in a rule, so
 * the allowed domains are three ranges. socketcall(2), the 32-bit multiplexer,
 * stays allowed: seccomp cannot see the family behind its pointer, and old 32-bit
 * binaries need it (Docker dropped its block of it in v0.2.3 for that reason).
 */
const AF_ALG = 38;
const AF_VSOCK = 40;
const SOCKET_DOMAIN_RULES: LinuxSeccompArg[] = [
  { index: 0, value: AF_ALG, op: 'SCMP_CMP_LT' },
  { index: 0, value: AF_ALG + 1, op: 'SCMP_CMP_EQ' },
  { index: 0, value: AF_VSOCK, op: 'SCMP_CMP_GT' },
];

/** CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET */
const CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;

interface ArchProfile {
  /** Docker's name for the native architecture, the key of ALLOWED_ON_ARCH. */
  native: string;
  /** The runtime-spec architectures the filter covers: the native one and those the kernel also runs. */
  architectures: string[];
  /** Which clone(2) argument holds the flags (s390 swaps the first two). */
  cloneFlagsIndex: number;
}

/** Keyed by Node's process.arch. Architectures as Docker's archMap, where it has one. */
const ARCHES: Readonly<Record<string, ArchProfile>> = {
  x64: { native: 'amd64', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'], cloneFlagsIndex: 0 },
  arm64: { native: 'arm64', architectures: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'], cloneFlagsIndex: 0 },
  s390x: { native: 's390x', architectures: ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'], cloneFlagsIndex: 1 },
  // Not in Docker's archMap (which then lists none); naming the native
  // architecture is the same filter, and gives runc's ENOSYS stub an architecture.
  ia32: { native: 'x86', architectures: ['SCMP_ARCH_X86'], cloneFlagsIndex: 0 },
  arm: { native: 'arm', architectures: ['SCMP_ARCH_ARM'], cloneFlagsIndex: 0 },
  // Node calls ppc64le "ppc64" and has no big-endian Linux build.
  ppc64: { native: 'ppc64le', architectures: ['SCMP_ARCH_PPC64LE'], cloneFlagsIndex: 0 },
  // runc 1.1 rejects "SCMP_ARCH_RISCV64" (its table predates it) but libseccomp
  // 2.5.4 supports the architecture natively: no list means the native one.
  // The cost: runc then adds no ENOSYS stub, so unlisted new syscalls get EPERM.
  riscv64: { native: 'riscv64', architectures: [], cloneFlagsIndex: 0 },
};

/**
 * The seccomp filter for a RUN step's process on a host of architecture
 * `arch` (Node's process.arch), given the capabilities in its bounding set.
 * Everything not allowed fails with EPERM. Throws SeccompArchError for an
 * architecture without a profile (loong64, mips, 31/32-bit s390 and ppc),
 * rather than running the step unfiltered.
 */
export function defaultSeccompProfile(opts: { arch?: string; capabilities: readonly string[] }): LinuxSeccomp {
  const nodeArch = opts.arch ?? process.arch;
  const arch = Object.hasOwn(ARCHES, nodeArch) ? ARCHES[nodeArch] : undefined;
  if (!arch) {
    throw new SeccompArchError(`no seccomp profile for the ${nodeArch} architecture (supported: ${Object.keys(ARCHES).join(', ')})`);
  }
  const hasCapability = (cap: string) => opts.capabilities.includes(cap);
  const hasSysAdmin = hasCapability('CAP_SYS_ADMIN');

  const allowed = new Set<string>([...ALLOWED_TO_ALL, ...ALLOWED_SINCE_LINUX_4_8]);
  for (const name of ALLOWED_ON_ARCH[arch.native] ?? []) allowed.add(name);
  for (const [cap, capNames] of Object.entries(ALLOWED_WITH_CAPABILITY)) {
    if (hasCapability(cap)) for (const name of capNames) allowed.add(name);
  }

  const syscalls: LinuxSyscall[] = [
    { names: [...allowed].sort(), action: 'SCMP_ACT_ALLOW' },
    ...ALLOWED_PERSONAS.map((persona): LinuxSyscall => ({
      names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: persona, op: 'SCMP_CMP_EQ' }],
    })),
    ...SOCKET_DOMAIN_RULES.map((rule): LinuxSyscall => ({ names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [rule] })),
  ];
  if (!hasSysAdmin) {
    // Threads and processes, but no new namespaces: (flags & CLONE_NAMESPACE_FLAGS) == 0.
    syscalls.push({
      names: ['clone'], action: 'SCMP_ACT_ALLOW',
      args: [{ index: arch.cloneFlagsIndex, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
    });
    // clone3 passes its flags in a struct seccomp cannot read, so it cannot get
    // clone's rule. ENOSYS, not EPERM: glibc then falls back to clone.
    syscalls.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  }

  return { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: EPERM, architectures: [...arch.architectures], syscalls };
}
