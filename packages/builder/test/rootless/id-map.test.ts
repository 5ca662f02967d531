import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSubordinateRange } from '../../src/rootless/id-map.js';

let dir: string;
let file: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-subid-'));
  file = join(dir, 'subuid');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function range(text: string, name: string, id: number) {
  await writeFile(file, text);
  return readSubordinateRange(file, name, id);
}

describe('readSubordinateRange', () => {
  test('matches by name', async () => {
    expect(await range('bob:200000:65536\nalice:100000:65536\n', 'alice', 1000)).toEqual({ start: 100000, count: 65536 });
  });

  test('matches by numeric id', async () => {
    expect(await range('bob:200000:65536\n1000:300000:1000\n', 'alice', 1000)).toEqual({ start: 300000, count: 1000 });
  });

  test('the first matching range wins', async () => {
    expect(await range('alice:100000:10\nalice:500000:65536\n', 'alice', 1000)).toEqual({ start: 100000, count: 10 });
  });

  test('malformed lines are skipped', async () => {
    const text = [
      '# comment',
      '',
      'alice',
      'alice:100000',
      'alice:abc:65536',
      'alice:100000:xyz',
      'alice:100000:0',
      'alice:100000:-5',
      'alice::65536',
      'alice:100000:',
      'alice: :65536',
      'alice:1e5:65536',
      'alice:0x10:65536',
      '  alice:700000:4096  ',
    ].join('\n');
    expect(await range(text, 'alice', 1000)).toEqual({ start: 700000, count: 4096 });
  });

  test('CRLF line endings', async () => {
    expect(await range('alice:100000:65536\r\n', 'alice', 1000)).toEqual({ start: 100000, count: 65536 });
  });

  test('no entry for the user', async () => {
    expect(await range('bob:200000:65536\n', 'alice', 1000)).toBeUndefined();
  });

  test('a missing file', async () => {
    expect(await readSubordinateRange(join(dir, 'does-not-exist'), 'alice', 1000)).toBeUndefined();
  });
});
