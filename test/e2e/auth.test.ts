// `stowage login` / `logout` and authenticated builds, as the unprivileged user,
// against real auth registries (test/lib/auth-registry.ts): Debian's docker-registry
// with token auth (a loopback token server, as Docker Hub works) and with htpasswd.
//
// A build FROM a private image is denied before login and after logout; login checks
// the password before saving it (config.json 0600 with the other keys kept, or a
// credential helper — a real `docker-credential-stowagetest` executable on PATH — via
// credHelpers and via credsStore); `build --push` goes to both registries, mounting the
// private base's layers across repositories on the token registry. No password or token
// ever shows up in stdout, stderr, the OCI tar or the --metadata-file.
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  chownTree,
  makeWorkDir,
  run,
  runStowage,
  seedImage,
  startAuthRegistry,
  testEnv,
  unpackOciTar,
  userBaseEnv,
  type AuthRegistry,
  type RunResult,
  type WorkDir,
} from '../lib/index.js';

const T = 300_000;
const ALICE = { user: 'alice', password: 'Alice-e2e-Pw-8fK2q' };
const BOB = { user: 'bob', password: 'Bob-e2e-Pw-3nZ7w' };
const b64 = (s: string) => Buffer.from(s).toString('base64');

let token: AuthRegistry;
let basic: AuthRegistry;
let work: WorkDir;
let dockerDir: string;
let helperDb: string;
let helperLog: string;
let env: Record<string, string>;
/** Everything any stowage run printed, for the final leak check. */
const printed: string[] = [];

/**
 * A credential helper speaking the docker-credential-helpers protocol, keeping
 * `URL<TAB>JSON` lines in a file; it logs each action and URL (never a secret).
 */
function helperScript(db: string, log: string): string {
  return `#!/bin/sh
db='${db}'
log='${log}'
touch "$db"
case "$1" in
  store) in=$(cat); url=$(printf '%s' "$in" | sed -n 's/.*"ServerURL":"\\([^"]*\\)".*/\\1/p')
         echo "store $url" >> "$log"
         grep -v "^$url	" "$db" > "$db.new"; printf '%s\\t%s\\n' "$url" "$in" >> "$db.new"; mv "$db.new" "$db" ;;
  get)   url=$(cat); echo "get $url" >> "$log"
         line=$(grep "^$url	" "$db") || { echo "credentials not found in native keychain"; exit 1; }
         printf '%s\\n' "$line" | cut -f2- ;;
  erase) url=$(cat); echo "erase $url" >> "$log"
         grep -q "^$url	" "$db" || { echo "credentials not found in native keychain"; exit 1; }
         grep -v "^$url	" "$db" > "$db.new"; mv "$db.new" "$db" ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
`;
}

async function stowage(args: string[], input?: string): Promise<RunResult> {
  const r = await runStowage(args, { cwd: work.dir, env, timeoutMs: T, ...(input !== undefined ? { input } : {}) });
  printed.push(r.stdout, r.stderr);
  return r;
}

/**
 * Runs `stowage ARGS` as the user on a terminal (util-linux `script` gives it a pty),
 * answering each prompt when it appears. Returns what the terminal showed.
 */
function onTerminal(args: string[], answers: Array<[prompt: string, reply: string]>): Promise<{ code: number | null; screen: string }> {
  const e = testEnv();
  const command = [e.nodePath, e.cliPath, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('setpriv', [`--reuid=${e.uid}`, `--regid=${e.gid}`, '--init-groups', '--', 'env', '-i',
    ...Object.entries({ ...userBaseEnv(), ...env }).map(([k, v]) => `${k}=${v}`), 'script', '-qec', command, '/dev/null'], { cwd: work.dir });
  let screen = '';
  let next = 0;
  child.stdout.on('data', (d: Buffer) => {
    screen += d.toString();
    const a = answers[next];
    // Answer only once the prompt is out: the terminal is switched to no-echo just after it.
    if (a !== undefined && screen.endsWith(a[0])) {
      next++;
      setTimeout(() => child.stdin.write(`${a[1]}\r`), 300);
    }
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) => child.on('close', (code) => {
    clearTimeout(timer);
    printed.push(screen);
    resolve({ code, screen });
  }));
}

const ok = (r: RunResult) => ({ code: r.code, stderr: r.code === 0 ? '' : r.stderr });

async function writeDockerConfig(content: unknown): Promise<void> {
  const p = path.join(dockerDir, 'config.json');
  await fs.writeFile(p, JSON.stringify(content));
  await fs.chown(p, testEnv().uid, testEnv().gid);
}

async function readDockerConfig(): Promise<Record<string, any>> {
  return JSON.parse(await fs.readFile(path.join(dockerDir, 'config.json'), 'utf8'));
}

/** Every file of an unpacked OCI layout, gzip blobs decompressed, for a leak check. */
async function layoutContents(dir: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const b = await fs.readFile(p);
        out.push(b[0] === 0x1f && b[1] === 0x8b ? gunzipSync(b) : b);
      }
    }
  };
  await walk(dir);
  return out;
}

function secrets(): string[] {
  return [
    ALICE.password, BOB.password, b64(`${ALICE.user}:${ALICE.password}`), b64(`${BOB.user}:${BOB.password}`),
    ...token.issued,
  ];
}

beforeAll(async () => {
  const e = testEnv();
  token = await startAuthRegistry({
    mode: 'token',
    users: { [ALICE.user]: ALICE.password },
    grants: { [ALICE.user]: { 'private/*': ['pull', 'push'], 'app/*': ['pull', 'push'] } },
  });
  basic = await startAuthRegistry({ mode: 'htpasswd', users: { [BOB.user]: BOB.password } });
  await seedImage(token, `${e.registry}/library/busybox:latest`, 'private/base:latest', [ALICE.user, ALICE.password]);
  work = await makeWorkDir({
    Dockerfile: `FROM ${token.host}/private/base:latest\nCOPY hello.txt /hello.txt\nCMD ["cat", "/hello.txt"]\n`,
    'public.Dockerfile': `FROM ${e.registry}/library/busybox\nCOPY hello.txt /hello.txt\n`,
    'hello.txt': 'hello from a private base\n',
  });
  dockerDir = path.join(work.base, 'docker');
  const bin = path.join(work.base, 'bin');
  helperDb = path.join(work.base, 'helper-store');
  helperLog = path.join(work.base, 'helper-log');
  await fs.mkdir(dockerDir, { mode: 0o700 });
  await fs.mkdir(bin);
  await fs.writeFile(path.join(bin, 'docker-credential-stowagetest'), helperScript(helperDb, helperLog), { mode: 0o755 });
  await fs.chmod(path.join(bin, 'docker-credential-stowagetest'), 0o755);
  await chownTree(work.base, e.uid, e.gid);
  env = { DOCKER_CONFIG: dockerDir, PATH: `${bin}:${userBaseEnv().PATH}` };
}, T);

afterAll(async () => {
  await token?.stop();
  await basic?.stop();
  await work?.rm();
}, T);

describe('token registry (Docker Hub flow)', () => {
  test('a build FROM a private image without login is denied: clear error, exit non-zero', async () => {
    const r = await stowage(['build', '--root', work.root, '-o', 'type=oci,dest=denied.tar', '.']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      `error: Dockerfile:1: manifest ${token.host}/private/base:latest: ${token.host} denied pull access to private/base without credentials ` +
        `(not logged in to ${token.host}: run \`stowage login ${token.host}\`)`,
    );
    await expect(fs.access(work.path('denied.tar'))).rejects.toThrow();
  }, T);

  test('login with a wrong password fails naming the registry and saves nothing', async () => {
    await writeDockerConfig({ psFormat: 'table {{.ID}}', auths: { 'other.example': { auth: b64('o:p') } } });
    const r = await stowage(['login', token.host, '-u', ALICE.user, '--password-stdin'], 'not-the-password\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^error: login to ${token.host.replace(/\./g, '\\.')}: the token server 127\\.0\\.0\\.1:\\d+/token rejected the credentials for ${token.host.replace(/\./g, '\\.')} \\(HTTP 401\\)$`, 'm'));
    expect(r.stderr + r.stdout).not.toContain('not-the-password');
    expect((await readDockerConfig()).auths).toEqual({ 'other.example': { auth: b64('o:p') } });
  }, T);

  test('login -p: checked with a token from the realm, warned about, saved in config.json (0600, other keys kept)', async () => {
    token.reset();
    const r = await stowage(['login', token.host, '-u', ALICE.user, '-p', ALICE.password]);
    expect(ok(r)).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toBe('Login Succeeded\n');
    expect(r.stderr).toContain('WARNING! Using --password via the CLI is insecure. Use --password-stdin.');
    expect(r.stderr).toContain(`WARNING! Your credentials are stored unencrypted in '${path.join(dockerDir, 'config.json')}'`);
    // docker login's check: GET /v2/ (401), a token for no scope with Basic at the realm, GET /v2/ with it (200).
    expect(token.tokenRequests).toMatchObject([{ method: 'GET', scopes: [], authScheme: 'basic', account: ALICE.user, offlineToken: true, status: 200 }]);
    expect(token.requests.map((q) => `${q.method} ${q.url} ${q.authScheme ?? '-'} ${q.status}`)).toEqual(['GET /v2/ - 401', 'GET /v2/ bearer 200']);
    const cfg = await readDockerConfig();
    expect(cfg).toEqual({
      psFormat: 'table {{.ID}}',
      auths: { 'other.example': { auth: b64('o:p') }, [token.host]: { auth: b64(`${ALICE.user}:${ALICE.password}`) } },
    });
    const st = await fs.stat(path.join(dockerDir, 'config.json'));
    expect([st.mode & 0o777, st.uid]).toEqual([0o600, testEnv().uid]);
  }, T);

  test('build FROM the private image and --push to another repository: scopes asked, base layers mounted (201)', async () => {
    token.reset();
    const target = `${token.host}/app/hello:v1`;
    const r = await stowage(['build', '--root', work.root, '-t', target, '--push', '-o', 'type=oci,dest=token.tar', '--metadata-file', 'token-meta.json', '.']);
    expect(ok(r)).toEqual({ code: 0, stderr: '' });
    const layout = await unpackOciTar(work.path('token.tar'), path.join(work.base, 'token-layout'));
    expect(r.stderr).toContain(`pushed ${target}@${layout.manifestDescriptor.digest}`);
    // The pull asked for pull on the base; the push for pull,push on the target plus pull on the mount source.
    const scopes = token.tokenRequests.map((t) => t.scopes);
    expect(scopes).toContainEqual(['repository:private/base:pull']);
    expect(scopes).toContainEqual(['repository:app/hello:pull,push', 'repository:private/base:pull']);
    expect(token.tokenRequests.every((t) => t.authScheme === 'basic' && t.status === 200)).toBe(true);
    expect(token.requests.some((q) => q.authScheme === 'basic')).toBe(false);
    // The base image's layer is mounted from private/base, not uploaded.
    const base = layout.manifest.layers[0]!.digest;
    const mount = token.requests.filter((q) => q.method === 'POST' && q.url.includes(`mount=${encodeURIComponent(base)}`) && q.url.includes('from=private%2Fbase'));
    expect(mount.map((q) => q.status)).toEqual([201]);
    expect(r.stderr).toContain(`blob ${base} mounted`);
    const remote = await run(['skopeo', 'inspect', '--tls-verify=false', '--creds', `${ALICE.user}:${ALICE.password}`, `docker://${target}`]);
    expect(remote.code).toBe(0);
    expect(JSON.parse(remote.stdout).Digest).toBe(layout.manifestDescriptor.digest);
    // Neither password nor token in the image or the metadata.
    const meta = await fs.readFile(work.path('token-meta.json'), 'utf8');
    for (const blob of [...(await layoutContents(layout.dir)), Buffer.from(meta)]) {
      for (const s of secrets()) expect(blob.includes(s)).toBe(false);
    }
  }, T);

  test('logout removes the login (other keys stay); the private base is denied again; a second logout finds nothing', async () => {
    const r = await stowage(['logout', token.host]);
    expect(ok(r)).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toBe(`Removing login credentials for ${token.host}\n`);
    expect(await readDockerConfig()).toEqual({ psFormat: 'table {{.ID}}', auths: { 'other.example': { auth: b64('o:p') } } });
    const denied = await stowage(['build', '--root', work.root, '--no-cache', '.']);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain(`denied pull access to private/base without credentials`);
    const again = await stowage(['logout', token.host]);
    expect([again.code, again.stdout]).toEqual([0, `Not logged in to ${token.host}\n`]);
  }, T);
});

describe('htpasswd registry (Basic)', () => {
  test('a wrong password: login fails with a clear error, never echoing it', async () => {
    const r = await stowage(['login', basic.host, '-u', BOB.user, '--password-stdin'], 'Wrong-Basic-Pw\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: login to ${basic.host}: incorrect username or password (HTTP 401 from ${basic.host})`);
    expect(r.stderr + r.stdout).not.toContain('Wrong-Basic-Pw');
  }, T);

  test('login --password-stdin, then build --push: Basic to the registry itself', async () => {
    const login = await stowage(['login', `http://${basic.host}/v2/`, '-u', BOB.user, '--password-stdin'], `${BOB.password}\n`);
    expect(ok(login)).toEqual({ code: 0, stderr: '' });
    expect(login.stderr).not.toContain('--password via the CLI');
    expect((await readDockerConfig()).auths[basic.host]).toEqual({ auth: b64(`${BOB.user}:${BOB.password}`) });
    basic.reset();
    const target = `${basic.host}/team/hello:v1`;
    const r = await stowage(['build', '--root', work.root, '-f', 'public.Dockerfile', '-t', target, '--push', '-o', 'type=oci,dest=basic.tar', '--metadata-file', 'basic-meta.json', '.']);
    expect(ok(r)).toEqual({ code: 0, stderr: '' });
    const layout = await unpackOciTar(work.path('basic.tar'), path.join(work.base, 'basic-layout'));
    expect(r.stderr).toContain(`pushed ${target}@${layout.manifestDescriptor.digest}`);
    const authorised = basic.requests.filter((q) => q.status >= 200 && q.status < 300);
    expect(authorised.length).toBeGreaterThan(3);
    expect(authorised.every((q) => q.authScheme === 'basic')).toBe(true);
    const meta = await fs.readFile(work.path('basic-meta.json'), 'utf8');
    for (const blob of [...(await layoutContents(layout.dir)), Buffer.from(meta)]) {
      for (const s of secrets()) expect(blob.includes(s)).toBe(false);
    }
  }, T);

  test('on a terminal: asks for username and password, does not echo the password; later logins reuse the saved one', async () => {
    await writeDockerConfig({});
    const t = await onTerminal(['login', basic.host], [['Username: ', BOB.user], ['Password: ', BOB.password]]);
    expect(t.code).toBe(0);
    expect(t.screen).toContain(`Username: ${BOB.user}`);
    expect(t.screen).toContain('Login Succeeded');
    expect(t.screen).not.toContain(BOB.password);
    expect((await readDockerConfig()).auths[basic.host]).toEqual({ auth: b64(`${BOB.user}:${BOB.password}`) });
    // No terminal and no options: the saved credentials are checked again, nothing is asked.
    const again = await stowage(['login', basic.host]);
    expect(ok(again)).toEqual({ code: 0, stderr: '' });
    expect(again.stderr).toContain(`Authenticating with existing credentials [Username: ${BOB.user}]...`);
  }, T);

  test('a stale password in config.json: the push fails naming the registry', async () => {
    const cfg = await readDockerConfig();
    cfg.auths[basic.host] = { auth: b64(`${BOB.user}:Stale-Pw-1`) };
    await writeDockerConfig(cfg);
    const r = await stowage(['build', '--root', work.root, '-f', 'public.Dockerfile', '-t', `${basic.host}/team/hello:v2`, '--push', '.']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`error: push ${basic.host}/team/hello:v2: `);
    expect(r.stderr).toContain(`authentication failed at ${basic.host}: the credentials for ${basic.host} were rejected`);
    expect(r.stderr).not.toContain('Stale-Pw-1');
    const out = await stowage(['logout', basic.host]);
    expect(out.stdout).toBe(`Removing login credentials for ${basic.host}\n`);
  }, T);
});

describe('credential helpers (docker-credential-stowagetest on PATH)', () => {
  beforeEach(async () => {
    await fs.rm(helperLog, { force: true });
  });

  test('credHelpers[registry]: login stores through the helper, the build gets from it, logout erases', async () => {
    await writeDockerConfig({ credHelpers: { [token.host]: 'stowagetest' }, credsStore: 'not-installed' });
    const login = await stowage(['login', token.host, '-u', ALICE.user, '--password-stdin'], ALICE.password);
    expect(ok(login)).toEqual({ code: 0, stderr: '' });
    expect(login.stderr).not.toContain('unencrypted');
    expect(await readDockerConfig()).toEqual({ credHelpers: { [token.host]: 'stowagetest' }, credsStore: 'not-installed', auths: { [token.host]: {} } });
    expect(await fs.readFile(helperDb, 'utf8')).toContain(`{"ServerURL":"${token.host}","Username":"${ALICE.user}","Secret":"${ALICE.password}"}`);
    const build = await stowage(['build', '--root', work.root, '--no-cache', '-o', 'type=oci,dest=helper.tar', '.']);
    expect(ok(build)).toEqual({ code: 0, stderr: '' });
    const logout = await stowage(['logout', token.host]);
    expect(logout.stdout).toBe(`Removing login credentials for ${token.host}\n`);
    expect(await fs.readFile(helperDb, 'utf8')).toBe('');
    expect(await readDockerConfig()).toEqual({ credHelpers: { [token.host]: 'stowagetest' }, credsStore: 'not-installed', auths: {} });
    const log = (await fs.readFile(helperLog, 'utf8')).trim().split('\n');
    expect(log[0]).toBe(`store ${token.host}`);
    expect(log).toContain(`get ${token.host}`);
    expect(log[log.length - 1]).toBe(`erase ${token.host}`);
    const denied = await stowage(['build', '--root', work.root, '--no-cache', '.']);
    expect(denied.stderr).toContain('denied pull access to private/base without credentials');
  }, T);

  test('credsStore: login, build --push and logout go through the helper', async () => {
    await writeDockerConfig({ credsStore: 'stowagetest' });
    const login = await stowage(['login', basic.host, '-u', BOB.user, '--password-stdin'], `${BOB.password}\n`);
    expect(ok(login)).toEqual({ code: 0, stderr: '' });
    expect(await readDockerConfig()).toEqual({ credsStore: 'stowagetest', auths: { [basic.host]: {} } });
    const push = await stowage(['build', '--root', work.root, '-f', 'public.Dockerfile', '-t', `${basic.host}/team/helper:v1`, '--push', '.']);
    expect(ok(push)).toEqual({ code: 0, stderr: '' });
    expect(await stowage(['logout', basic.host]).then((r) => r.stdout)).toBe(`Removing login credentials for ${basic.host}\n`);
    const log = (await fs.readFile(helperLog, 'utf8')).trim().split('\n');
    expect(log[0]).toBe(`store ${basic.host}`);
    expect(log).toContain(`get ${basic.host}`);
    expect(log[log.length - 1]).toBe(`erase ${basic.host}`);
  }, T);
});

test('no password, Basic credential or token in anything stowage printed', () => {
  expect(printed.length).toBeGreaterThan(20);
  const all = printed.join('\n');
  for (const s of secrets()) expect(all.includes(s)).toBe(false);
});
