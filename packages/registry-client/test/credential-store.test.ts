// login/logout storage: config.json rewritten atomically with every other key kept,
// and the docker-credential-helpers protocol through a real helper executable.
import { chmod, lstat, mkdir, mkdtemp, readFile, readlink, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialStoreError, dockerConfigCredentials, eraseCredentials, storeCredentials } from '../src/index.js';

let dir: string;
let cfg: string;
const savedPath = process.env['PATH'];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-cs-'));
  cfg = join(dir, 'docker', 'config.json');
});
afterEach(async () => {
  process.env['PATH'] = savedPath;
  await rm(dir, { recursive: true, force: true });
});

const read = async (p = cfg): Promise<Record<string, any>> => JSON.parse(await readFile(p, 'utf8'));
const b64 = (s: string) => Buffer.from(s).toString('base64');

test('file store: creates dir and file (0600), keeps every other key, replaces aliases of the same host', async () => {
  await mkdir(join(dir, 'docker'));
  await writeFile(
    cfg,
    JSON.stringify({
      auths: { 'http://127.0.0.1:5000/v2/': { auth: b64('old:stale') }, 'ghcr.io': { auth: b64('g:h') } },
      proxies: { default: { httpProxy: 'http://p:3128' } },
      psFormat: 'table {{.ID}}',
      currentContext: 'rootless',
    }),
    { mode: 0o644 },
  );
  const where = await storeCredentials('127.0.0.1:5000', { username: 'alice', password: 'pw:with:colons' }, { path: cfg });
  expect(where).toEqual({ kind: 'file', path: cfg });
  const j = await read();
  expect(j.auths).toEqual({ 'ghcr.io': { auth: b64('g:h') }, '127.0.0.1:5000': { auth: b64('alice:pw:with:colons') } });
  expect(j.proxies).toEqual({ default: { httpProxy: 'http://p:3128' } });
  expect(j.psFormat).toBe('table {{.ID}}');
  expect(j.currentContext).toBe('rootless');
  expect((await stat(cfg)).mode & 0o777).toBe(0o600);
  expect(await readdir(join(dir, 'docker'))).toEqual(['config.json']); // no temp file left
  expect(await dockerConfigCredentials({ path: cfg })('127.0.0.1:5000')).toEqual({ username: 'alice', password: 'pw:with:colons' });
});

test('Docker Hub goes under https://index.docker.io/v1/, whatever name it was given as', async () => {
  await storeCredentials('docker.io', { username: 'hub', password: 'p1' }, { path: cfg });
  expect(Object.keys((await read()).auths)).toEqual(['https://index.docker.io/v1/']);
  await storeCredentials('docker.io', { username: 'hub', password: 'p2' }, { path: cfg });
  expect((await read()).auths).toEqual({ 'https://index.docker.io/v1/': { auth: b64('hub:p2') } });
  expect((await stat(join(dir, 'docker'))).mode & 0o777).toBe(0o700);
});

test('an identity token is stored instead of a password', async () => {
  await storeCredentials('r.example', { username: 'u', identityToken: 'rt-1' }, { path: cfg });
  expect((await read()).auths['r.example']).toEqual({ auth: b64('u:'), identitytoken: 'rt-1' });
  expect(await dockerConfigCredentials({ path: cfg })('r.example')).toMatchObject({ identityToken: 'rt-1' });
});

test('a symlinked config.json stays a symlink; its target is replaced', async () => {
  await mkdir(join(dir, 'docker'));
  await mkdir(join(dir, 'dotfiles'));
  await writeFile(join(dir, 'dotfiles', 'docker.json'), '{"detachKeys":"ctrl-q"}');
  await symlink(join(dir, 'dotfiles', 'docker.json'), cfg);
  await storeCredentials('r.example', { username: 'u', password: 'p' }, { path: cfg });
  expect((await lstat(cfg)).isSymbolicLink()).toBe(true);
  expect(await readlink(cfg)).toBe(join(dir, 'dotfiles', 'docker.json'));
  expect(await read(join(dir, 'dotfiles', 'docker.json'))).toEqual({ detachKeys: 'ctrl-q', auths: { 'r.example': { auth: b64('u:p') } } });
});

test('logout removes every alias; a second logout finds nothing; other entries stay', async () => {
  await mkdir(join(dir, 'docker'));
  await writeFile(cfg, JSON.stringify({ auths: { 'r.example': { auth: b64('a:b') }, 'https://r.example/v2/': { auth: b64('a:c') }, 'other.example': { auth: b64('x:y') } } }));
  expect((await eraseCredentials('r.example', { path: cfg })).erased).toBe(true);
  expect((await read()).auths).toEqual({ 'other.example': { auth: b64('x:y') } });
  expect((await eraseCredentials('r.example', { path: cfg })).erased).toBe(false);
});

test('a config.json that is not JSON is refused, not overwritten', async () => {
  await mkdir(join(dir, 'docker'));
  await writeFile(cfg, '{"auths": {');
  await expect(storeCredentials('r.example', { username: 'u', password: 'p' }, { path: cfg })).rejects.toBeInstanceOf(CredentialStoreError);
  expect(await readFile(cfg, 'utf8')).toBe('{"auths": {');
});

/** A real docker-credential-<name> helper: a shell script keeping its store in a JSON-lines file. */
async function installHelper(name: string): Promise<string> {
  const bin = join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  const db = join(dir, `${name}.db`);
  await writeFile(
    join(bin, `docker-credential-${name}`),
    `#!/bin/sh
db='${db}'
touch "$db"
case "$1" in
  store) in=$(cat); url=$(printf '%s' "$in" | sed -n 's/.*"ServerURL":"\\([^"]*\\)".*/\\1/p')
         grep -v "^$url	" "$db" > "$db.new"; printf '%s\\t%s\\n' "$url" "$in" >> "$db.new"; mv "$db.new" "$db" ;;
  get)   url=$(cat); line=$(grep "^$url	" "$db") || { echo "credentials not found in native keychain"; exit 1; }
         printf '%s\\n' "$line" | cut -f2- ;;
  erase) url=$(cat); grep -q "^$url	" "$db" || { echo "credentials not found in native keychain"; exit 1; }
         grep -v "^$url	" "$db" > "$db.new"; mv "$db.new" "$db" ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
`,
  );
  await chmod(join(bin, `docker-credential-${name}`), 0o755);
  process.env['PATH'] = `${bin}:${savedPath ?? ''}`;
  return db;
}

test('credsStore: store, get and erase through the helper; config.json only records an empty entry', async () => {
  const db = await installHelper('teststore');
  await mkdir(join(dir, 'docker'));
  await writeFile(cfg, JSON.stringify({ credsStore: 'teststore' }));
  const where = await storeCredentials('docker.io', { username: 'hub', password: 'hub-secret' }, { path: cfg });
  expect(where).toEqual({ kind: 'helper', helper: 'teststore', path: cfg });
  expect(await read()).toEqual({ credsStore: 'teststore', auths: { 'https://index.docker.io/v1/': {} } });
  expect(await readFile(cfg, 'utf8')).not.toContain('hub-secret');
  expect(await readFile(db, 'utf8')).toContain('{"ServerURL":"https://index.docker.io/v1/","Username":"hub","Secret":"hub-secret"}');
  expect(await dockerConfigCredentials({ path: cfg })('docker.io')).toEqual({ username: 'hub', password: 'hub-secret' });
  expect((await eraseCredentials('docker.io', { path: cfg })).erased).toBe(true);
  expect(await readFile(db, 'utf8')).toBe('');
  expect(await read()).toEqual({ credsStore: 'teststore', auths: {} });
  expect((await eraseCredentials('docker.io', { path: cfg })).erased).toBe(false);
});

test('credHelpers[registry] wins over credsStore and the file; an identity token goes in as <token>', async () => {
  const db = await installHelper('perhost');
  await mkdir(join(dir, 'docker'));
  await writeFile(cfg, JSON.stringify({ credsStore: 'missing-helper', credHelpers: { 'r.example:5000': 'perhost' } }));
  await storeCredentials('r.example:5000', { username: 'u', identityToken: 'rt-9' }, { path: cfg });
  expect(await readFile(db, 'utf8')).toContain('"Username":"<token>","Secret":"rt-9"');
  expect(await dockerConfigCredentials({ path: cfg })('r.example:5000')).toEqual({ identityToken: 'rt-9' });
});

test('a failing helper: CredentialStoreError naming it, without the secret it was given', async () => {
  const bin = join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  await writeFile(join(bin, 'docker-credential-broken'), '#!/bin/sh\ncat; echo " could not save" >&2; exit 3\n');
  await chmod(join(bin, 'docker-credential-broken'), 0o755);
  process.env['PATH'] = `${bin}:${savedPath ?? ''}`;
  await mkdir(join(dir, 'docker'));
  await writeFile(cfg, JSON.stringify({ credsStore: 'broken' }));
  const err = (await storeCredentials('r.example', { username: 'u', password: 'S3cret-value' }, { path: cfg }).catch((e: unknown) => e)) as Error;
  expect(err).toBeInstanceOf(CredentialStoreError);
  expect(err.message).toMatch(/^docker-credential-broken store for r\.example failed: /);
  expect(err.message).not.toContain('S3cret-value');
  expect(await read()).toEqual({ credsStore: 'broken' }); // nothing recorded
  await writeFile(cfg, JSON.stringify({ credsStore: 'not-installed' }));
  await expect(storeCredentials('r.example', { username: 'u', password: 'p' }, { path: cfg })).rejects.toThrow(/docker-credential-not-installed not found in PATH/);
  await writeFile(cfg, JSON.stringify({ credsStore: '../../bin/sh' }));
  await expect(storeCredentials('r.example', { username: 'u', password: 'p' }, { path: cfg })).rejects.toThrow(/invalid credential helper name/);
});
