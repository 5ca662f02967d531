// The compatibility corpus: test/compat/cases/<name>/ and test/compat/real-world/<name>/
// (Dockerfile, optional context/ and case.json; see docs in /tmp/compat-brief.md and the
// harness README in test/compat/harness/README.md).
import fs from 'node:fs';
import path from 'node:path';
import type { Listing } from './compare.js';

export interface CaseRun {
  /** argv replacing the image's CMD (the ENTRYPOINT stays), as `docker run IMAGE ARGS…`. */
  args?: string[];
  /** Exact expected stdout. */
  stdout: string;
}

export interface CaseSpec {
  description?: string;
  target?: string;
  buildArgs?: Record<string, string>;
  prepare?: string;
  run?: CaseRun;
  differences?: Listing[];
  slow?: boolean;
  /** Both builders are expected to fail (the case passes only as both-fail). */
  expectFailure?: boolean;
}

export interface CompatCase {
  /** Folder name. */
  name: string;
  /** "cases" or "real-world". */
  group: string;
  dir: string;
  spec: CaseSpec;
  /** Problems with case.json (the case then fails without building). */
  problems: string[];
}

export const CORPUS_GROUPS = ['cases', 'real-world'] as const;

const KNOWN_KEYS = new Set(['description', 'target', 'buildArgs', 'prepare', 'run', 'differences', 'slow', 'expectFailure']);

/** Reads and checks DIR/case.json (missing = {}). */
export function loadCase(dir: string): CompatCase {
  const abs = path.resolve(dir);
  const name = path.basename(abs);
  const group = path.basename(path.dirname(abs));
  const problems: string[] = [];
  let spec: CaseSpec = {};
  const file = path.join(abs, 'case.json');
  if (!fs.existsSync(path.join(abs, 'Dockerfile'))) problems.push('no Dockerfile');
  if (fs.existsSync(file)) {
    try {
      const raw: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('not a JSON object');
      spec = raw as CaseSpec;
      for (const k of Object.keys(spec)) if (!KNOWN_KEYS.has(k)) problems.push(`case.json: unknown key ${JSON.stringify(k)}`);
      const str = (k: keyof CaseSpec) => spec[k] !== undefined && typeof spec[k] !== 'string' && problems.push(`case.json: ${k} must be a string`);
      const bool = (k: keyof CaseSpec) => spec[k] !== undefined && typeof spec[k] !== 'boolean' && problems.push(`case.json: ${k} must be true or false`);
      str('description');
      str('target');
      str('prepare');
      bool('slow');
      bool('expectFailure');
      if (spec.buildArgs !== undefined) {
        if (typeof spec.buildArgs !== 'object' || Array.isArray(spec.buildArgs) || !spec.buildArgs) problems.push('case.json: buildArgs must be an object');
        else for (const [k, v] of Object.entries(spec.buildArgs)) if (typeof v !== 'string') problems.push(`case.json: buildArgs.${k} must be a string`);
      }
      if (spec.run !== undefined) {
        const r = spec.run as unknown as Record<string, unknown>;
        if (!r || typeof r !== 'object') problems.push('case.json: run must be an object');
        else {
          if (typeof r.stdout !== 'string') problems.push('case.json: run.stdout must be a string');
          if (r.args !== undefined && !(Array.isArray(r.args) && r.args.every((a) => typeof a === 'string'))) {
            problems.push('case.json: run.args must be an array of strings');
          }
        }
      }
      if (spec.differences !== undefined) {
        if (!Array.isArray(spec.differences)) problems.push('case.json: differences must be an array');
        else
          spec.differences.forEach((d, i) => {
            if (!d || typeof d.path !== 'string' || typeof d.why !== 'string') problems.push(`case.json: differences[${i}] needs "path" and "why" strings`);
            else if (d.unstable !== undefined && typeof d.unstable !== 'boolean') problems.push(`case.json: differences[${i}].unstable must be true or false`);
            else {
              const extra = Object.keys(d).filter((k) => !['path', 'why', 'unstable'].includes(k));
              if (extra.length) problems.push(`case.json: differences[${i}]: unknown key ${JSON.stringify(extra[0])}`);
            }
          });
      }
    } catch (e) {
      problems.push(`case.json: ${(e as Error).message}`);
      spec = {};
    }
  }
  return { name, group, dir: abs, spec, problems };
}

/** All cases of the corpus under ROOT/test/compat (cases first, then real-world), by name. */
export function listCases(repoRoot: string): CompatCase[] {
  const out: CompatCase[] = [];
  for (const g of CORPUS_GROUPS) {
    const base = path.join(repoRoot, 'test', 'compat', g);
    if (!fs.existsSync(base)) continue;
    for (const n of fs.readdirSync(base).sort()) {
      const d = path.join(base, n);
      if (fs.statSync(d).isDirectory()) out.push(loadCase(d));
    }
  }
  return out;
}

/**
 * Resolves command-line names to cases: a directory path, or a case name (looked up in
 * every group).
 */
export function selectCases(repoRoot: string, names: string[]): CompatCase[] {
  if (!names.length) return listCases(repoRoot);
  const all = listCases(repoRoot);
  return names.map((n) => {
    if (fs.existsSync(path.join(n, 'Dockerfile')) || (fs.existsSync(n) && fs.statSync(n).isDirectory())) return loadCase(n);
    const hit = all.find((c) => c.name === n || `${c.group}/${c.name}` === n);
    if (!hit) throw new Error(`no such case: ${n} (looked in test/compat/${CORPUS_GROUPS.join(', test/compat/')})`);
    return hit;
  });
}

// ------------------------------------------------------------- base image references

/** Joins continuation lines (backslash or the escape directive's character at the end). */
function logicalLines(dockerfile: string): string[] {
  const esc = /^#\s*escape\s*=\s*`/im.test(dockerfile.split('\n').slice(0, 5).join('\n')) ? '`' : '\\';
  const out: string[] = [];
  let cur = '';
  for (const raw of dockerfile.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (!cur && /^\s*#/.test(line)) continue;
    if (line.trimEnd().endsWith(esc)) {
      cur += line.trimEnd().slice(0, -1) + ' ';
      continue;
    }
    out.push(cur + line);
    cur = '';
  }
  if (cur) out.push(cur);
  return out;
}

function substitute(s: string, vars: Map<string, string>): string {
  const re = /\$\{([A-Za-z_]\w*)(?:(:?[-+])([^}]*))?\}|\$([A-Za-z_]\w*)/g;
  return s.replace(re, (m: string, a: string | undefined, op: string | undefined, arg: string | undefined, b: string | undefined) => {
    if (b !== undefined) return vars.get(b) ?? m;
    const v = vars.get(a!);
    switch (op) {
      case ':-':
        return v ? v : (arg ?? '');
      case '-':
        return v !== undefined ? v : (arg ?? '');
      case ':+':
        return v ? (arg ?? '') : '';
      case '+':
        return v !== undefined ? (arg ?? '') : '';
      default:
        return v ?? m;
    }
  });
}

/**
 * The images a Dockerfile pulls (FROM, COPY --from, RUN --mount=…from=), with global ARG
 * defaults and buildArgs substituted; stage names, numeric indexes and scratch left out.
 * An entry still holding "$" could not be resolved.
 */
export function baseImageRefs(dockerfile: string, buildArgs: Record<string, string> = {}): string[] {
  const vars = new Map<string, string>();
  const stages = new Set<string>();
  const refs = new Set<string>();
  let seenFrom = false;
  const add = (ref: string) => {
    const r = substitute(ref, vars);
    if (!r || r === 'scratch' || stages.has(r.toLowerCase()) || /^\d+$/.test(r)) return;
    refs.add(r);
  };
  for (const line of logicalLines(dockerfile)) {
    const m = /^\s*(\w+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const ins = m[1]!.toUpperCase();
    const rest = m[2]!;
    if (ins === 'ARG' && !seenFrom) {
      for (const tok of rest.trim().split(/\s+/)) {
        const [k, ...v] = tok.split('=');
        if (!k) continue;
        const val = buildArgs[k] ?? (v.length ? v.join('=').replace(/^"(.*)"$/, '$1') : undefined);
        if (val !== undefined) vars.set(k, val);
      }
    } else if (ins === 'FROM') {
      seenFrom = true;
      const toks = rest.trim().split(/\s+/).filter((t) => !t.startsWith('--'));
      if (toks[0]) add(toks[0]);
      if (toks[1]?.toLowerCase() === 'as' && toks[2]) stages.add(toks[2].toLowerCase());
    } else if (ins === 'COPY' || ins === 'ADD') {
      for (const f of rest.matchAll(/--from=(\S+)/g)) add(f[1]!);
    } else if (ins === 'RUN') {
      for (const mnt of rest.matchAll(/--mount=(\S+)/g)) {
        const from = /(?:^|,)from=([^,\s]+)/.exec(mnt[1]!);
        if (from) add(from[1]!);
      }
    }
  }
  return [...refs].sort();
}

/** repository and tag-or-digest of a Docker Hub reference as the loopback mirror serves it, or undefined for other registries. */
export function mirrorRef(ref: string): { repo: string; reference: string } | undefined {
  let r = ref.replace(/^(docker\.io|index\.docker\.io|registry-1\.docker\.io)\//, '');
  const first = r.split('/')[0]!;
  if (r.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) return undefined;
  let reference = 'latest';
  const at = r.indexOf('@');
  if (at >= 0) {
    reference = r.slice(at + 1);
    r = r.slice(0, at);
  } else {
    const colon = r.lastIndexOf(':');
    if (colon > r.lastIndexOf('/')) {
      reference = r.slice(colon + 1);
      r = r.slice(0, colon);
    }
  }
  if (!r.includes('/')) r = `library/${r}`;
  return { repo: r.toLowerCase(), reference };
}
