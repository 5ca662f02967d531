import { kernelHasMountSetattr } from '../../src/runtime/sandbox.js';
import { buildRuntimeSpec, type NetworkMode, type StepProcess } from '../../src/runtime/spec.js';

const root: StepProcess = { args: ['/bin/sh', '-c', 'true'], env: ['PATH=/bin'], cwd: '/', uid: 0, gid: 0 };
const hostFiles = { resolvConf: '/etc/resolv.conf', hosts: '/etc/hosts' };

function spec(network: NetworkMode, proc: StepProcess = root, tmpfsTmp = false) {
  return buildRuntimeSpec('/rootfs', proc, { network, hostname: 'buildhost', tmpfsTmp, hostFiles });
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
    const s = buildRuntimeSpec('/r', root, { network: 'host', hostname: 'h', tmpfsTmp: false, hostFiles: {} });
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

  test('tmpfs /tmp only when asked', () => {
    expect(dest(spec('host'), '/tmp')).toEqual([]);
    expect(dest(spec('host', root, true), '/tmp')).toEqual([expect.objectContaining({ type: 'tmpfs' })]);
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
