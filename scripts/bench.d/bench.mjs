// The benchmark driver behind scripts/bench (which prepares the machine, the
// bundles and a private registry, then runs this as root). Every measured
// command runs as the unprivileged test user under /usr/bin/time -v; stowage
// and Buildah take turns within each run. Writes the report (Markdown) to
// STOWAGE_BENCH_OUT, keeping the hand-written notes below NOTES_MARKER.
import { spawn, execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const env = process.env;
const num = (v, d) => (v === undefined || v === '' ? d : Number(v));
const cfg = {
  root: env.STOWAGE_BENCH_REPO,
  dir: env.STOWAGE_BENCH_DIR,
  user: env.STOWAGE_TEST_USER ?? 'stowage-ci',
  state: env.STOWAGE_TEST_STATE ?? '/var/lib/stowage-test',
  reg: `127.0.0.1:${env.STOWAGE_TEST_REGISTRY_PORT ?? 5055}`,
  benchReg: env.STOWAGE_BENCH_REGISTRY,
  runs: num(env.STOWAGE_BENCH_RUNS, 3),
  files: num(env.STOWAGE_BENCH_FILES, 20000),
  mb: num(env.STOWAGE_BENCH_MB, 300),
  large: env.STOWAGE_BENCH_LARGE === '1',
  bigMb: num(env.STOWAGE_BENCH_BIG_MB, 1024),
  cases: new Set((env.STOWAGE_BENCH_CASES ?? 'P1 P2 P3 P4 P5 P6 S').split(/[\s,]+/).filter(Boolean)),
  out: env.STOWAGE_BENCH_OUT,
};
const NOTES_MARKER = '<!-- Notes below are written by hand; scripts/bench keeps them. -->';
const D = (...p) => join(cfg.dir, ...p);
const HOME = D('home');
const XDG = D('run');
const REGISTRIES_CONF = D('containers', 'registries.conf');
const CLI = D('cli', 'stowage.mjs');
const log = (...a) => console.error('bench:', ...a);

// ------------------------------------------------------------ measuring

function cpuJiffies() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  return { busy: user + nice + system + irq + softirq + steal, total: user + nice + system + idle + iowait + irq + softirq + steal };
}
const HZ = 100;

let seq = 0;
/**
 * Runs argv as the test user (clean env) under /usr/bin/time -v. Resolves with
 * wall seconds, peak RSS (max of any one process in the tree, KB), CPU seconds,
 * the CPU the rest of the machine used meanwhile (cores), and the output lines
 * stamped with seconds since start.
 */
function runAs(name, argv, { cwd = cfg.dir, extraEnv = {}, allowFail = false } = {}) {
  const id = ++seq;
  const timeFile = D('logs', `${id}-${name}.time`);
  const logFile = D('logs', `${id}-${name}.log`);
  const envArgs = Object.entries({
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME, USER: cfg.user, LOGNAME: cfg.user, LANG: 'C.UTF-8', XDG_RUNTIME_DIR: XDG,
    CONTAINERS_REGISTRIES_CONF: REGISTRIES_CONF,
    ...extraEnv,
  }).map(([k, v]) => `${k}=${v}`);
  const full = ['-u', cfg.user, '--', 'env', '-i', ...envArgs, '/usr/bin/time', '-v', '-o', timeFile, ...argv];
  return new Promise((resolve, reject) => {
    const out = createWriteStream(logFile);
    out.write(`$ ${argv.join(' ')}\n`);
    const lines = [];
    const cpu0 = cpuJiffies();
    const t0 = performance.now();
    const child = spawn('runuser', full, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const s of [child.stdout, child.stderr]) {
      let buf = '';
      s.setEncoding('utf8');
      s.on('data', (d) => {
        const t = (performance.now() - t0) / 1000;
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const text = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          lines.push({ t, text });
          out.write(`[${t.toFixed(3)}] ${text}\n`);
        }
      });
    }
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = (performance.now() - t0) / 1000;
      const cpu1 = cpuJiffies();
      out.end();
      const tv = existsSync(timeFile) ? readFileSync(timeFile, 'utf8') : '';
      const field = (re) => Number((tv.match(re) ?? [])[1] ?? NaN);
      const rssKB = field(/Maximum resident set size \(kbytes\): (\d+)/);
      const cpuSeconds = field(/User time \(seconds\): ([\d.]+)/) + field(/System time \(seconds\): ([\d.]+)/);
      const othersCores = Math.max(0, (cpu1.busy - cpu0.busy) / HZ - cpuSeconds) / seconds;
      const r = { name, code, seconds, rssKB, cpuSeconds, othersCores, lines, log: logFile };
      if (code !== 0 && !allowFail) {
        const tail = lines.slice(-25).map((l) => `  ${l.text}`).join('\n');
        reject(new Error(`${name} failed (exit ${code}); log ${logFile}:\n${tail}`));
      } else resolve(r);
    });
  });
}

/** Runs as root (setup work, not measured). */
function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
}
const chownUser = (p) => sh('chown', ['-R', `${cfg.user}:`, p]);
const wipe = (p) => rmSync(p, { recursive: true, force: true });
/**
 * Before a cold run: dirty pages written back and the page, dentry and inode
 * caches dropped, as on a CI machine's first build. Without it, a run soon
 * after a mass delete (the previous run's state, a test suite) measured ext4
 * more than the tool: each new inode's allocation looked up recently freed
 * inodes' table blocks in the buffer cache (perf: recently_deleted and
 * find_get_block_common under ext4_create), and unpacking the 9k-file Go base
 * took 7-11 s instead of 3 s, for either tool.
 */
function coldStart() {
  sh('sync', []);
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ------------------------------------------------------------ tools

const stowage = (name, args, opts) => runAs(name, ['node', CLI, ...args], opts);

/** Buildah's global flags for a store under `dir`, with the chosen storage driver. */
const buildahStore = (dir) => ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--storage-driver', buildahSetup.driver];
const buildahSetup = { driver: 'overlay', isolation: ['--isolation', 'oci', '--runtime', 'runc'], notes: [] };
const buildah = (name, dir, args, opts) => runAs(name, ['buildah', ...buildahStore(dir), ...args], opts);
const bud = (name, dir, ctx, extra = [], opts) =>
  buildah(name, dir, ['bud', '--layers', ...buildahSetup.isolation, '--network', 'host', '--tls-verify=false', ...extra, ctx], opts);

/** Chooses Buildah's storage driver (overlay, else vfs) and isolation (runc, else chroot) by building a tiny image. */
async function probeBuildah() {
  const ctx = D('probe', 'ctx');
  mkdirSync(ctx, { recursive: true });
  writeFileSync(join(ctx, 'Dockerfile'), `FROM ${cfg.reg}/library/busybox:latest\nRUN echo probe > /probe\n`);
  chownUser(D('probe'));
  for (const driver of ['overlay', 'vfs']) {
    for (const isolation of [['--isolation', 'oci', '--runtime', 'runc'], ['--isolation', 'chroot']]) {
      wipe(D('probe', 'store'));
      Object.assign(buildahSetup, { driver, isolation });
      const r = await bud('buildah-probe', D('probe', 'store'), ctx, [], { allowFail: true });
      if (r.code === 0) {
        log(`buildah: storage driver ${driver}, ${isolation.join(' ')}`);
        wipe(D('probe'));
        return;
      }
      buildahSetup.notes.push(`${driver} with ${isolation.join(' ')} failed: ${r.lines.slice(-1)[0]?.text ?? ''}`);
    }
  }
  throw new Error(`no Buildah configuration works:\n${buildahSetup.notes.join('\n')}`);
}

function writeRegistriesConf() {
  mkdirSync(D('containers'), { recursive: true });
  // Short names resolve to docker.io, pulled through the loopback mirror as stowage's --registry-mirror does.
  writeFileSync(REGISTRIES_CONF, [
    'unqualified-search-registries = ["docker.io"]',
    'short-name-mode = "permissive"',
    '[[registry]]', 'prefix = "docker.io"', 'location = "docker.io"',
    '[[registry.mirror]]', `location = "${cfg.reg}"`, 'insecure = true',
    '[[registry]]', `location = "${cfg.reg}"`, 'insecure = true',
    '[[registry]]', `location = "${cfg.benchReg}"`, 'insecure = true', '',
  ].join('\n'));
}

// ------------------------------------------------------------ images

/** The busybox root filesystem of the golang fixture's first layer, for images that RUN needs a shell in. */
function busyboxTree() {
  const dir = D('trees', 'busybox');
  if (existsSync(dir)) return dir;
  const layout = join(cfg.state, 'fixtures', 'golang');
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  const blob = (d) => join(layout, 'blobs', 'sha256', d.slice('sha256:'.length));
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0].digest), 'utf8'));
  mkdirSync(dir, { recursive: true });
  sh('tar', ['-xzf', blob(manifest.layers[0].digest), '-C', dir]);
  return dir;
}

/** Generates a tree, makes an image of busybox + it, pushes it to the bench registry; returns the reference. */
function benchImage(name, files, mb, seed, keepTree = false) {
  const ref = `${cfg.benchReg}/bench/${name}:1`;
  const tree = D('trees', name);
  const t0 = performance.now();
  wipe(tree);
  log(`generating ${name}: ${files} files, ${mb} MB`);
  sh('node', [join(cfg.root, 'scripts/bench.d/make-tree.mjs'), tree, String(files), String(mb), String(seed)]);
  const layout = D('layouts', name);
  const spec = D('layouts', `${name}.json`);
  mkdirSync(D('layouts'), { recursive: true });
  writeFileSync(spec, JSON.stringify({
    out: layout, ref: '1',
    images: [{
      platform: { os: 'linux', architecture: 'amd64' },
      layers: [{ dir: busyboxTree(), comment: 'busybox' }, { dir: tree, comment: `${files} files, ${mb} MB` }],
      config: { Cmd: ['sh'], Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
    }],
  }));
  sh('node', [join(cfg.root, 'scripts/lib/make-image.mjs'), spec]);
  sh('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:1`, `docker://${ref}`]);
  wipe(layout);
  if (!keepTree) wipe(tree);
  log(`${ref} ready in ${((performance.now() - t0) / 1000).toFixed(0)}s`);
  return { ref, tree };
}

// ------------------------------------------------------------ cases

const results = []; // rows for the report
const record = (row) => {
  results.push(row);
  log(`${row.id} ${row.label}: stowage ${fmt(row.stowage, row.unit)}, ${row.otherName ?? 'buildah'} ${fmt(row.other, row.unit)}`);
};
const fmt = (v, unit) => (Number.isFinite(v) ? (unit === 'MB/s' ? v.toFixed(1) : unit === 'MB' ? v.toFixed(0) : v.toFixed(3)) : 'n/a');
const mbOf = (kb) => kb / 1024;

function stepSeconds(lines, startRe, endRe) {
  const s = lines.find((l) => startRe.test(l.text));
  if (!s) return NaN;
  const m = s.text.match(/^#(\d+) /);
  const end = lines.find((l) => l.t >= s.t && (m ? new RegExp(`^#${m[1]} (.* )?DONE `) : endRe).test(l.text));
  return end ? end.t - s.t : NaN;
}

async function exampleCases() {
  const ctx = D('example', 'ctx');
  mkdirSync(ctx, { recursive: true });
  const example = readFileSync(join(cfg.root, 'scripts/example'), 'utf8');
  const dockerfile = example.slice(example.indexOf('# syntax=docker/dockerfile:1'), example.indexOf('DOCKERFILE', example.indexOf('# syntax=')));
  // Buildah 1.28 has no heredocs (1.33 has): main.go goes into the context instead, for both tools.
  const heredoc = dockerfile.match(/^COPY <<EOF (\S+)\n([\s\S]*?)^EOF\n/m);
  if (!heredoc) throw new Error('scripts/example: no COPY <<EOF heredoc found');
  writeFileSync(join(ctx, 'main.go'), heredoc[2]);
  writeFileSync(join(ctx, 'Dockerfile'), dockerfile.replace(heredoc[0], `COPY main.go ${heredoc[1]}\n`));
  chownUser(D('example'));
  const m = { sc: [], sw: [], bc: [], bw: [], sx: [], bx: [], scR: [], swR: [], bcR: [], bwR: [], o: [] };
  const sRoot = D('example', 'stowage');
  const bStore = D('example', 'buildah');
  const sBuild = (n) => stowage(n, ['build', '--root', sRoot, '--registry-mirror', `docker.io=${cfg.reg}`, '-o', `type=oci,dest=${D('example', 'stowage.tar')}`, ctx]);
  const bBuild = async (n) => {
    const a = await bud(n, bStore, ctx, ['-t', 'bench-hello']);
    wipe(D('example', 'buildah.tar'));
    const b = await buildah(`${n}-push`, bStore, ['push', 'bench-hello', `oci-archive:${D('example', 'buildah.tar')}`]);
    return { seconds: a.seconds + b.seconds, rssKB: Math.max(a.rssKB, b.rssKB), othersCores: (a.othersCores * a.seconds + b.othersCores * b.seconds) / (a.seconds + b.seconds) };
  };
  for (let i = 0; i < cfg.runs; i++) {
    wipe(sRoot);
    wipe(bStore);
    log(`P1/P2 run ${i + 1}/${cfg.runs}`);
    coldStart();
    const sc = await sBuild('p1-stowage');
    coldStart();
    const bc = await bBuild('p1-buildah');
    const sw = await sBuild('p2-stowage');
    const bw = await bBuild('p2-buildah');
    m.sc.push(sc.seconds); m.bc.push(bc.seconds); m.sw.push(sw.seconds); m.bw.push(bw.seconds);
    m.scR.push(sc.rssKB); m.bcR.push(bc.rssKB); m.swR.push(sw.rssKB); m.bwR.push(bw.rssKB);
    m.o.push(sc.othersCores, bc.othersCores, sw.othersCores, bw.othersCores);
    // One source change: COPY, go build and the final COPY run again.
    const main = join(ctx, 'main.go');
    writeFileSync(main, readFileSync(main, 'utf8').replace(/fmt\.Println\("hello, [^"]*"\)/, `fmt.Println("hello, run ${i}")`));
    m.sx.push((await sBuild('p2-stowage-change')).seconds);
    m.bx.push((await bBuild('p2-buildah-change')).seconds);
  }
  wipe(sRoot);
  wipe(bStore);
  const others = median(m.o);
  record({ id: 'P1', label: 'multi-stage Go example (scripts/example, main.go from the context), cold: empty state, caches dropped (sync; drop_caches), base pulled from the loopback registry, build + OCI archive', unit: 's', stowage: median(m.sc), other: median(m.bc), goal: { max: 0.5 }, rss: [median(m.scR), median(m.bcR)], others });
  record({ id: 'P2', label: 'the same, warm, nothing changed (Buildah --layers)', unit: 's', stowage: median(m.sw), other: median(m.bw), goal: { max: 0.25 }, rss: [median(m.swR), median(m.bwR)], others });
  record({ id: 'P2', label: 'the same after one change to main.go (COPY, go build and the last COPY run again)', unit: 's', stowage: median(m.sx), other: median(m.bx), others });
}

async function runStepCases() {
  const sizes = [[1, cfg.files, cfg.mb]];
  if (cfg.large) sizes.push([10, cfg.files * 10, cfg.mb * 10]);
  const step = {};
  for (const [mult, files, mb] of sizes) {
    const { ref } = benchImage(`base${mult}x`, files, mb, mult);
    const ctx = D('p3', 'ctx');
    mkdirSync(ctx, { recursive: true });
    chownUser(D('p3'));
    const sRoot = D('p3', `stowage-${mult}`);
    const bStore = D('p3', `buildah-${mult}`);
    const dockerfile = (tag) => {
      writeFileSync(join(ctx, 'Dockerfile'), `FROM ${ref}\nRUN echo ${tag} > /bench-step\n`);
      chownUser(ctx);
    };
    // Warm-up (not measured): the base pulled and unpacked by each tool.
    dockerfile('warm-up');
    await stowage(`p3-${mult}x-stowage-warmup`, ['build', '--root', sRoot, ctx]);
    await bud(`p3-${mult}x-buildah-warmup`, bStore, ctx);
    const m = { s: [], b: [], sw: [], bw: [], o: [] };
    for (let i = 0; i < cfg.runs; i++) {
      log(`P3 ${mult}x run ${i + 1}/${cfg.runs}`);
      dockerfile(`stowage-${i}`);
      const s = await stowage(`p3-${mult}x-stowage`, ['build', '--root', sRoot, ctx]);
      dockerfile(`buildah-${i}`);
      const b = await bud(`p3-${mult}x-buildah`, bStore, ctx);
      m.s.push(stepSeconds(s.lines, /^#\d+ (\[[^\]]*\] )?RUN echo /));
      m.b.push(stepSeconds(b.lines, /^STEP 2\/2: RUN /, /^--> /));
      m.sw.push(s.seconds);
      m.bw.push(b.seconds);
      m.o.push(s.othersCores, b.othersCores);
    }
    wipe(sRoot);
    wipe(bStore);
    step[mult] = m;
    const label = `${files} files / ${mb} MB base`;
    record({ id: 'P3', label: `one-file RUN on a ${label}: the RUN step (prepare, run, diff, commit)`, unit: 's', stowage: median(m.s), other: median(m.b), goal: { max: 0.3 }, others: median(m.o) });
    record({ id: 'P3', label: `the same, whole one-step build on the pulled base (no export)`, unit: 's', stowage: median(m.sw), other: median(m.bw), others: median(m.o) });
  }
  if (step[10]) {
    const r = (k) => median(step[10][k]) / median(step[1][k]);
    record({ id: 'P3', label: '10× base / 1× base, RUN step time', unit: '×', stowage: r('s'), other: r('b'), goal: { stowageMax: 1.5 }, others: NaN, ratioOnly: true });
  }
}

async function pullCase() {
  const ref = `${cfg.benchReg}/bench/base1x:1`;
  const m = { s: [], k: [], o: [], sR: [], kR: [] };
  let bytes = 0;
  for (let i = 0; i < cfg.runs; i++) {
    log(`P4 run ${i + 1}/${cfg.runs}`);
    mkdirSync(D('p4'), { recursive: true });
    chownUser(D('p4'));
    const s = await runAs('p4-stowage', ['node', join(cfg.dir, 'bench.d', 'pull.mjs'), D('p4', 'store'), ref], { extraEnv: { STOWAGE_REGISTRY_MODULE: D('modules', 'registry-client.mjs') } });
    const j = JSON.parse(s.lines.find((l) => l.text.startsWith('{')).text);
    bytes = j.bytes;
    const k = await runAs('p4-skopeo', ['skopeo', 'copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${D('p4', 'layout')}:1`]);
    m.s.push(j.bytes / 1e6 / j.seconds);
    m.k.push(bytes / 1e6 / k.seconds);
    m.sR.push(s.rssKB);
    m.kR.push(k.rssKB);
    m.o.push(s.othersCores, k.othersCores);
    wipe(D('p4'));
  }
  record({ id: 'P4', label: `pull of the ${cfg.mb} MB base (${(bytes / 1e6).toFixed(0)} MB compressed) from a loopback registry: RegistryClient.pull vs skopeo copy to oci:DIR`, unit: 'MB/s', otherName: 'skopeo', stowage: median(m.s), other: median(m.k), goal: { min: 1 }, rss: [median(m.sR), median(m.kR)], others: median(m.o) });
}

async function gzipCase() {
  // The golang fixture's layers (busybox + a Go toolchain): real binaries and sources, uncompressed.
  const layout = join(cfg.state, 'fixtures', 'golang');
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  const blob = (d) => join(layout, 'blobs', 'sha256', d.slice('sha256:'.length));
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0].digest), 'utf8'));
  mkdirSync(D('p5'), { recursive: true });
  const tars = manifest.layers.map((l, i) => {
    const t = D('p5', `layer-${i}.tar`);
    sh('sh', ['-c', `gzip -dc '${blob(l.digest)}' > '${t}'`]);
    return t;
  });
  chownUser(D('p5'));
  const bytes = tars.reduce((s, t) => s + statSync(t).size, 0);
  const m = { p: [], s: [], g: [], o: [], pR: [], pCpu: [] };
  const moduleEnv = { extraEnv: { STOWAGE_SNAPSHOTTER_MODULE: D('modules', 'snapshotter.mjs') } };
  for (let i = 0; i < cfg.runs; i++) {
    log(`P5 run ${i + 1}/${cfg.runs}`);
    const gz = async (mode) => {
      const r = await runAs(`p5-${mode}`, ['node', join(cfg.dir, 'bench.d', 'gzip-export.mjs'), mode, '1', D('p5'), ...tars], moduleEnv);
      return { r, j: JSON.parse(r.lines.find((l) => l.text.startsWith('{')).text) };
    };
    const p = await gz('parallel');
    const g = await runAs('p5-gzip', ['sh', '-c', `gzip -6 -c ${tars.map((t) => `'${t}'`).join(' ')} > /dev/null`]);
    const s = await gz('single');
    m.p.push(p.j.mbps);
    m.s.push(s.j.mbps);
    m.g.push(bytes / 1e6 / g.seconds);
    m.pR.push(p.r.rssKB);
    m.pCpu.push(p.r.cpuSeconds / p.r.seconds);
    m.o.push(p.r.othersCores, g.othersCores, s.r.othersCores);
  }
  wipe(D('p5'));
  const label = `gzip -6 of the golang fixture's ${tars.length} layers (${(bytes / 1e6).toFixed(0)} MB of tar), sha256 of both sides in the same pass`;
  record({ id: 'P5', label: `${label}: stowage's layer writer (1 MiB members, parallel) vs \`gzip -6\` on one core`, unit: 'MB/s', otherName: 'gzip -6', stowage: median(m.p), other: median(m.g), goal: { min: 1.7 }, rss: [median(m.pR), NaN], others: median(m.o), extra: `cores busy in stowage's process: ${median(m.pCpu).toFixed(2)}` });
  record({ id: 'P5', label: 'the same, stowage\'s former single-stream writer (one zlib stream) vs `gzip -6`', unit: 'MB/s', otherName: 'gzip -6', stowage: median(m.s), other: median(m.g), others: median(m.o) });
}

async function bigLayerCases() {
  const { ref, tree } = benchImage('big', 8, cfg.bigMb, 99, true);
  const ctx = D('p6', 'ctx');
  mkdirSync(D('p6'), { recursive: true });
  sh('mv', [tree, ctx]);
  writeFileSync(join(ctx, 'Dockerfile.pull'), `FROM ${ref}\nLABEL bench=pull\n`);
  writeFileSync(join(ctx, 'Dockerfile.copy'), `FROM ${cfg.reg}/library/busybox:latest\nCOPY usr/ /usr/\n`);
  chownUser(D('p6'));
  const m = { pull: { s: [], b: [], st: [], bt: [] }, copy: { s: [], b: [], st: [], bt: [] }, o: [] };
  for (let i = 0; i < cfg.runs; i++) {
    for (const kind of ['pull', 'copy']) {
      log(`P6 ${kind} run ${i + 1}/${cfg.runs}`);
      const sRoot = D('p6', 'stowage');
      const bStore = D('p6', 'buildah');
      wipe(sRoot);
      wipe(bStore);
      const s = await stowage(`p6-${kind}-stowage`, ['build', '--root', sRoot, '-f', join(ctx, `Dockerfile.${kind}`), '-o', `type=oci,dest=${D('p6', 'stowage.tar')}`, ctx]);
      wipe(sRoot);
      wipe(D('p6', 'stowage.tar'));
      const b1 = await bud(`p6-${kind}-buildah`, bStore, ctx, ['-f', join(ctx, `Dockerfile.${kind}`), '-t', 'bench-big']);
      const b2 = await buildah(`p6-${kind}-buildah-push`, bStore, ['push', 'bench-big', `oci-archive:${D('p6', 'buildah.tar')}`]);
      wipe(bStore);
      wipe(D('p6', 'buildah.tar'));
      m[kind].s.push(mbOf(s.rssKB));
      m[kind].b.push(mbOf(Math.max(b1.rssKB, b2.rssKB)));
      m[kind].st.push(s.seconds);
      m[kind].bt.push(b1.seconds + b2.seconds);
      m.o.push(s.othersCores, b1.othersCores);
    }
  }
  wipe(D('p6'));
  const gb = `${cfg.bigMb} MB`;
  record({ id: 'P6', label: `peak RSS: \`FROM\` an image with a ${gb} layer, pull + unpack + OCI archive`, unit: 'MB', stowage: median(m.pull.s), other: median(m.pull.b), goal: { stowageMax: 150 }, others: median(m.o), extra: `time: stowage ${median(m.pull.st).toFixed(1)} s, Buildah ${median(m.pull.bt).toFixed(1)} s` });
  record({ id: 'P6', label: `peak RSS: \`COPY\` of ${gb} into a new layer (compressed) + OCI archive`, unit: 'MB', stowage: median(m.copy.s), other: median(m.copy.b), goal: { stowageMax: 150 }, others: median(m.o), extra: `time: stowage ${median(m.copy.st).toFixed(1)} s, Buildah ${median(m.copy.bt).toFixed(1)} s` });
}

const snapshotRows = [];
async function snapshotCases() {
  const sizes = [[cfg.files, cfg.mb]];
  if (cfg.large) sizes.push([cfg.files * 10, cfg.mb * 10]);
  for (const backend of ['overlay', 'native']) {
    for (const [files, mb] of sizes) {
      log(`snapshot step: ${backend}, ${files} files / ${mb} MB`);
      mkdirSync(D('snap'), { recursive: true });
      chownUser(D('snap'));
      const r = await runAs(`snapshot-${backend}-${files}`, ['unshare', '--user', '--mount', '--map-root-user', '--map-auto', '--',
        'node', join(cfg.dir, 'bench.d', 'snapshot-step.mjs'), D('snap'), backend, String(files), String(mb), String(cfg.runs)],
        { extraEnv: { STOWAGE_SNAPSHOTTER_MODULE: D('modules', 'snapshotter.mjs') } });
      snapshotRows.push({ ...JSON.parse(r.lines.find((l) => l.text.startsWith('{')).text), others: r.othersCores });
    }
    wipe(D('snap'));
  }
}

// ------------------------------------------------------------ report

function version(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0].trim();
  } catch {
    return 'n/a';
  }
}

function report({ loadBefore, loadAfter, started }) {
  const out = [];
  const others = results.map((r) => r.others).filter(Number.isFinite);
  const busiest = others.length ? Math.max(...others) : 0;
  // What ran *during* the cases decides; the 1-minute load average before the run only trails what came before.
  const busy = busiest > 0.25;
  const cpu = os.cpus();
  out.push('# Benchmarks', '');
  if (busy) {
    out.push(`> **Busy machine: these figures are not comparable.** Other processes used up to ${busiest.toFixed(2)} cores while cases ran (load average ${loadBefore.toFixed(2)} before the run). Rerun \`scripts/bench\` on a quiet machine.`, '');
  } else if (loadBefore > 0.5) {
    out.push(`> Load average ${loadBefore.toFixed(2)} before the run, from what ran before it; while the cases ran, other processes used at most ${busiest.toFixed(2)} cores (the "other load" column).`, '');
  }
  out.push(`Generated by \`scripts/bench\` on ${started.toISOString().slice(0, 10)} (run as root; every command runs as the unprivileged user \`${cfg.user}\`). Medians of ${cfg.runs} run(s); within a run, stowage and Buildah take turns. Sizes: base ${cfg.files} files / ${cfg.mb} MB${cfg.large ? ` and ${cfg.files * 10} / ${cfg.mb * 10}` : ''}, big layer ${cfg.bigMb} MB.`, '');
  out.push(`Machine: ${cpu.length} × ${cpu[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, kernel ${os.release()}; node ${process.version}, ${version('runc', ['--version'])}, ${version('buildah', ['--version'])}, ${version('skopeo', ['--version'])}, ${version('gzip', ['--version'])}. Load average before/after: ${loadBefore.toFixed(2)} / ${loadAfter.toFixed(2)}.`, '');
  out.push(`Buildah: storage driver \`${buildahSetup.driver}\` (rootless), \`${buildahSetup.isolation.join(' ')}\`, \`--network host\`, \`--layers\`, its own \`--root\`/\`--runroot\`; pulls through a registries.conf mirror of docker.io to the loopback registry.${buildahSetup.notes.length ? ` Tried first: ${buildahSetup.notes.join('; ')}.` : ''}`, '');
  out.push('"other load" is the CPU the rest of the machine used while the case ran (cores; /proc/stat minus the measured processes), to spot a busy machine. Peak RSS is the largest single process of the command\'s tree (`/usr/bin/time -v`).', '');
  out.push('| case | what | stowage | Buildah (or the reference) | stowage / reference | goal | peak RSS stowage / reference, MB | other load |', '| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |');
  for (const r of results) {
    const ratio = r.ratioOnly ? NaN : r.stowage / r.other;
    let goal = '';
    if (r.goal?.max !== undefined) goal = `≤ ${r.goal.max} ${Number.isFinite(ratio) ? (ratio <= r.goal.max ? '✓' : '✗') : ''}`;
    if (r.goal?.min !== undefined) goal = `≥ ${r.goal.min} ${Number.isFinite(ratio) ? (ratio >= r.goal.min ? '✓' : '✗') : ''}`;
    if (r.goal?.stowageMax !== undefined) goal = `stowage ${r.unit === 'MB' ? '≤' : '<'} ${r.goal.stowageMax}${r.unit === 'MB' ? ' MB' : ''} ${Number.isFinite(r.stowage) ? (r.stowage <= r.goal.stowageMax ? '✓' : '✗') : ''}`;
    const unit = r.unit === '×' ? '' : ` ${r.unit}`;
    const other = `${fmt(r.other, r.unit)}${unit}${r.otherName ? ` (${r.otherName})` : ''}`;
    const rss = r.rss ? `${fmt(mbOf(r.rss[0]), 'MB')} / ${fmt(mbOf(r.rss[1]), 'MB')}` : '';
    out.push(`| ${r.id} | ${r.label}${r.extra ? ` (${r.extra})` : ''} | ${fmt(r.stowage, r.unit)}${unit} | ${other} | ${Number.isFinite(ratio) ? ratio.toFixed(2) : ''} | ${goal.trim()} | ${rss} | ${Number.isFinite(r.others) ? r.others.toFixed(2) : ''} |`);
  }
  out.push('', 'Ratios: times are stowage / Buildah (lower is better); throughputs (MB/s) are stowage / reference (higher is better).', '');
  if (snapshotRows.length) {
    out.push('## Snapshot cost of one build step (stowage only)', '', 'One step = prepare an active snapshot, change one file, diff it into a gzip layer, commit; rootless, in the build\'s user namespace, no RUN. The first step of a stage is prepared on the committed base; later steps on the step before.', '');
    out.push('| backend | base files | base MB | first step of a stage, s | later step, median s | later step, min–max s | other load |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of snapshotRows) out.push(`| ${r.backend} | ${r.files} | ${r.megabytes} | ${r.first.toFixed(3)} | ${r.step.toFixed(3)} | ${r.stepMin.toFixed(3)}–${r.stepMax.toFixed(3)} | ${r.others.toFixed(2)} |`);
    out.push('');
  }
  let notes = '';
  if (existsSync(cfg.out)) {
    const old = readFileSync(cfg.out, 'utf8');
    const at = old.indexOf(NOTES_MARKER);
    if (at >= 0) notes = old.slice(at);
  }
  out.push(notes || `${NOTES_MARKER}\n`);
  return out.join('\n');
}

// ------------------------------------------------------------ main

const started = new Date();
const loadBefore = os.loadavg()[0];
for (const d of ['logs', 'home', 'modules']) mkdirSync(D(d), { recursive: true });
mkdirSync(XDG, { recursive: true, mode: 0o700 });
writeRegistriesConf();
chownUser(cfg.dir);
sh('chmod', ['0700', XDG]);

const wantsBuildah = ['P1', 'P2', 'P3', 'P6'].some((c) => cfg.cases.has(c));
if (wantsBuildah) await probeBuildah();
if (cfg.cases.has('P1') || cfg.cases.has('P2')) await exampleCases();
if (cfg.cases.has('P3') || cfg.cases.has('P4')) {
  if (cfg.cases.has('P3')) await runStepCases();
  else benchImage('base1x', cfg.files, cfg.mb, 1);
  if (cfg.cases.has('P4')) await pullCase();
}
if (cfg.cases.has('P5')) await gzipCase();
if (cfg.cases.has('P6')) await bigLayerCases();
if (cfg.cases.has('S')) await snapshotCases();

const text = report({ loadBefore, loadAfter: os.loadavg()[0], started });
writeFileSync(cfg.out, text);
console.log(text);
