/**
 * Malicious-layer corpus (issue 4, item 7a): test/corpus/make-malicious-layers.mjs writes one
 * hand-made tar per case; corpus-script.ts applies them all as the unprivileged user
 * `stowage-ci` inside its user namespace (canaries around each root); here every case is
 * one test asserting its outcome and that nothing outside the root changed.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESCAPE_NAME, snapshot, type CaseResult, type CorpusReport } from './corpus-script.js';
import { ROOTLESS_USER, bundleScript, lookupUser, runInUserNamespace } from './rootless-harness.js';

const USER = process.env.STOWAGE_TEST_USER ?? ROOTLESS_USER; // as in scripts/setup
const here = dirname(fileURLToPath(import.meta.url)); // packages/snapshotter/dist/test
const repo = resolve(here, '../../../..');
const generator = join(repo, 'test/corpus/make-malicious-layers.mjs');

type Expect =
  | { outcome: 'refused'; code: string; message?: string; why?: string }
  | { outcome: 'applied'; tree: Record<string, string>; warnings: string[] };
interface CorpusCase {
  name: string;
  description: string;
  models?: string;
  layer: string;
  base?: string;
  expect: Expect;
}

const user = lookupUser(USER);
const isRoot = process.getuid?.() === 0;
const work = mkdtempSync(join(tmpdir(), 'stowage-corpus-'));
const corpusDir = join(work, 'corpus');
const outside = join(work, 'outside');
const home = join(user?.home ?? `/home/${USER}`, `.stowage-corpus-${basename(work)}`);

// The corpus is generated at load time: one jest test per case needs the case list.
const gen = spawnSync(process.execPath, [generator, corpusDir, '--outside', outside, '--home', home], { encoding: 'utf8' });
if (gen.status !== 0) throw new Error(`corpus generator failed (${gen.status}): ${gen.stderr}`);
const index = JSON.parse(readFileSync(join(corpusDir, 'cases.json'), 'utf8')) as { cases: CorpusCase[] };
const passwdBefore = createHash('sha256').update(readFileSync('/etc/passwd')).digest('hex');

let report: CorpusReport | undefined;
let setupError: Error | undefined;

beforeAll(() => {
  if (!user || !isRoot) {
    setupError = new Error(
      `the malicious-layer corpus must run as root with the unprivileged test user '${USER}' present ` +
        `(${!user ? `user ${USER} does not exist` : 'not running as root'}): run scripts/setup as root first, then run the tests as root`,
    );
    return;
  }
  mkdirSync(outside, { mode: 0o755 });
  mkdirSync(home, { mode: 0o755 });
  chownSync(home, user.uid, user.gid);
  // The checkout may sit where the test user cannot read: bundle the script into the work dir.
  const script = bundleScript('corpus-script.js', join(work, 'corpus-script.mjs'));
  // Everything around the roots belongs to the test user: an escape would be able to write it.
  const ch = spawnSync('chown', ['-R', `${user.uid}:${user.gid}`, work], { encoding: 'utf8' });
  if (ch.status !== 0) throw new Error(`chown failed: ${ch.stderr}`);
  const r = runInUserNamespace(script, [work, corpusDir], { user: USER, timeoutMs: 60_000, cwd: '/', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    setupError = new Error(`corpus script failed (status ${r.status}, signal ${r.signal}): ${r.stderr || r.error?.message}`);
    return;
  }
  report = JSON.parse(r.stdout) as CorpusReport;
}, 90_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

function result(name: string): CaseResult {
  if (setupError) throw setupError;
  const r = report?.results[name];
  if (!r) throw new Error(`no result for case ${name}`);
  return r;
}

test('the corpus ran unprivileged inside a user namespace, with a restrictive umask', () => {
  if (setupError) throw setupError;
  expect(index.cases.length).toBeGreaterThanOrEqual(20);
  expect(report?.uidMap).not.toBe('0 0 4294967295');
  expect(report?.uidMap).toMatch(/^0 \d+ 1\b/);
  expect(report?.umask).toBe('77');
});

describe('malicious layer corpus', () => {
  for (const c of index.cases) {
    test(c.name, () => {
      try {
        check(c, result(c.name));
      } catch (err) {
        // Say what the case is about next to jest's diff.
        if (err instanceof Error) err.message = `${c.description}${c.models ? ` [${c.models}]` : ''}\n\n${err.message}`;
        throw err;
      }
    });
  }
});

function check(c: CorpusCase, r: CaseResult): void {
  // Nothing outside the root changed, appeared or vanished; no case may hang.
  expect(r.canaryChanges).toEqual([]);
  expect(r.ms).toBeLessThan(10_000);
  if (c.expect.outcome === 'refused') {
    expect({ outcome: r.outcome, code: r.code, message: r.message }).toEqual({
      outcome: 'refused',
      code: c.expect.code,
      message: expect.stringMatching(new RegExp(c.expect.message ?? '')),
    });
    return;
  }
  expect({ outcome: r.outcome, error: r.message }).toEqual({ outcome: 'applied', error: undefined });
  expect(r.tree).toEqual(c.expect.tree);
  expect(r.warnings).toHaveLength(c.expect.warnings.length);
  c.expect.warnings.forEach((w, i) => expect(r.warnings?.[i]).toMatch(new RegExp(w)));
}

test('shared canaries and host paths are untouched (checked as real root afterwards)', () => {
  if (setupError) throw setupError;
  // Owners differ between the namespace's view and ours; everything else must match.
  const noOwner = (s: Record<string, string> = {}): Record<string, string> =>
    Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v.replace(/ owner=\S+/, '')]));
  expect(noOwner({ ...snapshot(outside), ...snapshot(home) })).toEqual(noOwner(report?.canaries));
  expect(createHash('sha256').update(readFileSync('/etc/passwd')).digest('hex')).toBe(passwdBefore);
  const stray: string[] = [];
  for (const d of ['/', '/tmp', '/etc', '/root', dirname(home), user?.home ?? '/home', work, join(work, 'cases')]) {
    let names: string[] = [];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names) if (ESCAPE_NAME.test(n)) stray.push(join(d, n));
  }
  expect(stray).toEqual([]);
});
