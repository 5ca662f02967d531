import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContentStore, sha256Digest } from '@stowage/registry-client';
import { DownloadFeeds } from '../../src/engine/download-feeds.js';

let root: string;
let store: ContentStore;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-feeds-'));
  store = await ContentStore.open(join(root, 'content'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of it) out.push(c);
  return Buffer.concat(out);
}

test('a layer whose download has not started yet is followed once it starts', async () => {
  const data = Buffer.alloc(1536 * 1024, 0x62);
  const digest = sha256Digest(data);
  const feeds = new DownloadFeeds();
  let finish!: () => void;
  const download = new Promise<void>((resolve) => (finish = resolve));
  const following = feeds.follow(digest, download);
  const w = await store.begin({ digest, size: data.byteLength });
  feeds.started(digest, w);
  const arriving = await following;
  expect(arriving).toBeDefined();
  const read = collect(arriving as AsyncIterable<Buffer>);
  await w.write(data);
  await w.commit();
  finish();
  expect((await read).equals(data)).toBe(true);
});

test('a download that settles before it writes (stored already, another process, a failure) is not followed', async () => {
  const feeds = new DownloadFeeds();
  await expect(feeds.follow(sha256Digest('a'), Promise.resolve())).resolves.toBeUndefined();
  await expect(feeds.follow(sha256Digest('b'), Promise.reject(new Error('registry down')))).resolves.toBeUndefined();
});

test('a finished writer is not followed: the next endpoint\'s writer is', async () => {
  const data = Buffer.from('layer bytes');
  const digest = sha256Digest(data);
  const feeds = new DownloadFeeds();
  const mirror = await store.begin({ digest, size: data.byteLength });
  feeds.started(digest, mirror);
  await mirror.abort(); // the mirror failed; the origin comes next
  const following = feeds.follow(digest, new Promise<void>(() => undefined));
  const origin = await store.begin({ digest, size: data.byteLength });
  feeds.started(digest, origin);
  const read = collect((await following) as AsyncIterable<Buffer>);
  await origin.write(data);
  await origin.commit();
  expect((await read).equals(data)).toBe(true);
});
