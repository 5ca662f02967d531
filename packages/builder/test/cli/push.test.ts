import { parseReference, type PushOptions } from '@stowage/registry-client';
import { Progress, plainRenderer, type ProgressEvent } from '../../src/engine/progress.js';
import { mountCandidates, pushError, pushOutputs } from '../../src/export/registry.js';
import { imageNames } from '../../src/cli/build-command.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const written = {
  manifest: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d('a'), size: 10 },
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d('b'), size: 5 },
  layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('c'), size: 7 }],
};

describe('mountCandidates', () => {
  test('base images on the same registry, other repositories only, no duplicates', () => {
    const target = parseReference('127.0.0.1:5000/e2e/app:1');
    expect(mountCandidates(target, ['127.0.0.1:5000/library/busybox', 'busybox', '127.0.0.1:5000/library/busybox:1', '127.0.0.1:5000/e2e/app:0', 'Bad::ref'])).toEqual(['library/busybox']);
    expect(mountCandidates(parseReference('app:1'), ['busybox:1.36', 'ghcr.io/x/y'])).toEqual(['library/busybox']);
  });
});

describe('pushError', () => {
  test('prefixes once', () => {
    expect(pushError('h/a:1', new Error('push h/a:1: HTTP 500')).message).toBe('push h/a:1: HTTP 500');
    expect(pushError('h/a:1', new Error('connection refused')).message).toBe('push h/a:1: connection refused');
    expect(pushError('h/a:1', new Error('x')).code).toBe('E_PUSH');
  });
});

describe('pushOutputs', () => {
  test('pushes each name with its tag and mount candidates; logs blob actions and the digest', async () => {
    const lines: string[] = [];
    const calls: Array<{ ref: string; opts: PushOptions }> = [];
    const pushed = await pushOutputs({
      store: undefined as never,
      written,
      names: ['127.0.0.1:5000/e2e/app:v1', 'other.example/x'],
      insecureRegistries: [],
      baseImages: ['127.0.0.1:5000/library/busybox'],
      progress: new Progress(plainRenderer((l) => lines.push(l))),
      client: () => ({
        push: async (ref, _image, opts = {}) => {
          calls.push({ ref: ref.toString(), opts });
          opts.onProgress?.({ digest: d('c'), bytes: 3, total: 7, action: 'uploaded' });
          opts.onProgress?.({ digest: d('c'), bytes: 7, total: 7, action: 'mounted' });
          opts.onProgress?.({ digest: d('b'), bytes: 5, total: 5, action: 'exists' });
          return { digest: d('a'), manifestDigest: d('a'), tags: opts.tags ?? [] };
        },
      }),
    });
    expect(calls.map((c) => [c.ref, c.opts.tags, c.opts.mountFrom])).toEqual([
      ['127.0.0.1:5000/e2e/app:v1', ['v1'], ['library/busybox']],
      ['other.example/x:latest', ['latest'], undefined],
    ]);
    expect(pushed.map((p) => p.digest)).toEqual([d('a'), d('a')]);
    expect(lines).toContain(`#1 blob ${d('c')} mounted`);
    expect(lines).toContain(`#1 blob ${d('b')} exists`);
    expect(lines.filter((l) => l.includes('uploaded') && l.includes('blob '))).toEqual([]);
    expect(lines).toContain(`#1 pushed 127.0.0.1:5000/e2e/app:v1@${d('a')} (blobs: 0 uploaded, 1 mounted, 1 existing)`);
  });

  test('uploaded bytes become step.bytes events of the push step', async () => {
    const events: ProgressEvent[] = [];
    await pushOutputs({
      store: undefined as never, written, names: ['h.example/a:1'], insecureRegistries: [], baseImages: [],
      progress: new Progress((e) => events.push(e)),
      client: () => ({
        push: async (_ref, _image, opts = {}) => {
          opts.onProgress?.({ digest: d('c'), bytes: 3, total: 7, action: 'uploaded' });
          opts.onProgress?.({ digest: d('c'), bytes: 7, total: 7, action: 'uploaded' });
          opts.onProgress?.({ digest: d('b'), bytes: 5, total: 5, action: 'exists' });
          return { digest: d('a'), manifestDigest: d('a'), tags: [] };
        },
      }),
    });
    expect(events.filter((e) => e.type === 'step.bytes').map((e) => e.type === 'step.bytes' && [e.step, e.id, e.current, e.total])).toEqual([
      [1, d('c'), 3, 7],
      [1, d('c'), 7, 7],
    ]);
  });

  test('a failure is "push REF: …" and stops there', async () => {
    const lines: string[] = [];
    let n = 0;
    await expect(pushOutputs({
      store: undefined as never, written, names: ['h.example/a:1', 'h.example/b:1'], insecureRegistries: [], baseImages: [],
      progress: new Progress(plainRenderer((l) => lines.push(l))),
      client: () => ({ push: async () => { n++; throw new Error('connect ECONNREFUSED'); } }),
    })).rejects.toThrow(/^push h\.example\/a:1: connect ECONNREFUSED$/);
    expect(n).toBe(1);
    expect(lines).toContain('#1 ERROR: push h.example/a:1: connect ECONNREFUSED');
  });
});

describe('imageNames', () => {
  test('tags then pushed names, duplicates dropped by full name', () => {
    expect(imageNames(['a:1', 'h:5000/b:2'], ['docker.io/library/a:1', 'h:5000/c'])).toEqual(['a:1', 'h:5000/b:2', 'h:5000/c']);
  });
});
