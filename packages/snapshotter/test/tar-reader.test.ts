/**
 * xattr names in `SCHILY.xattr.<name>` PAX keywords: '=' cannot appear in a keyword, so GNU tar
 * writes `%` as `%25` and `=` as `%3D`; the reader decodes exactly those, as GNU tar 1.34 does.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeLayer, type LayerEntry } from '../src/diff-writer.js';
import { decodeXattrKeyword, readTar, type TarEntry } from '../src/tar-reader.js';
import { listLayer, makeTar } from './fixtures.js';

async function entries(tar: Buffer): Promise<TarEntry[]> {
  const out: TarEntry[] = [];
  async function* one(): AsyncGenerator<Buffer> {
    yield tar;
  }
  for await (const item of readTar(one())) out.push(item.entry);
  return out;
}

const names = (e: TarEntry | undefined): string[] => [...(e?.xattrs.keys() ?? [])].sort();

let sandbox: string;
beforeEach(() => {
  sandbox = mkdtempSync(join(tmpdir(), 'stowage-tar-reader-'));
});
afterEach(() => rmSync(sandbox, { recursive: true, force: true }));

/** Can this filesystem hold user.* xattrs whose names contain '=' and '%' (setfattr present)? */
function userXattrs(dir: string): boolean {
  const probe = join(dir, 'probe');
  writeFileSync(probe, '');
  const ok = spawnSync('setfattr', ['-n', 'user.x=%', '-v', '1', probe]).status === 0;
  rmSync(probe);
  return ok;
}

describe('tar-reader: escaped xattr names', () => {
  test('decodes %3D and %25 only, uppercase, in one pass (GNU tar 1.34)', () => {
    const cases: [string, string][] = [
      ['user.x%3Dy', 'user.x=y'],
      ['user.p%253D\\z', 'user.p%3D\\z'],
      ['user.q%2525w', 'user.q%25w'],
      ['user.s%3D%25%2525', 'user.s=%%25'],
      ['user.%%3D', 'user.%='],
      ['user.r%3d', 'user.r%3d'], // lowercase: not an escape
      ['user.t%', 'user.t%'],
      ['user.u%3', 'user.u%3'],
      ['user.v%41', 'user.v%41'],
      ['user.plain', 'user.plain'],
      ['trusted.é\\x', 'trusted.é\\x'],
    ];
    for (const [kw, name] of cases) expect([kw, decodeXattrKeyword(kw)]).toEqual([kw, name]);
  });

  test('hand-built PAX records: names decoded, values untouched', async () => {
    const tar = makeTar([{ path: 'f', body: 'x', xattrs: { 'user.x%3Dy': 'a=b', 'user.plain': 'v', 'user.r%3d': '%3D' } }]);
    const [e] = await entries(tar);
    expect(names(e)).toEqual(['user.plain', 'user.r%3d', 'user.x=y']);
    expect(e?.xattrs.get('user.x=y')?.toString()).toBe('a=b');
    expect(e?.xattrs.get('user.r%3d')?.toString()).toBe('%3D');
  });

  test('an archive written by GNU tar --xattrs reads back with the original names', async () => {
    if (!userXattrs(sandbox)) {
      console.warn('setfattr unavailable or no user xattrs on this filesystem: GNU tar archive test skipped');
      return;
    }
    const src = join(sandbox, 'src');
    mkdirSync(src);
    const f = join(src, 'f');
    writeFileSync(f, 'hi');
    const xs: Record<string, string> = { 'user.x=y': '1', 'user.p%3D\\z': '2', 'user.q%25w': '3', 'user.a': '4', 'user.=%=': '5' };
    for (const [k, v] of Object.entries(xs)) execFileSync('setfattr', ['-n', k, '-v', v, f]);
    const archive = join(sandbox, 'gnu.tar');
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--format=pax', '-cf', archive, '-C', src, 'f']);
    const raw = readFileSync(archive);
    expect(raw.includes('SCHILY.xattr.user.x%3Dy=1\n')).toBe(true); // really escaped by GNU tar
    expect(raw.includes('SCHILY.xattr.user.q%2525w=3\n')).toBe(true);
    const [e] = await entries(raw);
    expect(names(e)).toEqual(Object.keys(xs).sort());
    for (const [k, v] of Object.entries(xs)) expect(e?.xattrs.get(k)?.toString()).toBe(v);
  });

  test('diff-writer output: names with "=" round-trip, and GNU tar extracts them the same', async () => {
    const src = join(sandbox, 'f');
    writeFileSync(src, 'hi');
    const xattrs = new Map([
      ['user.x=y', Buffer.from('1')],
      ['user.%=', Buffer.from('2')],
      ['user.a', Buffer.from('3')],
    ]);
    const e: LayerEntry = { path: 'f', type: 'File', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 2, source: src, xattrs };
    async function* one(): AsyncGenerator<LayerEntry> {
      yield e;
    }
    const layer = join(sandbox, 'layer.tgz');
    await writeLayer(one(), layer);
    const [got] = await listLayer(layer);
    expect(names(got)).toEqual([...xattrs.keys()].sort());
    if (!userXattrs(sandbox)) return;
    const out = join(sandbox, 'out');
    mkdirSync(out);
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-xzf', layer, '-C', out]);
    const dump = execFileSync('getfattr', ['--absolute-names', '-d', '-m', '-', '-e', 'text', join(out, 'f')], { encoding: 'utf8' });
    // getfattr prints '=' in a name as \075.
    expect(dump).toContain('user.x\\075y="1"');
    expect(dump).toContain('user.%\\075="2"');
    expect(dump).toContain('user.a="3"');
  });
});
