/**
 * Properties of the Dockerfile frontend over generated, mostly hostile input,
 * run by fuzz-worker.ts (in a worker thread, so a hang or a memory blow-up
 * can be stopped and reported instead of taking the test run down).
 *
 * Each property takes one generated case and throws if it misbehaves. The
 * only exceptions the frontend may let out are its typed errors, and a
 * DockerfileParseError always names a line that exists in the file.
 */
import * as fc from 'fast-check';
import {
  DockerfileParseError,
  ShellExpansionError,
  ShellLex,
  parseInstructions,
  type Command,
  type DockerfileInstructions,
} from '../../src/frontend/index.js';
import { MAX_EXPANDED_CHARS } from '../../src/frontend/shell-lex.js';

// ---------------------------------------------------------------- pieces

const names = fc.constantFrom('a', 'b', 'FOO', 'foo_bar', 'X1', '_', 'HOME', 'PATH', 'v');
const smallText = fc.string({ maxLength: 12, unit: fc.constantFrom('a', 'b', ' ', '/', '.', '-', '=', ',', ':', 'é', '\t') });

/** Glob patterns as `#`, `%` and `/` take them, escapes and wildcards included. */
const pattern = fc.string({ maxLength: 8, unit: fc.constantFrom('a', 'b', '*', '?', '\\*', '\\?', '\\\\', '/', '\\/', '\\}', '\\x', '.', '[', '(') });

/** One word part: plain text, quotes, escapes, or a substitution (possibly nested). */
const wordPart: fc.Memo<string> = fc.memo((depth) => {
  const leaf = fc.oneof(
    smallText,
    names.map((n) => `$${n}`),
    names.map((n) => `\${${n}}`),
    fc.constantFrom('$', '${', '}', '$$', '$1', '$@', '${}', '${:}', '${a', '"', "'", '\\', '`', '\\$', '\\"', '<<', '<<EOF', '#', '\n', '\r', '\u0000', '\ufeff'),
    smallText.map((t) => `'${t}'`),
    smallText.map((t) => `"${t}"`),
  );
  if (depth <= 1) return leaf;
  const inner = wordPart(depth - 1);
  const op = fc.constantFrom(':-', '-', ':+', '+', ':?', '?', '#', '##', '%', '%%', ':', ':#', '!');
  return fc.oneof(
    { arbitrary: leaf, weight: 4 },
    fc.tuple(names, op, fc.array(inner, { maxLength: 3 })).map(([n, o, w]) => `\${${n}${o}${w.join('')}}`),
    fc.tuple(names, fc.constantFrom('#', '##', '%', '%%'), pattern).map(([n, o, p]) => `\${${n}${o}${p}}`),
    fc.tuple(names, fc.constantFrom('/', '//'), pattern, smallText).map(([n, o, p, r]) => `\${${n}${o}${p}/${r}}`),
    fc.array(inner, { maxLength: 3 }).map((w) => `"${w.join('')}"`),
  );
});

export const word = fc.array(wordPart(4), { maxLength: 6 }).map((p) => p.join(''));

/** `${a:-${b:-…x…}}` nested `depth` deep, optionally left unterminated. */
export const deepNesting = fc.tuple(fc.integer({ min: 1, max: 400 }), fc.boolean(), fc.constantFrom(':-', '-', ':+', ':?', '#', '/x/')).map(([depth, closed, op]) => {
  return `\${a${op}`.repeat(depth) + 'x' + (closed ? '}'.repeat(depth) : '');
});

export const env = fc.dictionary(names, fc.oneof(smallText, word, fc.constantFrom('', 'a'.repeat(300), 'ab'.repeat(200), '${a}'))).map((e) => new Map(Object.entries(e)));

/** A word that stays on its line and in one piece: substitutions of any depth, no blanks, quotes or newlines outside them. */
const solidPart: fc.Memo<string> = fc.memo((depth) => {
  const leaf = fc.oneof(
    fc.string({ minLength: 1, maxLength: 8, unit: fc.constantFrom('a', 'b', '/', '.', '-', ':', '_', '1', 'é') }),
    names.map((n) => `$${n}`),
    names.map((n) => `\${${n}}`),
  );
  if (depth <= 1) return leaf;
  const inner = fc.array(solidPart(depth - 1), { maxLength: 3 }).map((w) => w.join(''));
  return fc.oneof(
    { arbitrary: leaf, weight: 3 },
    fc.tuple(names, fc.constantFrom(':-', '-', ':+', '+', ':?'), inner).map(([n, o, w]) => `\${${n}${o}${w}}`),
    fc.tuple(names, fc.constantFrom('#', '##', '%', '%%'), pattern.filter((x) => !/[\s}]/.test(x))).map(([n, o, p]) => `\${${n}${o}${p}}`),
    fc.tuple(names, fc.constantFrom('/', '//'), fc.constantFrom('a', '*', 'b?', '\\*'), fc.constantFrom('', 'x', '-')).map(([n, o, p, r]) => `\${${n}${o}${p}/${r}}`),
  );
});
const solid = fc.array(solidPart(4), { minLength: 1, maxLength: 4 }).map((p) => p.join(''));
/** Any word, kept on one line. */
const inline = word.map((w) => w.replace(/[\r\n]/g, ' '));

const flag = fc.oneof(
  fc.constantFrom(
    '--from=build', '--from=0', '--from=$X', '--chown=1000:1000', '--chown=${U}', '--chmod=755', '--chmod=u+x', '--link', '--link=false', '--parents',
    '--exclude=*.log', '--platform=linux/amd64', '--platform=$BUILDPLATFORM', '--mount=type=cache,target=/c', '--mount=type=bogus',
    '--network=none', '--network=weird', '--security=insecure', '--interval=5s', '--timeout=-1s', '--retries=x', '--checksum=sha256:00',
    '--keep-git-dir', '--unknown', '--', '--=', '--"a b"', "--'x", '--a\\',
  ),
  inline.map((w) => `--${w}`),
);

const keyword = fc.constantFrom(
  'FROM', 'RUN', 'CMD', 'LABEL', 'MAINTAINER', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR',
  'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL', 'from', 'Run', 'copy', 'FRMO', 'ONBUILD ONBUILD', 'ONBUILD FROM', 'HEALTHCHECK CMD', 'HEALTHCHECK NONE',
);

const jsonArgs = fc.array(fc.oneof(word, solid, fc.integer().map(String)), { maxLength: 4 }).map((a) => JSON.stringify(a));

const copyFlags = fc.subarray(['--from=build', '--chown=${U:-1000}:0', '--chmod=0755', '--link', '--exclude=*.tmp', '--parents']);

/** Instructions of the right shape, with hostile words inside. */
const wellFormed = fc.oneof(
  fc.tuple(solid, fc.option(names), fc.boolean()).map(([img, n, plat]) => `FROM ${plat ? '--platform=$BUILDPLATFORM ' : ''}${img}${n !== null ? ` AS ${n.toLowerCase()}` : ''}`),
  fc.array(fc.tuple(names, solid), { minLength: 1, maxLength: 3 }).map((kv) => `ENV ${kv.map(([k, v]) => `${k}=${v}`).join(' ')}`),
  fc.tuple(names, inline).map(([k, v]) => `ENV ${k} ${v}`),
  fc.tuple(names, fc.option(solid)).map(([k, v]) => `ARG ${k}${v !== null ? `=${v}` : ''}`),
  fc.tuple(names, solid).map(([k, v]) => `LABEL ${k}="${v}"`),
  fc.tuple(copyFlags, fc.array(solid, { minLength: 1, maxLength: 3 }), solid, fc.constantFrom('COPY', 'ADD')).map(([f, src, d, k]) => `${k} ${[...f.filter((x) => k === 'COPY' || !/from|parents/.test(x)), ...src].join(' ')} /${d}/`),
  fc.tuple(fc.constantFrom('RUN', 'CMD', 'ENTRYPOINT', 'RUN --network=none', 'RUN --mount=type=cache,target=/c'), inline).map(([k, c]) => `${k} ${c || 'true'}`),
  fc.tuple(fc.constantFrom('RUN', 'CMD', 'ENTRYPOINT', 'SHELL'), jsonArgs).map(([k, j]) => `${k} ${j === '[]' ? '["sh"]' : j}`),
  fc.tuple(fc.constantFrom('WORKDIR', 'USER', 'STOPSIGNAL', 'MAINTAINER'), solid).map(([k, w]) => `${k} ${w}`),
  fc.array(solid, { minLength: 1, maxLength: 3 }).map((p) => `EXPOSE ${p.join(' ')}`),
  fc.array(solid, { minLength: 1, maxLength: 3 }).map((p) => `VOLUME ${p.join(' ')}`),
  fc.tuple(fc.constantFrom('', '--interval=5s ', '--retries=3 --timeout=1s '), inline).map(([f, c]) => `HEALTHCHECK ${f}CMD ${c || 'true'}`),
  fc.tuple(fc.constantFrom('RUN', 'ENV a=b', 'COPY a /b', 'LABEL x=y'), inline).map(([k, c]) => `ONBUILD ${k} ${c}`),
);

/** Anything goes: random keywords, flags and words. */
const anyInstruction = fc.oneof(
  fc.tuple(keyword, fc.array(flag, { maxLength: 2 }), fc.array(word, { maxLength: 4 })).map(([k, f, a]) => [k, ...f, ...a].join(' ')),
  fc.tuple(keyword, jsonArgs).map(([k, j]) => `${k} ${j}`),
);

/** A RUN/COPY with heredoc markers and bodies, terminated or not. */
const heredocBlock = fc
  .tuple(
    fc.constantFrom('RUN', 'COPY', 'ADD', 'RUN 3', 'ONBUILD RUN', 'RUN cat', 'RUN python3'),
    fc.array(fc.tuple(fc.constantFrom('EOF', 'END', 'a', 'E"O"F', "'X'", '"Y"', '-EOF', '-"T"'), fc.array(inline, { maxLength: 3 }), fc.oneof({ arbitrary: fc.constant(true), weight: 9 }, fc.constant(false)), fc.boolean()), { minLength: 1, maxLength: 3 }),
    fc.option(solid),
  )
  .map(([kw, docs, dest]) => {
    const markers = docs.map(([n]) => `<<${n}`).join(' ');
    const bodies = docs.map(([n, body, terminated, tabs]) => {
      const name = n.replace(/^-/, '').replace(/["']/g, '');
      const lines = body.map((b) => (tabs ? `\t${b}` : b));
      return [...lines, ...(terminated ? [tabs && n.startsWith('-') ? `\t${name}` : name] : [])].join('\n');
    });
    const target = kw === 'COPY' || kw === 'ADD' ? ` /${dest ?? 'dst'}/` : '';
    return [`${kw} ${markers}${target}`, ...bodies].join('\n');
  });

/** An instruction broken over lines with the escape token, comments and blank lines inside. */
const continued = (esc: string) =>
  fc.tuple(wellFormed, fc.array(fc.tuple(solid, fc.constantFrom('', '', '', '# inner comment', '   ', `  ${esc}`)), { maxLength: 4 })).map(([first, rest]) =>
    [first, ...rest.flatMap(([w, between]) => (between === '' ? [w] : [between, w]))].join(` ${esc}\n`),
  );

const garbage = fc.oneof(
  fc.string({ maxLength: 40, unit: 'binary' }),
  fc.string({ maxLength: 40, unit: 'grapheme' }),
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('latin1')),
  fc.constantFrom('\u0000\u0000', '\r', '\r\n', '\\', '`', '\\\\', '# escape=`', '# syntax=x', '# check=skip=all', '\ufeffFROM x', '\t\t', '\u2028', '\ud800'),
);

const comment = fc.oneof(smallText.map((t) => `# ${t}`), fc.constantFrom('#', '  # indented', '#!/bin/sh', '# escape=\\', '#escape=`'));

/** A whole Dockerfile: optional directives, usually a FROM, then a mix of everything above (mostly well formed). */
export const dockerfile = fc
  .tuple(
    fc.constantFrom('\\', '`'),
    fc.subarray(['# syntax=docker/dockerfile:1', '# check=error=true']),
    fc.oneof({ arbitrary: fc.constantFrom('', 'set'), weight: 9 }, fc.constantFrom('# escape=x', '# escape=\\\n# escape=`')),
    fc.constantFrom('\n', '\n', '\r\n'),
    fc.oneof({ arbitrary: fc.constant(true), weight: 4 }, fc.constant(false)),
  )
  .chain(([esc, directives, escapeLine, eol, from]) =>
    fc
      .array(
        fc.oneof(
          { arbitrary: wellFormed, weight: 30 },
          { arbitrary: heredocBlock, weight: 4 },
          { arbitrary: continued(esc), weight: 4 },
          { arbitrary: comment, weight: 3 },
          { arbitrary: fc.constantFrom('', '   ', '\t'), weight: 2 },
          { arbitrary: anyInstruction, weight: 1 },
          { arbitrary: garbage, weight: 1 },
          { arbitrary: deepNesting.map((d) => `RUN echo ${d}`), weight: 1 },
        ),
        { maxLength: 20 },
      )
      .map((lines) => {
        const escape = escapeLine === 'set' ? [`# escape=${esc}`] : escapeLine === '' ? [] : [escapeLine];
        return [...escape, ...directives, ...(from ? ['FROM busybox AS base'] : []), ...lines].join(eol);
      }),
  );

/** Inputs at and past every size bound, one generator per kind (each is run). */
export const hugeDockerfiles: fc.Arbitrary<string>[] = [
  // Physical lines around BuildKit's 64 KiB limit, in bytes (multibyte characters count more).
  fc.tuple(fc.integer({ min: 65_530, max: 65_540 }), fc.constantFrom('a', 'é', '€')).map(([n, ch]) => `FROM x\nRUN ${ch.repeat(Math.floor(n / Buffer.byteLength(ch)))}\n`),
  // One instruction continued over very many lines.
  fc.integer({ min: 1_000, max: 40_000 }).map((n) => `FROM x\nRUN ${'echo aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa \\\n'.repeat(n)}true\n`),
  // Very many instructions, and a file over the size limit.
  fc.integer({ min: 10_000, max: 400_000 }).map((n) => `FROM x\n${'ENV a=b\n'.repeat(n)}`),
  fc.constant(`FROM x\n${'# padding padding padding padding padding padding\n'.repeat(360_000)}`),
  // Deep nesting of every kind.
  fc.integer({ min: 1_000, max: 20_000 }).map((n) => `FROM x\nENV a=${'${a:-'.repeat(n)}x${'}'.repeat(n)}\n`),
  fc.integer({ min: 20, max: 8_000 }).map((n) => `FROM x\n${'ONBUILD '.repeat(n)}RUN x\n`),
  fc.integer({ min: 1_000, max: 30_000 }).map((n) => `FROM x\nCMD ${'['.repeat(n)}"x"${']'.repeat(n)}\n`),
  fc.integer({ min: 1_000, max: 60_000 }).map((n) => `FROM x\nENV a=${'"'.repeat(n)}\n`),
  // Many heredocs on one line, and a huge heredoc body.
  fc.integer({ min: 100, max: 5_000 }).map((n) => `FROM x\nRUN ${'<<E '.repeat(n)}\n${'E\n'.repeat(n)}`),
  fc.integer({ min: 10_000, max: 300_000 }).map((n) => `FROM x\nRUN <<EOF\n${'line of a big script $x ${y:-z}\n'.repeat(n)}EOF\n`),
  // Wildcard patterns that make a backtracking matcher take exponential time on a long value (`a` is 100 000 characters).
  fc.integer({ min: 2, max: 40 }).map((k) => `FROM x\nENV b=\${a#${'*a'.repeat(k)}*b} c=\${a//${'*a'.repeat(k)}*b/x} d=\${a%%${'a*'.repeat(k)}b*}\n`),
  // A heredoc body over the expansion limit.
  fc.integer({ min: 1, max: 3 }).map((mb) => `FROM x\nCOPY <<EOF /big\n${'$a '.repeat(mb * 400_000)}\nEOF\n`),
  // Many stages.
  fc.integer({ min: 1_000, max: 50_000 }).map((n) => Array.from({ length: n }, (_, i) => `FROM x AS s${i}`).join('\n')),
];

// ------------------------------------------------------------ properties

/** Number of physical lines as the parser counts them (split on \n). */
export function lineCount(text: string): number {
  if (text === '') return 0;
  let n = 1;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) if (i < text.length - 1) n++;
  return n;
}

export class PropertyViolation extends Error {}

/** Parses; a parse error must be typed and carry a line of this file. */
function parseChecked(text: string): DockerfileInstructions | undefined {
  const lines = lineCount(text);
  try {
    const df = parseInstructions(text, { file: 'Dockerfile' });
    for (const st of df.stages) {
      for (const c of [st, ...st.commands]) {
        if (!(c.range.start >= 1 && c.range.start <= c.range.end && c.range.end <= lines)) {
          throw new PropertyViolation(`range ${c.range.start}-${c.range.end} outside 1-${lines}: ${c.original.slice(0, 80)}`);
        }
      }
    }
    return df;
  } catch (err) {
    if (err instanceof PropertyViolation) throw err;
    if (!(err instanceof DockerfileParseError)) throw new PropertyViolation(`untyped error from the parser: ${describe(err)}`);
    if (err.file !== 'Dockerfile') throw new PropertyViolation(`parse error without the file name: ${err.message}`);
    const ok = err.line === undefined ? lines === 0 : Number.isInteger(err.line) && err.line >= 1 && err.line <= Math.max(lines, 1);
    if (!ok) throw new PropertyViolation(`parse error with line ${err.line} in a file of ${lines} lines: ${err.message.slice(0, 200)}`);
    if (err.message.length > 2_000) throw new PropertyViolation(`parse error message of ${err.message.length} characters`);
    return undefined;
  }
}

/** Expands one word as the engine would; only ShellExpansionError may come out, and the result is bounded. */
function expandChecked(lex: ShellLex, w: string, e: ReadonlyMap<string, string>, split: boolean): void {
  try {
    const r = lex.process(w, e);
    if (r.result.length > MAX_EXPANDED_CHARS) throw new PropertyViolation(`expansion of ${r.result.length} characters`);
    if (split && r.words.some((x) => x.length === 0 && !/["']/.test(w))) throw new PropertyViolation(`empty word from unquoted ${JSON.stringify(w)}`);
  } catch (err) {
    if (err instanceof PropertyViolation) throw err;
    if (!(err instanceof ShellExpansionError)) throw new PropertyViolation(`untyped error from expansion of ${JSON.stringify(w.slice(0, 100))}: ${describe(err)}`);
    if (err.message.length > 2_000) throw new PropertyViolation(`expansion error message of ${err.message.length} characters`);
  }
}

/** The words of a command that the engine expands. */
function expandable(c: Command): string[] {
  switch (c.kind) {
    case 'ARG': return c.args.flatMap((a) => (a.value !== undefined ? [a.value] : []));
    case 'ENV': case 'LABEL': return c.pairs.flatMap((p) => [p.key, p.value]);
    case 'WORKDIR': return [c.path];
    case 'USER': return [c.user];
    case 'EXPOSE': return c.ports;
    case 'VOLUME': return c.volumes;
    case 'STOPSIGNAL': return [c.signal];
    case 'COPY': case 'ADD': return [...c.sources, c.dest, ...(c.chown !== undefined ? [c.chown] : []), ...(c.chmod !== undefined ? [c.chmod] : []), ...(c.from !== undefined ? [c.from] : []), ...c.heredocs.map((h) => h.content)];
    case 'RUN': return c.heredocs.map((h) => h.content);
    default: return [];
  }
}

/** Property: parse, then expand every expandable word of every command (the engine's path through the frontend). */
export function parseAndExpand([text, e]: [string, Map<string, string>]): void {
  const df = parseChecked(text);
  if (df === undefined) return;
  const lex = new ShellLex(df.escapeToken);
  const raw = new ShellLex(df.escapeToken, { rawQuotes: true, rawEscapes: true });
  for (const st of df.stages) {
    expandChecked(lex, st.baseName, e, false);
    for (const c of st.commands) for (const w of expandable(c)) expandChecked(c.kind === 'RUN' ? raw : lex, w, e, false);
  }
  for (const a of df.metaArgs) for (const w of expandable(a)) expandChecked(lex, w, e, false);
}

/** Property: one word through every ShellLex mode. */
export function expandWord([w, e, esc]: [string, Map<string, string>, string]): void {
  for (const opts of [{}, { rawQuotes: true, rawEscapes: true }, { skipUnsetEnv: true }, { skipProcessQuotes: true }]) {
    const lex = new ShellLex(esc, opts);
    expandChecked(lex, w, e, false);
    expandChecked(lex, w, e, true);
  }
}

/** Property: huge inputs are parsed (and their words expanded) or refused with a typed error. */
const HUGE_ENV = new Map([['a', 'a'.repeat(100_000)]]);
export function parseHuge(text: string): void {
  parseAndExpand([text, HUGE_ENV]);
}

// ---------------------------------- pattern operations vs a reference

/**
 * The backtracking RegExp implementation the automaton replaced, kept as the
 * reference: on tiny inputs it is fast, and it is what Go's regexp (used by
 * BuildKit) computes for these patterns.
 */
function referenceRegex(p: string, greedy: boolean, anchored: boolean): RegExp {
  const chars = Array.from(p);
  let out = anchored ? '^' : '';
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '*') out += greedy ? '.*' : '.*?';
    else if (ch === '?') out += '.';
    else if (ch === '\\') {
      const n = chars[i + 1];
      if (n === '}' || n === '/') continue;
      if (n !== '*' && n !== '?' && n !== '\\') throw new Error('invalid escape');
      out += '\\' + n;
      i++;
    } else if ('[]{}.+()|^$'.includes(ch)) out += '\\' + ch;
    else out += ch;
  }
  return new RegExp(out, 'u');
}

const rev = (s: string): string => Array.from(s).reverse().join('');

function reversePattern(p: string): string {
  const chars = Array.from(p);
  const out: string[] = new Array<string>(chars.length);
  const last = chars.length - 1;
  for (let i = 0; i <= last; ) {
    if (chars[i] === '\\' && i !== last) {
      out[last - i - 1] = '\\';
      out[last - i] = chars[i + 1]!;
      i += 2;
    } else {
      out[last - i] = chars[i]!;
      i++;
    }
  }
  return out.join('');
}

function refTrimPrefix(p: string, v: string, greedy: boolean): string {
  const m = referenceRegex(p, greedy, true).exec(v);
  return m ? v.slice(m.index + m[0].length) : v;
}

function refReplace(v: string, p: string, rep: string, all: boolean): string {
  const re = new RegExp(referenceRegex(p, true, false).source, 'gu');
  let out = '';
  let copied = 0;
  let prevEnd = -1;
  for (let m = re.exec(v); m !== null; m = re.exec(v)) {
    const start = m.index;
    const end = start + m[0].length;
    if (m[0].length === 0) {
      const cp = v.codePointAt(end);
      re.lastIndex = end + (cp !== undefined && cp > 0xffff ? 2 : 1);
      if (start === prevEnd) continue;
    }
    out += v.slice(copied, start) + rep;
    copied = end;
    prevEnd = end;
    if (!all) break;
  }
  return out + v.slice(copied);
}

export const patternCase = fc.tuple(
  fc.string({ maxLength: 6, unit: fc.constantFrom('a', 'b', '*', '?', '\\*', '\\?', '\\\\', '😀') }),
  fc.string({ maxLength: 12, unit: fc.constantFrom('a', 'b', '*', '?', '\\', '😀') }),
);

/** Property: `#`, `##`, `%`, `%%`, `/` and `//` agree with the reference. */
export function patternsAgree([p, v]: [string, string]): void {
  const lex = new ShellLex('\\');
  const env = new Map([['v', v]]);
  // In a ${} word the pattern's own backslashes must be escaped once more to survive quote removal: only `#`/`%` keep escapes.
  const cases: Array<[string, string]> = [
    [`\${v#${p}}`, refTrimPrefix(p, v, false)],
    [`\${v##${p}}`, refTrimPrefix(p, v, true)],
    [`\${v%${p}}`, rev(refTrimPrefix(reversePattern(p), rev(v), false))],
    [`\${v%%${p}}`, rev(refTrimPrefix(reversePattern(p), rev(v), true))],
    [`\${v/${p}/X}`, refReplace(v, p, 'X', false)],
    [`\${v//${p}/X}`, refReplace(v, p, 'X', true)],
  ];
  for (const [w, want] of cases) {
    // `${v/` + '' + `/X}` reads as `${v//X}`: a different operation.
    if (p === '' && w === '${v//X}') continue;
    const got = lex.processWord(w, env);
    if (got !== want) throw new PropertyViolation(`${w} with v=${JSON.stringify(v)}: got ${JSON.stringify(got)}, reference ${JSON.stringify(want)}`);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.constructor.name}: ${err.message.slice(0, 300)}` : String(err);
}

interface PropertySpec {
  /** Each is run `runs(total)` times. */
  arbitraries: fc.Arbitrary<unknown>[];
  check: (value: never) => void;
  /** Time bound of one case. */
  caseMs: number;
  runs: (total: number) => number;
}

export const PROPERTIES = {
  /** Generated Dockerfiles through parser, typed layer and word expansion. */
  dockerfile: { arbitraries: [fc.tuple(dockerfile, env)], check: parseAndExpand, caseMs: 5_000, runs: (n) => n },
  /** Generated words through ShellLex in every mode. */
  words: { arbitraries: [fc.tuple(fc.oneof(word, deepNesting), env, fc.constantFrom('\\', '`'))], check: expandWord, caseMs: 5_000, runs: (n) => n },
  /** Pattern removal and replacement against the RegExp reference. */
  patterns: { arbitraries: [patternCase], check: patternsAgree, caseMs: 5_000, runs: (n) => n },
  /** Inputs at and past every size and nesting bound: every kind, a few times each. */
  huge: { arbitraries: hugeDockerfiles, check: parseHuge, caseMs: 20_000, runs: (n) => Math.max(1, Math.round(n / 100)) },
} satisfies Record<string, PropertySpec>;

export type PropertyName = keyof typeof PROPERTIES;
