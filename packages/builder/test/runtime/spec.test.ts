import { kernelHasMountSetattr } from '../../src/runtime/sandbox.js';
import { buildRuntimeSpec, type NetworkMode, type StepProcess } from '../../src/runtime/spec.js';

const root: StepProcess = { args: ['/bin/sh', '-c', 'true'], env: ['PATH=/bin'], cwd: '/', uid: 0, gid: 0 };
const networkFiles = { resolvConf: '/etc/resolv.conf', hosts: '/etc/hosts' };
const bounds = { tmpfsBytes: 1 << 30, pidsLimit: 4096 };

function spec(network: NetworkMode, proc: StepProcess = root, tmpfsTmp = false) {
  return buildRuntimeSpec('/rootfs', proc, { network, hostname: 'buildhost', tmpfsTmp, networkFiles, netnsPath: '/proc/42/ns/net', ...bounds });
}

const dest = (s: ReturnType<typeof spec>, d: string) => s.mounts.filter((m) => m.destination === d);

describe('buildRuntimeSpec', () => {
  test('basic shape', () => {
    const s = spec('host');
    expect(s.root).toEqual({ path: '/rootfs', readonly: false });
    expect(s.hostname).toBe('buildhost');
    expect(s.process).toMatchObject({ args: root.args, env: root.env, cwd: '/', user: { uid: 0, gid: 0 }, terminal: false });
    expect(s.process.user).not.toHaveProperty('additionalGids');
    expect(dest(s, '/proc')).toHaveLength(1);
    expect(s.linux.namespaces.map((n) => n.type)).not.toContain('user');
  });

  test('network none: a network namespace, no host resolv.conf or hosts', () => {
    const s = spec('none');
    expect(s.linux.namespaces.map((n) => n.type)).toContain('network');
    expect(dest(s, '/etc/resolv.conf')).toEqual([]);
    expect(dest(s, '/etc/hosts')).toEqual([]);
  });

  test('network host: no network namespace, resolv.conf and hosts bound read-only', () => {
    const s = spec('host');
    expect(s.linux.namespaces.map((n) => n.type)).not.toContain('network');
    const [resolv] = dest(s, '/etc/resolv.conf');
    const [hosts] = dest(s, '/etc/hosts');
    expect(resolv).toMatchObject({ type: 'bind', source: '/etc/resolv.conf' });
    expect(hosts).toMatchObject({ type: 'bind', source: '/etc/hosts' });
    expect(resolv!.options).toContain('ro');
    expect(hosts!.options).toContain('ro');
  });

  test('network host without host files binds nothing', () => {
    const s = buildRuntimeSpec('/r', root, { network: 'host', hostname: 'h', tmpfsTmp: false, networkFiles: {}, ...bounds });
    expect(dest(s, '/etc/resolv.conf')).toEqual([]);
    expect(dest(s, '/etc/hosts')).toEqual([]);
  });

  test('root gets the default capabilities, a non-root user none', () => {
    const r = spec('host');
    expect(r.process.capabilities!.bounding).toContain('CAP_CHOWN');
    expect(r.process.capabilities!.effective).toContain('CAP_SETUID');
    expect(r.process.capabilities!.bounding).not.toContain('CAP_SYS_ADMIN');
    const u = spec('host', { ...root, uid: 1000, gid: 1000, additionalGids: [10, 20] });
    expect(u.process.capabilities).toEqual({ bounding: [], effective: [], permitted: [] });
    expect(u.process.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [10, 20] });
  });

  test('network sandbox: joins the prepared namespace, binds the generated resolv.conf and hosts', () => {
    const s = spec('sandbox');
    expect(s.linux.namespaces).toContainEqual({ type: 'network', path: '/proc/42/ns/net' });
    expect(dest(s, '/etc/resolv.conf')).toEqual([expect.objectContaining({ type: 'bind', source: '/etc/resolv.conf' })]);
    expect(() => buildRuntimeSpec('/r', root, { network: 'sandbox', hostname: 'h', tmpfsTmp: false, networkFiles: {}, ...bounds })).toThrow(/namespace/);
  });

  test('tmpfs /tmp only when asked, always with a size', () => {
    expect(dest(spec('host'), '/tmp')).toEqual([]);
    expect(dest(spec('host', root, true), '/tmp')).toEqual([expect.objectContaining({ type: 'tmpfs' })]);
    expect(dest(spec('host', root, true), '/tmp')[0]!.options).toContain(`size=${1 << 30}`);
    for (const m of spec('host', root, true).mounts.filter((m) => m.type === 'tmpfs')) expect(m.options!.some((o) => o.startsWith('size='))).toBe(true);
  });

  test('a process limit (RLIMIT_NPROC) unless 0', () => {
    expect(spec('host').process.rlimits).toEqual([{ type: 'RLIMIT_NPROC', hard: 4096, soft: 4096 }]);
    expect(buildRuntimeSpec('/r', root, { network: 'host', hostname: 'h', tmpfsTmp: false, networkFiles: {}, tmpfsBytes: 1, pidsLimit: 0 }).process).not.toHaveProperty('rlimits');
  });

  test('the default seccomp profile, for the step\'s capabilities; insecure: every capability and no filter', () => {
    expect(spec('host').linux.seccomp).toMatchObject({ defaultAction: 'SCMP_ACT_ERRNO' });
    const allowed = (s: ReturnType<typeof spec>) => s.linux.seccomp!.syscalls.filter((c) => c.action === 'SCMP_ACT_ALLOW' && !c.args).flatMap((c) => c.names);
    expect(allowed(spec('host'))).toContain('chroot');
    expect(allowed(spec('host', { ...root, uid: 1000, gid: 1000 }))).not.toContain('chroot');
    const s = buildRuntimeSpec('/r', { ...root, uid: 1000 }, { network: 'host', hostname: 'h', tmpfsTmp: false, networkFiles: {}, ...bounds, insecure: true });
    expect(s.process.capabilities!.bounding).toContain('CAP_SYS_ADMIN');
    expect(s.linux).not.toHaveProperty('seccomp');
  });

  test('noNewPrivileges always', () => {
    expect(spec('host').process.noNewPrivileges).toBe(true);
    expect(spec('none', { ...root, uid: 5 }).process.noNewPrivileges).toBe(true);
  });

  test('masked and read-only proc paths', () => {
    const s = spec('none');
    expect(s.linux.maskedPaths).toContain('/proc/kcore');
    expect(s.linux.readonlyPaths).toContain('/proc/sys');
  });

  test('/sys is read-only, recursively where the kernel has mount_setattr (host cgroups under it)', () => {
    const [sys] = dest(spec('host'), '/sys');
    expect(sys!.options).toEqual(expect.arrayContaining(['rbind', 'ro', 'nosuid', 'nodev', 'noexec']));
    expect(sys!.options!.includes('rro')).toBe(kernelHasMountSetattr());
  });
});
