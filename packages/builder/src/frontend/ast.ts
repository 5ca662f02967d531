/**
 * The low-level AST, shaped like BuildKit's `parser.Node` so that behaviour
 * (and the upstream fixtures) carry over one to one.
 */

/** 1-based physical line numbers, both ends inclusive. */
export interface SourceRange {
  start: number;
  end: number;
}

export interface Heredoc {
  /** Delimiter with quotes removed (`<<'EOF'` → `EOF`). */
  name: string;
  /**
   * Body exactly as read: every line keeps its own line ending, and leading
   * tabs are still present even for `<<-` (see `chomp`).
   */
  content: string;
  /** False when any part of the delimiter was quoted: the body is then not expanded. */
  expand: boolean;
  /** `<<-` form: leading tabs are stripped from body lines (and the terminator). */
  chomp: boolean;
  /** `3<<EOF` → 3. Absent when no descriptor was written. */
  fileDescriptor?: number;
}

export interface Node {
  /** Instruction keyword as written (root: ''), or one argument string. */
  value: string;
  /** Next argument in the instruction's chain. */
  next?: Node;
  /** Root: the instructions. ONBUILD's argument node: the wrapped instruction. */
  children: Node[];
  heredocs: Heredoc[];
  attributes: { json?: boolean };
  /** The logical line (continuations joined), as BuildKit's `Original`. */
  original: string;
  /** `--name=value` flags exactly as written (quotes removed). */
  flags: string[];
  startLine: number;
  endLine: number;
  /** Comment lines directly above the instruction, `#` and surrounding blanks removed. */
  prevComment: string[];
}

export interface ParseWarning {
  message: string;
  line: number;
}

export interface ParseDirectives {
  syntax?: string;
  escape?: string;
  check?: string;
}

export interface ParseResult {
  ast: Node;
  escapeToken: string;
  directives: ParseDirectives;
  warnings: ParseWarning[];
}

export function newNode(value: string, next?: Node): Node {
  const node: Node = {
    value,
    children: [],
    heredocs: [],
    attributes: {},
    original: '',
    flags: [],
    startLine: 0,
    endLine: 0,
    prevComment: [],
  };
  if (next !== undefined) node.next = next;
  return node;
}

/** Builds a `next` chain from a list of values; undefined for an empty list. */
export function chain(values: readonly string[]): Node | undefined {
  let head: Node | undefined;
  for (let i = values.length - 1; i >= 0; i--) head = newNode(values[i]!, head);
  return head;
}

/** The argument strings of an instruction node (BuildKit `nodeArgs`). */
export function nodeArgs(node: Node): string[] {
  const out: string[] = [];
  for (let n = node.next; n !== undefined; n = n.next) {
    if (n.children.length === 0) {
      out.push(n.value);
    } else if (n.children.length === 1) {
      // ONBUILD: the wrapped instruction's keyword, then its own arguments.
      const sub = n.children[0]!;
      out.push(sub.value, ...nodeArgs(sub));
    }
  }
  return out;
}
