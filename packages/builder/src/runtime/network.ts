import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { NetworkSetupError } from '../errors.js';

/**
 * RUN's default network: a network namespace of its own, with outbound
 * access through slirp4netns (a user-mode TCP/IP stack, as rootless Podman,
 * Buildah and BuildKit use) and the host's loopback cut off, so a step can
 * fetch from the internet but not from services bound to the runner's
 * 127.0.0.1, and cannot see the host's abstract Unix sockets.
 *
 * Per step: a holder process created with `unshare --net` owns a fresh
 * network namespace (the build already runs as root of its own user
 * namespace, which then owns the new one); slirp4netns attaches a tap device
 * to it; runc joins it by path. Both helpers read a pipe from this process and
 * exit when it closes, so they never outlive the build, whatever kills it.
 */

/** slirp4netns's fixed addresses: the gateway (host) is 10.0.2.2, its DNS forwarder 10.0.2.3. */
const SLIRP_DNS = '10.0.2.3';
/** The largest MTU slirp4netns takes; much faster than the default 1500 for bulk downloads. */
const SLIRP_MTU = '65520';
const STARTUP_TIMEOUT_MS = 10_000;

export type NetworkSupport = { usable: true } | { usable: false; reason: string };

let support: Promise<NetworkSupport> | undefined;

/**
 * Whether this user can give a step an isolated network: slirp4netns is
 * installed and /dev/net/tun can be opened (mode 0666 on stock Debian and
 * Ubuntu; some images ship it 0600). Probed once per process.
 */
export function isolatedNetworkSupport(): Promise<NetworkSupport> {
  support ??= probe();
  return support;
}

async function probe(): Promise<NetworkSupport> {
  const version = await new Promise<boolean>((resolve) => {
    const child = spawn('slirp4netns', ['--version'], { stdio: 'ignore' });
    child.on('error', () => resolve(false));
    child.on('close', (code) => resolve(code === 0));
  });
  if (!version) return { usable: false, reason: 'slirp4netns is not installed (Debian package slirp4netns)' };
  try {
    const fh = await open('/dev/net/tun', constants.O_RDWR);
    await fh.close();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { usable: false, reason: `/dev/net/tun cannot be opened by this user (${code}; it is mode 0666 on stock Debian and Ubuntu: chmod 0666 /dev/net/tun)` };
  }
  return { usable: true };
}

export interface IsolatedNetwork {
  /** The namespace for runc to join (`linux.namespaces[].path`). */
  netnsPath: string;
  /** Files to bind over the step's /etc/resolv.conf and /etc/hosts. */
  resolvConf: string;
  hosts: string;
  /** Stops slirp4netns and the namespace's holder; idempotent. */
  close(): Promise<void>;
}

/**
 * The host's resolv.conf for a step behind slirp4netns: loopback nameservers
 * (systemd-resolved's 127.0.0.53, a local dnsmasq) cannot be reached with
 * the host loopback disabled, so they become slirp4netns's forwarder, which
 * asks them on the step's behalf. `search` and `options` lines are kept.
 */
export function sandboxResolvConf(host: string): string {
  const out: string[] = [];
  let servers = 0;
  let forwarder = false;
  for (const line of host.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) {
      const addr = m[1]!;
      if (/^127\./.test(addr) || addr === '::1' || addr === '0.0.0.0') {
        if (!forwarder) out.push(`nameserver ${SLIRP_DNS}`);
        forwarder = true;
      } else {
        out.push(`nameserver ${addr}`);
      }
      servers++;
      continue;
    }
    if (/^\s*(search|domain|options)\s/.test(line)) out.push(line.trim());
  }
  if (servers === 0) out.push(`nameserver ${SLIRP_DNS}`);
  return out.join('\n') + '\n';
}

/** The step's /etc/hosts, as BuildKit writes one for its sandbox network. */
export function sandboxHosts(hostname: string): string {
  return `127.0.0.1\tlocalhost ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`;
}

/**
 * Resolves once `stream` gives its first bytes (the holder's `ready` line,
 * slirp4netns's `1` on its ready fd), or rejects when `child` exits first or
 * the time is up.
 */
function readySignal(child: ChildProcess, stream: Readable, what: string, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => fail(`timed out after ${STARTUP_TIMEOUT_MS / 1000} s`), STARTUP_TIMEOUT_MS);
    const fail = (why: string) => {
      clearTimeout(timer);
      reject(new NetworkSetupError(`cannot set up the step's network: ${what} ${why}${stderr() ? `: ${stderr().trim().slice(0, 500)}` : ''}`));
    };
    stream.on('data', (b: Buffer) => {
      text += b.toString('utf8');
      clearTimeout(timer);
      resolve(text.trim());
    });
    child.on('error', (err) => fail(`could not start (${err.message})`));
    child.on('exit', (code, signal) => fail(`exited (${signal ?? `code ${code}`})`));
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('close', () => resolve()));
}

async function stop(child: ChildProcess, pipe: Writable): Promise<void> {
  // Closed, not just ended: node's stdio "pipes" are socketpairs, and slirp4netns waits for
  // a hang-up on its exit fd, which a half-close (shutdown SHUT_WR) does not give.
  pipe.destroy();
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited(child);
  clearTimeout(timer);
}

/**
 * Starts a fresh network namespace with slirp4netns attached, and writes the
 * step's resolv.conf and hosts into a private directory of the system's temp
 * directory, not under the state root: the step sees its bind sources in
 * /proc/self/mountinfo, and the state root's path names the user's home.
 */
export async function startIsolatedNetwork(hostname: string): Promise<IsolatedNetwork> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-net-'));
  const collect = (child: ChildProcess) => {
    let text = '';
    child.stderr?.on('data', (b: Buffer) => {
      if (text.length < 4096) text += b.toString('utf8');
    });
    return () => text;
  };
  // The holder: `cat` keeps the namespace alive until its stdin (our pipe) closes.
  const holder = spawn('unshare', ['--net', '--', 'sh', '-c', 'echo ready; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const holderErr = collect(holder);
  let slirp: ChildProcess | undefined;
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      if (slirp) await stop(slirp, slirp.stdio[4] as Writable);
      await stop(holder, holder.stdin!);
      await rm(dir, { recursive: true, force: true });
    })();
    return closed;
  };
  try {
    await readySignal(holder, holder.stdout!, 'unshare --net', holderErr);
    const pid = holder.pid!;
    // --enable-sandbox: slirp4netns pivots into an empty root and drops its capabilities;
    // --enable-seccomp: it filters its own syscalls. --exit-fd: it exits when our end closes.
    slirp = spawn('slirp4netns', [
      '--configure', `--mtu=${SLIRP_MTU}`, '--disable-host-loopback', '--enable-sandbox', '--enable-seccomp',
      '--ready-fd=3', '--exit-fd=4', String(pid), 'tap0',
    ], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    const slirpErr = collect(slirp);
    await readySignal(slirp, slirp.stdio[3] as Readable, 'slirp4netns', slirpErr);
    const hostResolv = await readFile('/etc/resolv.conf', 'utf8').catch(() => '');
    const resolvConf = join(dir, 'resolv.conf');
    const hosts = join(dir, 'hosts');
    await writeFile(resolvConf, sandboxResolvConf(hostResolv), { mode: 0o644 });
    await writeFile(hosts, sandboxHosts(hostname), { mode: 0o644 });
    return { netnsPath: `/proc/${pid}/ns/net`, resolvConf, hosts, close };
  } catch (err) {
    await close();
    throw err;
  }
}
