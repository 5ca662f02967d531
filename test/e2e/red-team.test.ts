// A repository's Dockerfile attacks the runner it is built on (issue 13,
// docs/reliability.md "Attacks from a hostile repository"). The unprivileged
// test user builds each attack with default options, as a CI job building a
// pull request would; each test asserts the safe outcome, and where an
// option lifts the protection on purpose, that the option is what lifts it.
// Attacks covered elsewhere are listed in that table with their test files.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { writeFile } from 'node:fs/promises';
import { makeWorkDir, runStowage, testEnv, type RunResult, type WorkDir } from '../lib/index.js';

const T = 300_000;
const token = randomBytes(6).toString('hex');
const mirror = () => ['--registry-mirror', `docker.io=${testEnv().registry}`];

/** `KEY=value` lines a step printed as `RESULT KEY=value`. */
function results(stderr: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of stderr.matchAll(/^#\d+ RESULT ([\w./-]+)=(.*)$/gm)) out.set(m[1]!, m[2]!.trim());
  return out;
}

function ok(r: RunResult): void {
  expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
}

let work: WorkDir;
let server: Server;
let serverPort: number;

/** This machine's first non-loopback IPv4 address: "outbound" without leaving the machine. */
function hostAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new Error('this machine has no non-loopback IPv4 address: the outbound test needs one');
}

async function build(name: string, dockerfile: string, args: string[] = [], env: Record<string, string> = {}): Promise<RunResult> {
  await writeFile(work.path(`${name}.Dockerfile`), dockerfile);
  return runStowage(['build', '--root', work.root, ...mirror(), '--progress', 'plain', '--no-cache', '-f', `${name}.Dockerfile`, ...args, '-o', `type=oci,dest=../${name}.tar`, '.'], { cwd: work.dir, env });
}

beforeAll(async () => {
  work = await makeWorkDir({ 'ctx.txt': 'x\n' });
  // A service on every interface: the loopback one is the runner's "private" service,
  // the LAN one stands for the internet (tests stay on this machine).
  server = createServer((req, res) => {
    // A public-looking URL that bounces the builder to the runner's loopback.
    if (req.url === '/redirect') {
      res.writeHead(302, { location: `http://127.0.0.1:${serverPort}/secret` });
      res.end();
      return;
    }
    res.end(`secret-${token}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  serverPort = (server.address() as AddressInfo).port;
}, T);

afterAll(async () => {
  server?.close();
  await work?.rm();
}, T);

describe('network', () => {
  const probe = (host: string, key: string) =>
    `if printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} ${'${PORT}'} 2>/dev/null | grep -q secret-; then echo "RESULT ${key}=reached"; else echo "RESULT ${key}=unreachable"; fi`;
  const dockerfile = (runFlags = '') => `FROM busybox
ARG PORT
ARG HOST
RUN ${runFlags}${probe('127.0.0.1', 'loopback')}; ${probe('10.0.2.2', 'gateway')}; ${probe('${HOST}', 'lan')}; \\
    echo "RESULT unix=$(grep -c @ /proc/net/unix)"
`;
  const args = () => ['--build-arg', `PORT=${serverPort}`, '--build-arg', `HOST=${hostAddress()}`];

  test('by default a step reaches the network (here: the LAN address) but not the runner\'s 127.0.0.1 nor its abstract sockets', async () => {
    const r = await build('net-default', dockerfile(), args());
    ok(r);
    const res = results(r.stderr);
    expect(Object.fromEntries(['loopback', 'gateway', 'lan', 'unix'].map((k) => [k, res.get(k)]))).toEqual({ loopback: 'unreachable', gateway: 'unreachable', lan: 'reached', unix: '0' });
  }, T);

  test('RUN --network=host in the Dockerfile is refused without --allow network.host', async () => {
    const r = await build('net-host', dockerfile('--network=host '), args());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: net-host\.Dockerfile:4: RUN --network=host is not allowed: .*--allow network\.host/m);
    expect(results(r.stderr).size).toBe(0);
    const allowed = await build('net-host', dockerfile('--network=host '), [...args(), '--allow', 'network.host']);
    ok(allowed);
    expect(results(allowed.stderr).get('loopback')).toBe('reached');
  }, T);
});

describe('ADD <url> is fetched by the builder, on the host network', () => {
  const add = (url: string) => `FROM busybox\nADD ${url} /fetched\n`;

  test('a loopback or link-local URL, or a redirect to one, is refused without --allow network.host; the LAN address is fetched', async () => {
    const loopback = await build('add-loopback', add(`http://127.0.0.1:${serverPort}/secret`));
    expect(loopback.code).toBe(1);
    expect(loopback.stderr).toMatch(/^error: add-loopback\.Dockerfile:2: ADD http:\/\/127\.0\.0\.1:\d+\/secret: 127\.0\.0\.1 is a loopback or link-local address, .*--allow network\.host/m);
    const bounced = await build('add-redirect', add(`http://${hostAddress()}:${serverPort}/redirect`));
    expect(bounced.code).toBe(1);
    expect(bounced.stderr).toMatch(/^error: add-redirect\.Dockerfile:2: ADD .*127\.0\.0\.1 is a loopback or link-local address/m);
    const metadata = await build('add-metadata', add('http://169.254.169.254/latest/meta-data/iam/security-credentials/'));
    expect(metadata.stderr).toMatch(/169\.254\.169\.254 is a loopback or link-local address/);
    for (const r of [loopback, bounced, metadata]) expect(r.stderr).not.toContain(`secret-${token}`);
    ok(await build('add-lan', add(`http://${hostAddress()}:${serverPort}/secret`)));
    ok(await build('add-loopback', add(`http://127.0.0.1:${serverPort}/secret`), ['--allow', 'network.host']));
  }, T);
});

describe('seccomp and capabilities', () => {
  // x86_64 syscall numbers; what `docker build` denies with EPERM. The unshares come last:
  // where they succeed (insecure) they move the probe into namespaces where mount has no say.
  const SYSCALLS: Record<string, string> = {
    mount_tmpfs: 'libc.syscall(165, b"none", b"/mnt", b"tmpfs", 0, None)',
    keyctl: 'libc.syscall(250, 0, -3, 0)',
    add_key: 'libc.syscall(248, b"user", b"k", b"v", 1, -3)',
    bpf: 'libc.syscall(321, 0, None, 0)',
    userfaultfd: 'libc.syscall(323, 0)',
    perf_event_open: 'libc.syscall(298, None, 0, -1, -1, 0)',
    kexec_load: 'libc.syscall(246, 0, 0, None, 0)',
    init_module: 'libc.syscall(175, None, 0, b"")',
    getpid: 'libc.syscall(39)',
    unshare_net: 'libc.syscall(272, 0x40000000)',
    unshare_user: 'libc.syscall(272, 0x10000000)',
  };
  const script = `import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
${Object.entries(SYSCALLS).map(([k, call]) => `r = ${call}; print("RESULT ${k}=" + ("ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")), flush=True)`).join('\n')}
print("RESULT seccomp=" + [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")][0], flush=True)
`;
  const dockerfile = (runFlags = '') => `FROM python:3.11-slim-bookworm
RUN ${runFlags}python3 - <<'PY'
${script}PY
`;

  test('the kernel surface behind container escapes is denied with EPERM (the default profile), ordinary syscalls work', async () => {
    expect(process.arch).toBe('x64'); // the syscall numbers above
    const r = await build('seccomp', dockerfile());
    ok(r);
    const res = results(r.stderr);
    expect(res.get('seccomp')).toBe('2');
    expect(res.get('getpid')).toBe('ok');
    const denied = Object.keys(SYSCALLS).filter((k) => k !== 'getpid');
    expect(Object.fromEntries(denied.map((k) => [k, res.get(k)]))).toEqual(Object.fromEntries(denied.map((k) => [k, 'EPERM'])));
  }, T);

  test('RUN --security=insecure is refused without --allow security.insecure, and unconfined with it', async () => {
    const r = await build('insecure', dockerfile('--security=insecure '));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: insecure\.Dockerfile:2: RUN --security=insecure is not allowed: .*--allow security\.insecure/m);
    const allowed = await build('insecure', dockerfile('--security=insecure '), ['--allow', 'security.insecure']);
    ok(allowed);
    const res = results(allowed.stderr);
    expect({ seccomp: res.get('seccomp'), unshare: res.get('unshare_user'), mount: res.get('mount_tmpfs') }).toEqual({ seccomp: '0', unshare: 'ok', mount: 'ok' });
  }, T);
});

describe('bounds', () => {
  test('/tmp of an image without one is a tmpfs with a size (STOWAGE_TMPFS_SIZE), and so is RUN --mount=type=tmpfs without size=', async () => {
    const r = await build('tmpfs', `FROM busybox
RUN rm -rf /tmp
RUN if dd if=/dev/zero of=/tmp/fill bs=1M count=40 2>/dev/null; then echo RESULT tmp=wrote; else echo RESULT tmp=full; fi; echo "RESULT tmpsize=$(df -k /tmp | awk 'NR==2 {print $2}')"
RUN --mount=type=tmpfs,target=/scratch if dd if=/dev/zero of=/scratch/fill bs=1M count=40 2>/dev/null; then echo RESULT mount=wrote; else echo RESULT mount=full; fi
`, [], { STOWAGE_TMPFS_SIZE: '16m' });
    ok(r);
    const res = results(r.stderr);
    expect({ tmp: res.get('tmp'), size: res.get('tmpsize'), mount: res.get('mount') }).toEqual({ tmp: 'full', size: '16384', mount: 'full' });
  }, T);

  test('a fork bomb is held to STOWAGE_PIDS_LIMIT processes, and the step ends', async () => {
    // The inner shell stops at its first failed fork; what it started is counted with shell
    // builtins only (a $(…) would need a fork too), then killed.
    const r = await build('pids', `FROM busybox
RUN sh -c 'i=0; while [ $i -lt 300 ]; do sleep 60 & i=$((i+1)); done' 2>/dev/null; n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo "RESULT procs=$n"; kill -9 -1; true
`, [], { STOWAGE_PIDS_LIMIT: '100' });
    ok(r);
    const procs = Number(results(r.stderr).get('procs'));
    expect(procs).toBeGreaterThan(10);
    expect(procs).toBeLessThan(100);
  }, T);
});

describe('the Dockerfile is data, not output', () => {
  test('a parse error quotes a bounded, printable excerpt, never a whole line of what -f points at', async () => {
    const secret = `dXNlcjpwYXNzd29yZA${token}`;
    await writeFile(work.path('creds.json'), `{"auths":{"registry.example.com":{"auth":"${secret}"}}}\n`);
    const r = await runStowage(['build', '--root', work.root, '-f', 'creds.json', '-o', 'type=oci,dest=../creds.tar', '.'], { cwd: work.dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: creds\.json:1: unknown instruction: \{"auths":\{"registry\.example\.com":\{"auth…$/m);
    expect(r.stderr).not.toContain(secret);
    await writeFile(work.path('escape.Dockerfile'), `\u001b]0;pwned\u0007\u001b[2J${'A'.repeat(5000)}\n`);
    const esc = await runStowage(['build', '--root', work.root, '-f', 'escape.Dockerfile', '-o', 'type=oci,dest=../esc.tar', '.'], { cwd: work.dir });
    expect(esc.code).toBe(1);
    expect(esc.stderr).not.toMatch(/\u001b|\u0007/);
    expect(esc.stderr).toMatch(/unknown instruction: \\x1b\]0;pwned\\x07\\x1b\[2JA+…/);
    expect(esc.stderr.length).toBeLessThan(1000);
  }, T);
});
