import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dockerConfigCredentials, parseDockerConfig, staticCredentials } from '../src/index.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-dc-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('parses auth, username/password, identitytoken and normalises keys', () => {
  const cfg = parseDockerConfig({
    auths: {
      'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw:with:colons').toString('base64') },
      'http://localhost:5000/v2/': { username: 'u', password: 'p' },
      'ghcr.io': { identitytoken: 'idt' },
      'empty.example': {},
    },
    credHelpers: { 'gcr.io': 'gcloud' },
  });
  expect(cfg.auths.get('index.docker.io')).toEqual({ username: 'hub', password: 'pw:with:colons' });
  expect(cfg.auths.get('localhost:5000')).toEqual({ username: 'u', password: 'p' });
  expect(cfg.auths.get('ghcr.io')).toEqual({ identityToken: 'idt' });
  expect(cfg.auths.has('empty.example')).toBe(false);
  expect(cfg.credHelpers.get('gcr.io')).toBe('gcloud');
});

test('docker.io references find the https://index.docker.io/v1/ entry', async () => {
  await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: Buffer.from('a:b').toString('base64') } } }));
  const src = dockerConfigCredentials({ path: join(dir, 'config.json') });
  expect(await src('docker.io')).toEqual({ username: 'a', password: 'b' });
  expect(await src('quay.io')).toBeUndefined();
});

test('missing or malformed config means anonymous, not an error', async () => {
  expect(await dockerConfigCredentials({ path: join(dir, 'nope.json') })('docker.io')).toBeUndefined();
  await writeFile(join(dir, 'bad.json'), '{not json');
  expect(await dockerConfigCredentials({ path: join(dir, 'bad.json') })('docker.io')).toBeUndefined();
});

test('credential helpers are run with the server URL on stdin', async () => {
  const bin = join(dir, 'bin');
  await import('node:fs/promises').then((fs) => fs.mkdir(bin));
  const helper = join(bin, 'docker-credential-fake');
  await writeFile(
    helper,
    '#!/bin/sh\nread url\nif [ "$1" = get ] && [ "$url" = "registry.example:5000" ]; then echo \'{"ServerURL":"x","Username":"hu","Secret":"hs"}\'; exit 0; fi\n' +
      'if [ "$url" = "https://index.docker.io/v1/" ]; then echo \'{"Username":"<token>","Secret":"refresh"}\'; exit 0; fi\necho "credentials not found" ; exit 1\n',
  );
  await chmod(helper, 0o755);
  await writeFile(join(dir, 'config.json'), JSON.stringify({ credsStore: 'fake', auths: {} }));
  const savedPath = process.env['PATH'];
  process.env['PATH'] = `${bin}:${savedPath ?? ''}`;
  try {
    const src = dockerConfigCredentials({ path: join(dir, 'config.json') });
    expect(await src('registry.example:5000')).toEqual({ username: 'hu', password: 'hs' });
    expect(await src('docker.io')).toEqual({ identityToken: 'refresh' });
    expect(await src('other.example')).toBeUndefined();
  } finally {
    process.env['PATH'] = savedPath;
  }
});

test('staticCredentials keys like config.json', async () => {
  const src = staticCredentials({ 'https://index.docker.io/v1/': { username: 'x', password: 'y' } });
  expect(await src('docker.io')).toEqual({ username: 'x', password: 'y' });
});
