// The RUN sandbox holds (reliability issue, docs/reliability.md "Sandbox"):
// builds run by the unprivileged test user try to escape from a RUN step and
// must fail. Each attempt either is refused with a clear error or runs
// without reaching anything of the host: markers planted in the user's home,
// in /tmp and in the state root stay unseen and untouched.
import { randomBytes } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, chown, lstat, mkdir, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as tar from 'tar';
import { makeWorkDir, run, runStowage, testEnv, unpackOciTar, type WorkDir } from '../lib/index.js';

const T = 300_000;
const token = randomBytes(6).toString('hex');
const mirror = () => ['--registry-mirror', `docker.io=${testEnv().registry}`];

/** `KEY=value` lines a step printed as `RESULT KEY=value` (progress lines are `#N RESULT …`). */
function results(stderr: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of stderr.matchAll(/^#\d+ RESULT ([\w./-]+)=(.*)$/gm)) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!.trim()]);
  return out;
}
const one = (r: Map<string, string[]>, key: string) => {
  const v = r.get(key);
  if (v?.length !== 1) throw new Error(`expected one RESULT ${key}, got ${JSON.stringify(v)}`);
  return v[0]!;
};

/** A directory's entries with their content (files) or target (links), for before/after comparison. */
async function snapshotDir(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    const p = path.join(dir, name);
    const st = await lstat(p);
    out[name] = st.isSymbolicLink() ? `-> ${await readlink(p)}` : st.isFile() ? `file ${st.mode.toString(8)} ${await readFile(p, 'utf8')}` : `dir`;
  }
  return out;
}

/** Every regular file under `dir` (not following symlinks), with symlink targets and names as text too. */
async function* walkFiles(dir: string): AsyncGenerator<{ path: string; data: Buffer }> {
  for (const name of await readdir(dir)) {
    const p = path.join(dir, name);
    const st = await lstat(p);
    yield { path: p, data: Buffer.from(p) };
    if (st.isSymbolicLink()) yield { path: p, data: Buffer.from(await readlink(p)) };
    else if (st.isDirectory()) yield* walkFiles(p);
    else if (st.isFile()) yield { path: p, data: await readFile(p) };
  }
}

/** The data, and its gunzipped form when it is gzip (layer blobs, cached layers). */
function expand(data: Buffer): Buffer[] {
  if (data.length > 2 && data[0] === 0x1f && data[1] === 0x8b) {
    try {
      return [data, gunzipSync(data)];
    } catch {
      return [data];
    }
  }
  return [data];
}

/** Paths under `dir` whose name, link target or (gunzipped) content holds any needle. */
async function findNeedles(dir: string, needles: string[]): Promise<string[]> {
  const hits: string[] = [];
  for await (const f of walkFiles(dir)) {
    for (const data of expand(f.data)) {
      for (const n of needles) if (data.includes(n)) hits.push(`${f.path}: ${n}`);
    }
  }
  return hits;
}

/**
 * A static x86-64 ELF (136 bytes) that exits with geteuid() & 0xff: no shell
 * or libc in between, so a setuid bit honoured by the kernel shows as exit 0.
 * (busybox cannot show it: it drops a setuid bit itself for most applets.)
 */
function euidElf(): Buffer {
  const code = Buffer.from([0xb8, 0x6b, 0, 0, 0, 0x0f, 0x05, 0x89, 0xc7, 0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05]);
  const h = Buffer.alloc(120);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(h, 0);
  h.writeUInt16LE(2, 16); // ET_EXEC
  h.writeUInt16LE(0x3e, 18); // x86-64
  h.writeUInt32LE(1, 20);
  h.writeBigUInt64LE(0x400078n, 24); // entry: right after the headers
  h.writeBigUInt64LE(64n, 32); // program headers
  h.writeUInt16LE(64, 52);
  h.writeUInt16LE(56, 54);
  h.writeUInt16LE(1, 56);
  h.writeUInt32LE(1, 64); // PT_LOAD
  h.writeUInt32LE(5, 68); // R+X
  h.writeBigUInt64LE(0x400000n, 80);
  h.writeBigUInt64LE(0x400000n, 88);
  const size = BigInt(h.length + code.length);
  h.writeBigUInt64LE(size, 96);
  h.writeBigUInt64LE(size, 104);
  h.writeBigUInt64LE(0x1000n, 112);
  return Buffer.concat([h, code]);
}

async function subordinateStart(file: string, user: string, id: number): Promise<number> {
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    const [owner, start] = line.split(':');
    if (owner === user || owner === String(id)) return Number(start);
  }
  throw new Error(`no ${file} range for ${user}`);
}

const HOST = `FROM busybox
ARG HOME_MARKER TMP_MARKER TOKEN STATE_ROOT
RUN echo "RESULT found=$(find / -xdev -name "*$TOKEN*" 2>/dev/null | tr '\\n' ' ')"; \\
    echo "RESULT foundall=$(find / \\( -path /proc -o -path /sys \\) -prune -o -name "*$TOKEN*" -print 2>/dev/null | tr '\\n' ' ')"; \\
    echo "RESULT cathome=$(cat $HOME_MARKER 2>&1)"; echo "RESULT cattmp=$(cat $TMP_MARKER 2>&1)"; \\
    echo "RESULT hostname=$(hostname)"; \\
    echo "RESULT pids=$(ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' ')"; \\
    echo "RESULT pid1=$(tr '\\0' ' ' < /proc/1/cmdline)"; \\
    for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats /proc/timer_stats; do echo "RESULT masked$f=$(head -c 64 $f 2>/dev/null | wc -c)"; done; \\
    echo "RESULT firmware=$(ls -A /sys/firmware | wc -l)"; \\
    echo "RESULT sysmounts=$(grep -cE ' /sys(/| )' /proc/self/mountinfo)"; \\
    echo "RESULT sysrw=$(grep -E ' /sys(/| )' /proc/self/mountinfo | awk '{print $6}' | grep -cv '^ro')"; \\
    if touch /sys/kernel/stowage-$TOKEN 2>/dev/null || mkdir /sys/fs/cgroup/stowage-$TOKEN 2>/dev/null; then echo "RESULT syswrite=yes"; else echo "RESULT syswrite=no"; fi; \\
    echo "RESULT rootpath=$(grep -c "$STATE_ROOT" /proc/self/mountinfo)"; \\
    echo "RESULT env=$(env | sort | cut -d= -f1 | tr '\\n' ' ')"
`;

const NET = `FROM busybox
ARG REGISTRY
RUN if printf 'GET /v2/ HTTP/1.0\\r\\n\\r\\n' | nc -w 5 \${REGISTRY%:*} \${REGISTRY##*:} 2>/dev/null | grep -q '^HTTP/1'; then echo "RESULT loopback=reached"; else echo "RESULT loopback=unreachable"; fi; \\
    echo "RESULT unix=$(grep -c . /proc/net/unix 2>/dev/null | awk '{print $1 - 1}')"
`;

// CVE-2024-21626: a cwd on a leaked host fd. Every form must be refused before runc starts.
const WORKDIR_FD = `FROM busybox
ARG N
WORKDIR /proc/self/fd/\${N}
RUN cat ../../../../etc/hostname; ls ../../../../
`;
const WORKDIR_LINK = `FROM busybox
RUN ln -s /proc/self/fd/7 /fd7
WORKDIR /fd7
RUN cat ../../../../etc/hostname
`;
const WORKDIR_DEVFD = `FROM busybox
WORKDIR /dev/fd/8
RUN ls ../../../../
`;
const CD_FD = `FROM busybox
RUN for n in 3 4 5 6 7 8 9; do \\
      for d in /proc/self/fd/$n /proc/1/fd/$n /proc/$$/fd/$n /dev/fd/$n; do \\
        if cd $d 2>/dev/null; then echo "RESULT escaped=$d $(pwd) $(ls ../../../../ | tr '\\n' ' ')"; cd /; fi; \\
        if cat $d/../../../../etc/hostname 2>/dev/null; then echo "RESULT read=$d"; fi; \\
      done; \\
    done; \\
    for f in /proc/1/fd/*; do echo "\${f##*/} $(readlink $f)"; done > /fds.txt; echo "RESULT fds=$(tr '\\n' ',' < /fds.txt)"
`;

// Images whose kernel-filesystem directories or network files are symlinks out of the rootfs.
const LINKS = `FROM busybox AS bb
FROM busybox AS links
ARG HOST_TMP HOST_HOME HOST_ROOTDIR=/nonexistent
RUN mkdir -p /l/dev-root /l/dev-tmp /l/dev-home /l/dev-state /l/dev-deep /l/proc /l/sys /l/files/etc /l/tmp /l/etc \\
 && ln -s $HOST_ROOTDIR /l/dev-root/dev && ln -s $HOST_TMP /l/dev-tmp/dev && ln -s $HOST_HOME /l/dev-home/dev \\
 && ln -s ../../../../sandbox-escape /l/dev-state/dev && ln -s ../../../../../../../../../../..$HOST_TMP /l/dev-deep/dev \\
 && ln -s $HOST_HOME /l/proc/proc && ln -s $HOST_HOME /l/sys/sys \\
 && ln -s $HOST_HOME/hosts /l/files/etc/hosts && ln -s $HOST_TMP/resolv.conf /l/files/etc/resolv.conf && ln -s $HOST_HOME /l/tmp/tmp \\
 && ln -s $HOST_HOME /l/etc/etc
FROM scratch AS base
COPY --from=bb /bin /bin

FROM base AS dev-root
COPY --from=links /l/dev-root/ /
FROM dev-root AS run-dev-root
RUN true

FROM base AS dev-tmp
COPY --from=links /l/dev-tmp/ /
FROM dev-tmp AS run-dev-tmp
RUN true

FROM base AS dev-home
COPY --from=links /l/dev-home/ /
FROM dev-home AS run-dev-home
RUN true

FROM base AS dev-state
COPY --from=links /l/dev-state/ /
FROM dev-state AS run-dev-state
RUN true

FROM base AS dev-deep
COPY --from=links /l/dev-deep/ /
FROM dev-deep AS run-dev-deep
RUN true

FROM base AS proc
COPY --from=links /l/proc/ /
FROM proc AS run-proc
RUN true

FROM base AS sys
COPY --from=links /l/sys/ /
FROM sys AS run-sys
RUN true

FROM base AS files
COPY --from=links /l/files/ /
FROM files AS run-files
RUN echo "RESULT hosts=$(cat /etc/hosts | tr '\\n' ' ')"; echo "RESULT resolv=$(cat /etc/resolv.conf | tr '\\n' ' ')"; \\
    if echo pwned > /etc/hosts; then echo "RESULT wrotehosts=yes"; else echo "RESULT wrotehosts=no"; fi

FROM base AS tmp
COPY --from=links /l/tmp/ /
FROM tmp AS run-tmp
RUN if echo pwned > /tmp/written; then echo "RESULT wrotetmp=yes"; else echo "RESULT wrotetmp=no"; fi

FROM base AS etc
COPY --from=links /l/etc/ /
FROM etc AS run-etc
RUN echo "RESULT etc=$(ls -A /etc/ | tr '\\n' ' ')"; echo pwned > /etc/new-file || true

FROM base AS rename
COPY --from=bb /etc/passwd /etc/passwd
FROM rename AS run-rename
ARG HOST_TMP
RUN mv /etc /etc.moved && ln -s $HOST_TMP /etc && echo "RESULT renamed=yes"
`;

const PRIVS = `FROM busybox AS bb
FROM busybox
COPY --from=bb --chmod=4755 /bin/busybox /bin/busybox-suid
COPY --chmod=4755 euid /bin/euid-suid
COPY --chmod=600 owner-only.txt /owner-only.txt
ARG TOKEN
RUN echo "RESULT root=$(grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status | tr -d ' \\t' | tr '\\n' ' ')"; \\
    echo "RESULT rootmodes=$(stat -c '%a %u' /bin/busybox-suid /bin/euid-suid | tr '\\n' ' ')"; \\
    echo "RESULT uidmap=$(tr -s ' \\n' ' ' < /proc/self/uid_map)"; echo "RESULT gidmap=$(tr -s ' \\n' ' ' < /proc/self/gid_map)"; \\
    /bin/euid-suid; echo "RESULT rooteuid=$?"; touch /by-root-$TOKEN
USER 1000:1000
RUN echo "RESULT user=$(grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status | tr -d ' \\t' | tr '\\n' ' ')"; \\
    echo "RESULT busyboxid=$(/bin/busybox-suid id -u)"; \\
    /bin/euid-suid; echo "RESULT usereuid=$?"; \\
    echo "RESULT suidstatus=$(/bin/busybox-suid grep -E '^(Uid|NoNewPrivs):' /proc/self/status | tr -s ' \\t' ' ' | tr '\\n' ' ')"; \\
    echo "RESULT ownerread=$(cat /owner-only.txt 2>&1)"; \\
    echo "RESULT suidread=$(/bin/busybox-suid cat /owner-only.txt 2>&1)"; \\
    touch /tmp/by-1000-$TOKEN
`;

describe('RUN sandbox: escape attempts fail', () => {
  const e = testEnv();
  let work: WorkDir;
  const homeMarker = path.join(e.home, `.stowage-sandbox-${token}`);
  const tmpMarker = `/tmp/stowage-sandbox-${token}`;
  const hostHome = path.join(e.home, `.stowage-sandbox-evil-${token}`);
  const hostTmp = `/tmp/stowage-sandbox-evil-${token}`;
  const secretContent = `marker-content-${token}`;

  beforeAll(async () => {
    work = await makeWorkDir({
      'host.Dockerfile': HOST,
      'workdir-fd.Dockerfile': WORKDIR_FD,
      'workdir-link.Dockerfile': WORKDIR_LINK,
      'workdir-devfd.Dockerfile': WORKDIR_DEVFD,
      'cd-fd.Dockerfile': CD_FD,
      'net.Dockerfile': NET,
      'links.Dockerfile': LINKS,
      'privs.Dockerfile': PRIVS,
      euid: { content: euidElf(), mode: 0o755 },
      'owner-only.txt': `owner only ${token}\n`,
    });
    // Markers the steps must never see: in the user's home (0600, as a private file is) and in /tmp.
    for (const p of [homeMarker, tmpMarker]) {
      await writeFile(p, secretContent, { mode: 0o600 });
      await chown(p, e.uid, e.gid);
    }
    // Places a vulnerable runc would write into when /dev is a symlink to them: the
    // files runc replaces or creates (ptmx, fd, stdin…) are planted so that a change shows.
    for (const d of [hostHome, hostTmp, path.join(work.root, 'sandbox-escape')]) {
      await mkdir(d, { recursive: true, mode: 0o755 });
      await writeFile(path.join(d, 'ptmx'), `planted ${token}\n`);
      await writeFile(path.join(d, 'hosts'), ''); // empty: what stowage's mount-stub cleanup removes
      await writeFile(path.join(d, 'resolv.conf'), '');
      for (const n of ['', 'ptmx', 'hosts', 'resolv.conf']) await chown(path.join(d, n), e.uid, e.gid);
    }
  }, T);

  afterAll(async () => {
    for (const p of [homeMarker, tmpMarker, hostHome, hostTmp]) await rm(p, { recursive: true, force: true });
    await work?.rm();
  }, T);

  let builds = 0;
  /** Builds FILE; the OCI tar goes to `out` (next to the context, not in it). */
  const build = async (file: string, extra: string[] = [], opts: { root?: string } = {}) => {
    const out = path.join(work.base, `out-${++builds}.tar`);
    const r = await runStowage(['build', '--root', opts.root ?? work.root, ...mirror(), '--progress', 'plain', '-f', file, ...extra, '-o', out, '.'], { cwd: work.dir, timeoutMs: T });
    return { ...r, out };
  };
  const ok = (r: { code: number | null; stderr: string }) => expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });

  describe('1. nothing of the host is visible', () => {
    for (const backend of ['overlay', 'native'] as const) {
      test(`${backend}: no host files, own pid namespace, masked /proc and /sys, read-only /sys, own hostname`, async () => {
        const root = path.join(work.base, `root-host-${backend}`);
        await mkdir(root, { mode: 0o700 });
        await chown(root, e.uid, e.gid);
        const args = ['--snapshotter', backend, '--build-arg', `HOME_MARKER=${homeMarker}`, '--build-arg', `TMP_MARKER=${tmpMarker}`, '--build-arg', `TOKEN=${token}`, '--build-arg', `STATE_ROOT=${root}`];
        const r = await build('host.Dockerfile', args, { root });
        ok(r);
        const res = results(r.stderr);
        expect(one(res, 'found')).toBe('');
        expect(one(res, 'foundall')).toBe('');
        expect(one(res, 'cathome')).toMatch(/No such file or directory/);
        expect(one(res, 'cattmp')).toMatch(/No such file or directory/);
        expect(r.stderr).not.toContain(secretContent);
        expect(one(res, 'hostname')).toBe('stowage');
        expect(one(res, 'hostname')).not.toBe((await readFile('/proc/sys/kernel/hostname', 'utf8')).trim());
        // Only the step's own processes: the shell is pid 1, the rest are its children.
        const pids = one(res, 'pids').split(' ').map(Number);
        expect(Math.max(...pids)).toBeLessThan(50);
        expect(pids).not.toContain(process.pid);
        expect(one(res, 'pid1')).toMatch(/^\/bin\/sh -c /);
        for (const f of ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/sched_debug', '/proc/latency_stats', '/proc/timer_stats']) {
          expect([f, one(res, `masked${f}`)]).toEqual([f, '0']);
        }
        expect(one(res, 'firmware')).toBe('0');
        // /sys and every mount under it (the host's cgroup hierarchies) read-only.
        expect(Number(one(res, 'sysmounts'))).toBeGreaterThan(0);
        expect(one(res, 'sysrw')).toBe('0');
        expect(one(res, 'syswrite')).toBe('no');
        // The state root's path: overlay mounts with paths relative to it; the copying
        // backend's bind mount names its source directory (documented, not a way out).
        expect(Number(one(res, 'rootpath'))).toBe(backend === 'overlay' ? 0 : 1);
        // Nothing of the CLI's environment: the image's PATH, HOME, the build args, the shell's own.
        expect(one(res, 'env').split(' ')).toEqual(['HOME', 'HOME_MARKER', 'PATH', 'PWD', 'SHLVL', 'STATE_ROOT', 'TMP_MARKER', 'TOKEN']);
      }, T);
    }
  });

  test('the default network and --network none: loopback services and abstract sockets of the host are out of reach (--network host shares them)', async () => {
    for (const network of ['none', 'default']) {
      const r = await build('net.Dockerfile', ['--network', network, '--build-arg', `REGISTRY=${e.registry}`]);
      ok(r);
      const res = results(r.stderr);
      expect({ network, loopback: one(res, 'loopback'), unix: one(res, 'unix') }).toEqual({ network, loopback: 'unreachable', unix: '0' });
      expect(r.stderr).not.toMatch(/warning: RUN steps share/);
    }
    const host = await build('net.Dockerfile', ['--network', 'host', '--build-arg', `REGISTRY=${e.registry}`]);
    ok(host);
    expect(one(results(host.stderr), 'loopback')).toBe('reached');
  }, T);

  describe('2. CVE-2024-21626: a working directory on a leaked fd', () => {
    test('the installed runc carries the fix (it checks the cwd after chdir)', async () => {
      const r = await run(['sh', '-c', 'grep -c "possible container breakout detected" "$(command -v runc)"']);
      expect(Number(r.stdout.trim())).toBeGreaterThan(0);
    });

    for (const n of [3, 4, 5, 6, 7, 8, 9]) {
      test(`WORKDIR /proc/self/fd/${n}: refused before runc starts`, async () => {
        const r = await build('workdir-fd.Dockerfile', ['--build-arg', `N=${n}`]);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toContain(`error: workdir-fd.Dockerfile:4: working directory /proc/self/fd/${n} is inside the container's /proc: RUN refused`);
        expect(r.stderr).not.toMatch(/^#\d+ (bin|boot|home|root|usr|var)$/m);
      }, T);
    }

    test('WORKDIR through an image symlink to /proc/self/fd/7, and /dev/fd/8: refused', async () => {
      const link = await build('workdir-link.Dockerfile');
      expect(link.code).not.toBe(0);
      expect(link.stderr).toContain("error: workdir-link.Dockerfile:4: working directory /fd7 is inside the container's /proc: RUN refused");
      const devfd = await build('workdir-devfd.Dockerfile');
      expect(devfd.code).not.toBe(0);
      expect(devfd.stderr).toContain("error: workdir-devfd.Dockerfile:3: working directory /dev/fd/8 is inside the container's /dev: RUN refused");
    }, T);

    test('RUN cd /proc/self/fd/N (and /proc/1/fd/N, /dev/fd/N): no fd beyond stdio to follow', async () => {
      const r = await build('cd-fd.Dockerfile');
      ok(r);
      const res = results(r.stderr);
      expect(res.get('escaped')).toBeUndefined();
      expect(res.get('read')).toBeUndefined();
      // pid 1 is the step's shell: stdio pipes, the file it writes and the shell's own saved stdout (10), no directory.
      const fds = one(res, 'fds').split(',').filter(Boolean).map((l) => l.split(' '));
      expect(fds.map(([fd]) => fd)).toEqual(expect.arrayContaining(['0', '1', '2']));
      for (const [fd, target] of fds) expect([fd, target]).toEqual([fd, expect.stringMatching(/^(pipe:\[\d+\]|\/fds\.txt)$/)]);
    }, T);
  });

  describe('3. symlinked /dev, /proc, /sys, /etc/hosts, /etc/resolv.conf, /tmp, /etc', () => {
    let before: Record<string, Record<string, string>>;
    const watched = () => [hostHome, hostTmp, path.join(work.root, 'sandbox-escape')];
    const linkArgs = () => ['--build-arg', `HOST_TMP=${hostTmp}`, '--build-arg', `HOST_HOME=${hostHome}`];
    const rootEntries = async () => (await readdir(work.root)).sort();
    let rootBefore: string[];

    beforeAll(async () => {
      before = {};
      for (const d of watched()) before[d] = await snapshotDir(d);
      rootBefore = await rootEntries();
    }, T);

    const untouched = async () => {
      for (const d of watched()) expect([d, await snapshotDir(d)]).toEqual([d, before[d]]);
      expect(await snapshotDir(e.home)).toHaveProperty([path.basename(homeMarker)], `file 100600 ${secretContent}`);
      // Nothing new at the top of the state root but stowage's own directories.
      const added = (await rootEntries()).filter((n) => !rootBefore.includes(n));
      expect(added.filter((n) => !['cache', 'content', 'snapshots', 'tmp', 'metadata'].includes(n))).toEqual([]);
    };

    const refused: [string, string][] = [
      ['run-dev-tmp', '/dev'],
      ['run-dev-home', '/dev'],
      ['run-dev-state', '/dev'],
      ['run-dev-deep', '/dev'],
      ['run-proc', '/proc'],
      ['run-sys', '/sys'],
    ];
    for (const [target, dir] of refused) {
      test(`${target}: refused with a clear error, nothing outside the rootfs touched`, async () => {
        const r = await build('links.Dockerfile', [...linkArgs(), '--target', target]);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(new RegExp(`error: links\\.Dockerfile:\\d+: the image's ${dir} is a symbolic link: RUN refused`));
        await untouched();
      }, T);
    }

    test('started as real root (ids map to themselves): /dev linked to a root-owned host directory is refused too', async () => {
      // Here runc runs as the host's uid 0 inside the namespace: before the fix it replaced
      // files in any root-owned directory the link named (ptmx, fd, stdin, stdout, stderr).
      const rootDir = `/tmp/stowage-sandbox-rootevil-${token}`;
      await mkdir(rootDir, { mode: 0o755 });
      try {
        await writeFile(path.join(rootDir, 'ptmx'), `planted ${token}\n`);
        const snap = await snapshotDir(rootDir);
        const r = await run([e.nodePath, e.cliPath, 'build', '--root', path.join(work.base, 'root-as-root'), ...mirror(), '--progress', 'plain', '-f', 'links.Dockerfile',
          ...linkArgs(), '--build-arg', `HOST_ROOTDIR=${rootDir}`, '--target', 'run-dev-root', '-o', path.join(work.base, 'as-root.tar'), '.'], { cwd: work.dir, timeoutMs: T });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/error: links\.Dockerfile:\d+: the image's \/dev is a symbolic link: RUN refused/);
        expect(await snapshotDir(rootDir)).toEqual(snap);
        await untouched();
      } finally {
        await rm(rootDir, { recursive: true, force: true });
      }
    }, T);

    test('/etc/hosts and /etc/resolv.conf linked to host paths: the mounts stay inside, no stub leaks into the layer', async () => {
      const r = await build('links.Dockerfile', [...linkArgs(), '--target', 'run-files']);
      ok(r);
      const res = results(r.stderr);
      // The sandbox network's generated files are bound, at the link's target inside the rootfs.
      expect(one(res, 'hosts')).toBe('127.0.0.1\tlocalhost stowage ::1\tlocalhost ip6-localhost ip6-loopback');
      expect(one(res, 'resolv')).toMatch(/^nameserver /);
      expect(one(res, 'wrotehosts')).toBe('no');
      await untouched();
      const img = await unpackOciTar(r.out, path.join(work.base, 'layout-files'));
      const last = img.layers.at(-1)!;
      expect(last.entries.map((x) => x.path).filter((p) => p.startsWith('home') || p.startsWith('tmp'))).toEqual([]);
    }, T);

    test('/tmp linked to a host directory: no tmpfs on it, the link dangles inside the rootfs', async () => {
      const r = await build('links.Dockerfile', [...linkArgs(), '--target', 'run-tmp']);
      ok(r);
      expect(one(results(r.stderr), 'wrotetmp')).toBe('no');
      await untouched();
    }, T);

    test('/etc linked to a host directory: mount points go inside the rootfs', async () => {
      const r = await build('links.Dockerfile', [...linkArgs(), '--target', 'run-etc']);
      ok(r);
      // What the step sees through /etc is runc's mount points inside the rootfs, not the planted host files.
      expect(one(results(r.stderr), 'etc')).toBe('hosts resolv.conf');
      await untouched();
      // The step's own file is kept (inside the rootfs, where the link leads there); the mount stubs are not.
      const img = await unpackOciTar(r.out, path.join(work.base, 'layout-etc'));
      const paths = img.layers.at(-1)!.entries.map((x) => x.path);
      expect(paths).toContain(`${hostHome.slice(1)}/new-file`);
      expect(paths.filter((p) => /\/(hosts|resolv\.conf)$/.test(p))).toEqual([]);
    }, T);

    test('a step that swaps /etc for a link to the host: the stub cleanup does not follow it (native backend, where rename works)', async () => {
      const root = path.join(work.base, 'root-rename');
      await mkdir(root, { mode: 0o700 });
      await chown(root, e.uid, e.gid);
      const r = await build('links.Dockerfile', [...linkArgs(), '--target', 'run-rename', '--snapshotter', 'native'], { root });
      ok(r);
      expect(one(results(r.stderr), 'renamed')).toBe('yes');
      // Before the fix, the empty hosts and resolv.conf planted here were deleted.
      await untouched();
    }, T);
  });

  describe('4 and 5. privileges and ids', () => {
    let res: Map<string, string[]>;
    beforeAll(async () => {
      const r = await build('privs.Dockerfile', ['--build-arg', `TOKEN=${token}`]);
      ok(r);
      res = results(r.stderr);
    }, T);

    test('root in the step: the default container capabilities, no new privileges', () => {
      // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
      expect(one(res, 'root')).toBe('CapInh:0000000000000000 CapPrm:00000000a80425fb CapEff:00000000a80425fb CapBnd:00000000a80425fb CapAmb:0000000000000000 NoNewPrivs:1');
      expect(one(res, 'rootmodes')).toBe('4755 0 4755 0');
      expect(one(res, 'rooteuid')).toBe('0');
    });

    (process.arch === 'x64' ? test : test.skip)('a setuid-root binary run by USER 1000 does not gain root', () => {
      expect(one(res, 'user')).toBe('CapInh:0000000000000000 CapPrm:0000000000000000 CapEff:0000000000000000 CapBnd:0000000000000000 CapAmb:0000000000000000 NoNewPrivs:1');
      // The kernel ignores the setuid bit: geteuid() is 1000 (1000 & 0xff = 232).
      expect(one(res, 'usereuid')).toBe(String(1000 & 0xff));
      expect(one(res, 'busyboxid')).toBe('1000');
      expect(one(res, 'suidstatus')).toMatch(/^Uid: 1000 1000 1000 1000 NoNewPrivs: 1$/);
      expect(one(res, 'ownerread')).toMatch(/Permission denied/);
      expect(one(res, 'suidread')).toMatch(/Permission denied/);
    });

    test('ids: root in the step is the user, other ids are its subordinate range (host owners of the files made)', async () => {
      const subuid = await subordinateStart('/etc/subuid', e.user, e.uid);
      const subgid = await subordinateStart('/etc/subgid', e.user, e.uid);
      expect(one(res, 'uidmap')).toBe(`0 ${e.uid} 1 1 ${subuid} 65535`);
      expect(one(res, 'gidmap')).toBe(`0 ${e.gid} 1 1 ${subgid} 65535`);
      const find = async (name: string) => {
        const r = await run(['find', work.root, '-name', name]);
        const [p] = r.stdout.trim().split('\n').filter(Boolean);
        if (!p) throw new Error(`${name} not found under ${work.root}`);
        return stat(p);
      };
      const byRoot = await find(`by-root-${token}`);
      expect({ uid: byRoot.uid, gid: byRoot.gid }).toEqual({ uid: e.uid, gid: e.gid });
      const byUser = await find(`by-1000-${token}`);
      expect({ uid: byUser.uid, gid: byUser.gid }).toEqual({ uid: subuid + 999, gid: subgid + 999 });
    }, T);
  });

  describe('6. registry credentials and the CLI environment never leak', () => {
    const user = `sbxuser${token}`;
    const password = `Pw${randomBytes(12).toString('hex')}`;
    const envSecret = `EnvSecret${randomBytes(12).toString('hex')}`;
    const basic = Buffer.from(`${user}:${password}`).toString('base64');
    const needles = [password, basic, Buffer.from(password).toString('base64'), envSecret, Buffer.from(envSecret).toString('base64')];
    const seen: { port: number; auth: string | undefined }[] = [];
    let asking: Server;
    let notAsking: Server;
    const port = (s: Server) => (s.address() as AddressInfo).port;

    /** A proxy to the loopback registry that, when `challenge`, demands Basic auth first (and records what it got). */
    const proxy = (challenge: boolean) =>
      new Promise<Server>((resolve) => {
        const s = createServer((req, res) => {
          const p = port(s);
          seen.push({ port: p, auth: req.headers.authorization });
          if (challenge && req.headers.authorization !== `Basic ${basic}`) {
            res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="stowage-sandbox"', 'Content-Type': 'application/json' });
            res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
            return;
          }
          const headers = { ...req.headers, host: `127.0.0.1:${p}` };
          delete headers.authorization;
          const [rh, rp] = testEnv().registry.split(':');
          const up = request({ host: rh, port: Number(rp), method: req.method, path: req.url, headers }, (ur) => {
            res.writeHead(ur.statusCode ?? 502, ur.headers);
            ur.pipe(res);
          });
          up.on('error', () => res.destroy());
          req.pipe(up);
        });
        s.listen(0, '127.0.0.1', () => resolve(s));
      });

    beforeAll(async () => {
      asking = await proxy(true);
      notAsking = await proxy(false);
    }, T);
    afterAll(async () => {
      await Promise.all([asking, notAsking].map((s) => s && new Promise((r) => s.close(() => r(undefined)))));
    }, T);

    test('a build that pulls and pushes with a password from config.json: not in stderr, the OCI tar, the metadata file or --root', async () => {
      // A HOME of its own: the test user's real ~/.docker is shared with other test files.
      const home = path.join(work.base, 'home');
      await mkdir(path.join(home, '.docker'), { recursive: true });
      const auths = Object.fromEntries([asking, notAsking].map((s) => [`127.0.0.1:${port(s)}`, { auth: basic }]));
      await writeFile(path.join(home, '.docker', 'config.json'), JSON.stringify({ auths }));
      await chmod(path.join(home, '.docker', 'config.json'), 0o600);
      for (const p of [home, path.join(home, '.docker'), path.join(home, '.docker', 'config.json')]) await chown(p, e.uid, e.gid);
      const root = path.join(work.base, 'root-creds');
      await mkdir(root, { mode: 0o700 });
      await chown(root, e.uid, e.gid);
      await writeFile(work.path('creds.Dockerfile'), `ARG ASKING NOT_ASKING
FROM \${ASKING}/library/busybox AS a
RUN env > /build-env.txt; ls -la ~ / > /listing.txt
FROM \${NOT_ASKING}/library/busybox
COPY --from=a /build-env.txt /listing.txt /
RUN cat /build-env.txt
`);
      await chown(work.path('creds.Dockerfile'), e.uid, e.gid);
      const ref = `127.0.0.1:${port(asking)}/stowage-sandbox/leak:${token}`;
      const out = path.join(work.base, 'creds.tar');
      const meta = path.join(work.base, 'creds-meta.json');
      const r = await runStowage(['build', '--root', root, '--progress', 'plain', '--debug', '-f', 'creds.Dockerfile',
        '--build-arg', `ASKING=127.0.0.1:${port(asking)}`, '--build-arg', `NOT_ASKING=127.0.0.1:${port(notAsking)}`,
        '-t', ref, '--push', '-o', `type=oci,dest=${out}`, '--metadata-file', meta, '.'],
      { cwd: work.dir, timeoutMs: T, env: { HOME: home, AWS_SECRET_ACCESS_KEY: envSecret, STOWAGE_SANDBOX_SECRET: envSecret } });
      ok(r);
      // The credentials were really used where asked for, and only there.
      expect(seen.some((s) => s.port === port(asking) && s.auth === `Basic ${basic}`)).toBe(true);
      expect(seen.filter((s) => s.port === port(notAsking) && s.auth !== undefined)).toEqual([]);
      expect(seen.filter((s) => s.port === port(notAsking)).length).toBeGreaterThan(0);

      for (const n of needles) {
        expect(r.stderr).not.toContain(n);
        expect(r.stdout).not.toContain(n);
      }
      const layout = path.join(work.base, 'creds-layout');
      await mkdir(layout);
      await tar.x({ file: out, cwd: layout });
      expect(await findNeedles(layout, needles)).toEqual([]);
      const metadata = await readFile(meta, 'utf8');
      expect(needles.filter((n) => metadata.includes(n))).toEqual([]);
      expect(await findNeedles(root, needles)).toEqual([]);
      // The step's environment (printed by `cat /build-env.txt`): the image's, nothing of the CLI's.
      const env = [...r.stderr.matchAll(/^#\d+ ([A-Za-z_]+)=/gm)].map((m) => m[1]).sort();
      expect(env).toEqual(['HOME', 'PATH', 'PWD', 'SHLVL']);
      expect(env).not.toContain('AWS_SECRET_ACCESS_KEY');
      expect(r.stderr).not.toContain(home);
    }, T);
  });
});
