/**
 * `COPY/ADD --chmod=…`: an octal mode, or (Dockerfile 1.14+) a symbolic one
 * as chmod(1) takes it: comma-separated clauses `[ugoa]*([-+=]([rwxXst]*|[ugo]))+`,
 * e.g. `u+x,g-w,o=r`, `a+rX`, `go=u-w`, `+x`.
 *
 * BuildKit (frontend/dockerfile/dockerfile2llb) first reads the value as an
 * unsigned octal number (at most 07777); anything else goes through BSD
 * setmode(3) semantics (tonistiigi/dchapes-mode) and is applied to the mode
 * of each copied entry, files and directories alike: `X` adds execute when the
 * entry is a directory or already has an execute bit. A clause without `ugoa`
 * means `a` limited by the umask, as chmod(1) says.
 */

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_ISVTX = 0o1000;
const RWXU = 0o700;
const RWXG = 0o070;
const RWXO = 0o007;
const STANDARD = S_ISUID | S_ISGID | RWXU | RWXG | RWXO;
const READ = 0o444;
const WRITE = 0o222;
const EXEC = 0o111;

/** The umask clauses without `ugoa` are limited by (buildkitd's usual 022). */
export const DEFAULT_CHMOD_UMASK = 0o022;

type BitOp = { op: '+' | '-' | 'X'; bits: number };
type CopyOp = { op: 'u' | 'g' | 'o'; bits: number; set: boolean; clear: boolean; toU: boolean; toG: boolean; toO: boolean };
type Op = BitOp | CopyOp;

export type ChmodSpec =
  | { readonly kind: 'octal'; readonly text: string; readonly mode: number }
  | { readonly kind: 'symbolic'; readonly text: string; readonly ops: readonly Op[] };

export class ChmodError extends Error {}

/** Parses a --chmod value; throws ChmodError with BuildKit's wording for a bad one. */
export function parseChmod(value: string, umask = DEFAULT_CHMOD_UMASK): ChmodSpec {
  const nonOctal = () => new ChmodError(`invalid chmod parameter: '${value}'. it should be octal string and between 0 and 07777`);
  if (/^[0-7]+$/.test(value)) {
    const mode = parseInt(value, 8);
    if (mode > 0o7777) throw nonOctal();
    return { kind: 'octal', text: value, mode };
  }
  // A value that looks numeric but is not octal gets the octal message.
  if (/^[0-9]/.test(value)) throw nonOctal();
  return { kind: 'symbolic', text: value, ops: parseSymbolic(value, umask) };
}

/** The permission bits (mode & 07777) of an entry after --chmod; `mode` is the source entry's mode. */
export function applyChmod(spec: ChmodSpec | number, mode: number, isDir: boolean): number {
  if (typeof spec === 'number') return spec & 0o7777;
  if (spec.kind === 'octal') return spec.mode;
  const original = mode & 0o7777;
  let m = original;
  for (const op of spec.ops) {
    switch (op.op) {
      case '+':
        m |= op.bits;
        break;
      case '-':
        m &= ~op.bits;
        break;
      case 'X':
        if ((original & EXEC) !== 0 || isDir) m |= op.bits;
        break;
      default: {
        const value = op.op === 'u' ? (m & RWXU) >> 6 : op.op === 'g' ? (m & RWXG) >> 3 : m & RWXO;
        if (op.clear) {
          const clr = op.set ? RWXO : value;
          if (op.toU) m &= ~((clr << 6) & op.bits);
          if (op.toG) m &= ~((clr << 3) & op.bits);
          if (op.toO) m &= ~(clr & op.bits);
        }
        if (op.set) {
          if (op.toU) m |= (value << 6) & op.bits;
          if (op.toG) m |= (value << 3) & op.bits;
          if (op.toO) m |= value & op.bits;
        }
      }
    }
  }
  return m & 0o7777;
}

function parseSymbolic(text: string, umask: number): Op[] {
  const bad = () => new ChmodError(`invalid chmod parameter: '${text}': invalid syntax`);
  if (text === '') throw bad();
  const mask = ~umask & 0o7777;
  const ops: Op[] = [];
  const add = (op: '+' | '-' | '=' | 'X', who: number, perm: number) => {
    let o: '+' | '-' | 'X' = op === '=' ? '+' : op;
    if (op === '=') {
      // `=` clears the classes named (all of them without ugoa), then sets.
      ops.push({ op: '-', bits: who !== 0 ? who : STANDARD });
      o = '+';
    }
    ops.push({ op: o, bits: who !== 0 ? who & perm : mask & perm });
  };
  const addCopy = (from: 'u' | 'g' | 'o', who: number, op: '+' | '-' | '=') => {
    const all = who === 0;
    ops.push({
      op: from,
      bits: all ? mask : 0o7777,
      set: op !== '-',
      clear: op !== '+',
      toU: all || (who & 0o400) !== 0,
      toG: all || (who & 0o040) !== 0,
      toO: all || (who & 0o004) !== 0,
    });
  };

  let i = 0;
  let equalDone = false;
  for (;;) {
    let who = 0;
    for (; i < text.length; i++) {
      const c = text[i];
      if (c === 'a') who |= STANDARD;
      else if (c === 'u') who |= S_ISUID | RWXU;
      else if (c === 'g') who |= S_ISGID | RWXG;
      else if (c === 'o') who |= RWXO;
      else break;
    }
    // One or more operations for this `who`.
    for (;;) {
      const op = text[i++];
      if (op !== '+' && op !== '-' && op !== '=') throw bad();
      if (op === '=') equalDone = false;
      who &= ~S_ISVTX;
      let perm = 0;
      let permX = 0;
      for (;; i++) {
        const c = text[i];
        if (c === 'r') perm |= READ;
        else if (c === 'w') perm |= WRITE;
        else if (c === 'x') perm |= EXEC;
        // chmod(1): X with + and = (BSD setmode); meaningless with -.
        else if (c === 'X') {
          if (op !== '-') permX = EXEC;
        } else if (c === 's') {
          // set-id bits are ignored for "other" alone
          if (who === 0 || (who & ~RWXO) !== 0) perm |= S_ISUID | S_ISGID;
        } else if (c === 't') {
          if (who === 0 || (who & ~RWXO) !== 0) {
            who |= S_ISVTX;
            perm |= S_ISVTX;
          }
        } else if (c === 'u' || c === 'g' || c === 'o') {
          if (perm !== 0) {
            add(op, who, perm);
            perm = 0;
          }
          if (op === '=') equalDone = true;
          if (permX !== 0) {
            add('X', who, permX);
            permX = 0;
          }
          addCopy(c, who, op);
        } else {
          if (perm !== 0 || (op === '=' && !equalDone)) {
            if (op === '=') equalDone = true;
            add(op, who, perm);
            perm = 0;
          }
          if (permX !== 0) add('X', who, permX);
          break;
        }
      }
      if (i >= text.length) return ops;
      if (text[i] === ',') {
        i++;
        if (i >= text.length) throw bad();
        break;
      }
    }
  }
}
