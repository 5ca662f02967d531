import { execFileSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkoutGit, parseLsRemote, pickRef, resolveGitCommit, type GitRunOptions } from '../../src/engine/git-source.js';

describe('ls-remote output', () => {
  const out = [
    `${'1'.repeat(40)}\tHEAD`,
    `${'1'.repeat(40)}\trefs/heads/main`,
    `${'2'.repeat(40)}\trefs/heads/v1`,
    `${'3'.repeat(40)}\trefs/tags/v1`,
    `${'4'.repeat(40)}\trefs/tags/v1^{}`,
    `${'5'.repeat(40)}\trefs/tags/light`,
  ].join('\n');
  const refs = parseLsRemote(out);

  test('a tag wins over a branch of the same name (rev-parse order) and is peeled', () => {
    expect(pickRef(refs, 'v1')).toEqual({ name: 'refs/tags/v1', commit: '4'.repeat(40) });
  });
  test('full names, branches, lightweight tags, HEAD', () => {
    expect(pickRef(refs, 'refs/heads/v1')).toEqual({ name: 'refs/heads/v1', commit: '2'.repeat(40) });
    expect(pickRef(refs, 'main')?.commit).toBe('1'.repeat(40));
    expect(pickRef(refs, 'light')?.commit).toBe('5'.repeat(40));
    expect(pickRef(refs, 'HEAD')?.commit).toBe('1'.repeat(40));
    expect(pickRef(refs, 'nope')).toBeUndefined();
  });
});

describe('resolveGitCommit and checkoutGit (real git, local repository)', () => {
  let base: string;
  let repo: string;
  let opts: GitRunOptions;
  const commits: string[] = [];
  const g = (...args: string[]) => execFileSync('git', ['-C', repo, ...args], {
    encoding: 'utf8',
    env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: base, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' },
  }).trim();

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'stowage-git-'));
    repo = join(base, 'repo');
    await mkdir(join(base, 'home'));
    opts = { home: join(base, 'home'), shown: repo, secrets: [] };
    execFileSync('git', ['init', '-q', '-b', 'main', repo]);
    await writeFile(join(repo, 'one.txt'), 'one\n');
    g('add', '.');
    g('commit', '-q', '-m', 'one', '--date=2001-01-01T00:00:00Z');
    commits.push(g('rev-parse', 'HEAD'));
    g('tag', '-a', 'v1', '-m', 'v1');
    await mkdir(join(repo, 'sub', 'deep'), { recursive: true });
    await writeFile(join(repo, 'sub', 'deep', 'run.sh'), '#!/bin/sh\n', { mode: 0o700 });
    await writeFile(join(repo, 'sub', 'note'), 'note\n', { mode: 0o600 });
    await symlink('../../../../etc/passwd', join(repo, 'sub', 'escape'));
    g('add', '.');
    execFileSync('git', ['-C', repo, 'commit', '-q', '-m', 'two'], {
      env: { ...process.env, HOME: base, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t', GIT_COMMITTER_DATE: '2002-02-02T00:00:00Z' },
    });
    commits.push(g('rev-parse', 'HEAD'));
  });
  afterAll(async () => {
    await rm(base, { recursive: true, force: true });
  });

  test('HEAD, a branch, an annotated tag and a commit resolve to commits', async () => {
    expect((await resolveGitCommit({ remote: repo }, opts)).commit).toBe(commits[1]);
    expect((await resolveGitCommit({ remote: repo, ref: 'main' }, opts)).commit).toBe(commits[1]);
    expect((await resolveGitCommit({ remote: repo, ref: 'v1' }, opts))).toEqual({ commit: commits[0], refName: 'refs/tags/v1' });
    expect((await resolveGitCommit({ remote: repo, ref: commits[0]! }, opts))).toEqual({ commit: commits[0] });
    await expect(resolveGitCommit({ remote: repo, ref: 'missing' }, opts)).rejects.toThrow('no ref "missing"');
    await expect(resolveGitCommit({ remote: repo, ref: commits[0]!.slice(0, 7) }, opts)).rejects.toThrow(/full hash/);
  });

  test('checkout: .git removed, modes 0644/0755, every mtime the commit time, symlinks kept as links', async () => {
    const dir = join(base, 'co1');
    const co = await checkoutGit({ remote: repo }, { commit: commits[1]!, refName: 'HEAD' }, dir, { ...opts, keepGitDir: false });
    expect(co.root).toBe(join(dir, 'tree'));
    expect(co.mtime).toBe(Date.UTC(2002, 1, 2) / 1000);
    await expect(lstat(join(co.root, '.git'))).rejects.toThrow();
    const run = await lstat(join(co.root, 'sub', 'deep', 'run.sh'));
    expect(run.mode & 0o777).toBe(0o755);
    expect((await lstat(join(co.root, 'sub', 'note'))).mode & 0o777).toBe(0o644);
    expect((await lstat(join(co.root, 'sub'))).mode & 0o777).toBe(0o755);
    for (const p of ['one.txt', 'sub', 'sub/deep', 'sub/escape', '.']) expect((await lstat(join(co.root, p))).mtimeMs).toBe(co.mtime * 1000);
    expect(await readlink(join(co.root, 'sub', 'escape'))).toBe('../../../../etc/passwd');
  });

  test('checkout of a subdir, and .git kept when asked (whole repository only)', async () => {
    const sub = await checkoutGit({ remote: repo, ref: 'main', subdir: 'sub' }, { commit: commits[1]!, refName: 'refs/heads/main' }, join(base, 'co2'), { ...opts, keepGitDir: true });
    expect(sub.root).toBe(join(base, 'co2', 'tree', 'sub'));
    await expect(lstat(join(base, 'co2', 'tree', '.git'))).rejects.toThrow();
    const kept = await checkoutGit({ remote: repo, ref: 'v1' }, { commit: commits[0]!, refName: 'refs/tags/v1' }, join(base, 'co3'), { ...opts, keepGitDir: true });
    expect(await readFile(join(kept.root, 'one.txt'), 'utf8')).toBe('one\n');
    expect((await lstat(join(kept.root, '.git'))).isDirectory()).toBe(true);
    await expect(lstat(join(kept.root, '.git', 'FETCH_HEAD'))).rejects.toThrow();
    await expect(lstat(join(kept.root, 'sub'))).rejects.toThrow();
    expect(execFileSync('git', ['-C', kept.root, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim()).toBe(commits[0]);
  });

  test('a subdir that is missing is an error', async () => {
    await expect(checkoutGit({ remote: repo, subdir: 'nope' }, { commit: commits[1]! }, join(base, 'co4'), { ...opts, keepGitDir: false })).rejects.toThrow('no directory "nope"');
  });

  test('git errors carry no secrets', async () => {
    const err = await resolveGitCommit({ remote: `${join(base, 'absent-hunter22')}` }, { ...opts, shown: 'the-repo', secrets: ['hunter22'] }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^the-repo: cannot list its refs: git exited with 128/);
    expect((err as Error).message).not.toContain('hunter22');
  });
});
