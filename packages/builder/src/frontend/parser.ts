import { newNode, type Heredoc, type Node, type ParseResult, type ParseWarning } from './ast.js';
import { trimLeftSpace, trimSpace } from './chars.js';
import { DirectiveParser } from './directives.js';
import { DockerfileParseError } from './errors.js';
import { heredocMarkersFromLine } from './heredoc.js';
import { nodeFromLine } from './line-parsers.js';

/**
 * The Dockerfile parser: physical lines → logical lines (directives,
 * comments, continuations, heredoc bodies) → one AST node per instruction.
 * It mirrors BuildKit's `parser.Parse` so that the upstream fixtures apply.
 */

/** bufio.Scanner's limit in BuildKit (64 KiB buffer, one byte kept for the newline). */
const MAX_LINE_BYTES = 65535;
/**
 * Our own bounds, so that parsing takes bounded memory whatever the input:
 * BuildKit caps physical lines only, but then a continued instruction or the
 * whole file could be arbitrarily large. Real Dockerfiles are kilobytes.
 */
/** In UTF-8 bytes, as read from disk. */
export const MAX_DOCKERFILE_BYTES = 16 * 1024 * 1024;
export const MAX_INSTRUCTION_CHARS = 1024 * 1024;
/** Far more than any image can use (Docker stops at 125 layers), and it keeps the AST small. */
export const MAX_INSTRUCTIONS = 10_000;

const HEREDOC_INSTRUCTIONS = new Set(['add', 'copy', 'run']);

export interface ParseOptions {
  /** Only used to label errors. */
  file?: string;
}

/** Parse Dockerfile text. Throws `DockerfileParseError`. */
export function parse(text: string, opts: ParseOptions = {}): ParseResult {
  try {
    return parseText(text);
  } catch (err) {
    if (err instanceof DockerfileParseError) throw err.withFile(opts.file);
    throw err;
  }
}

/** The physical line starting at `start`, with its own terminator (heredoc bodies need it verbatim); read lazily so a refused file is not split whole. */
function lineFrom(text: string, start: number): string | undefined {
  if (start >= text.length) return undefined;
  const nl = text.indexOf('\n', start);
  return nl < 0 ? text.slice(start) : text.slice(start, nl + 1);
}

function trimNewline(line: string): string {
  let end = line.length;
  while (end > 0 && (line[end - 1] === '\n' || line[end - 1] === '\r')) end--;
  return line.slice(0, end);
}

function isComment(line: string): boolean {
  return trimLeftSpace(trimNewline(line)).startsWith('#');
}

function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

/**
 * Continuation test: the escape token is the last non-blank character and is
 * not itself escaped (`foo\\` does not continue). Returns the line without the
 * token, or undefined when the line does not continue.
 */
function continuationMatcher(escapeToken: string): (line: string) => string | undefined {
  const e = escapeRegExp(escapeToken);
  const re = new RegExp(`([^${e}])${e}[ \\t]*$|^${e}[ \\t]*$`, 'u');
  return (line) => (re.test(line) ? line.replace(re, '$1') : undefined);
}

const CONTINUATION = {
  '\\': continuationMatcher('\\'),
  '`': continuationMatcher('`'),
} as const;

function parseText(input: string): ParseResult {
  if (input.length > MAX_DOCKERFILE_BYTES || Buffer.byteLength(input, 'utf8') > MAX_DOCKERFILE_BYTES) {
    throw new DockerfileParseError(`Dockerfile larger than the maximum of ${MAX_DOCKERFILE_BYTES} bytes`, lineAtByte(input, MAX_DOCKERFILE_BYTES));
  }
  const text = input.startsWith('\ufeff') ? input.slice(1) : input;
  const directives = new DirectiveParser();
  const root = newNode('');
  const warnings: ParseWarning[] = [];
  let comments: string[] = [];
  let currentLine = 0;
  let cursor = 0;

  // Reads the next physical line, enforcing BuildKit's length limit.
  const readLine = (): string | undefined => {
    const raw = lineFrom(text, cursor);
    if (raw === undefined) return undefined;
    cursor += raw.length;
    currentLine++;
    if (Buffer.byteLength(trimNewline(raw), 'utf8') > MAX_LINE_BYTES) {
      throw new DockerfileParseError(`dockerfile line greater than max allowed size of ${MAX_LINE_BYTES}`, currentLine);
    }
    return raw;
  };

  const offerDirective = (line: string): void => {
    try {
      directives.offer(line);
    } catch (err) {
      throw new DockerfileParseError((err as Error).message, currentLine);
    }
  };

  for (let raw = readLine(); raw !== undefined; raw = readLine()) {
    if (isComment(raw)) {
      comments.push(trimSpace(trimLeftSpace(raw).slice(1)));
    }
    const first = trimLeftSpace(trimNewline(raw));
    offerDirective(first);
    // Looked up per line: the escape directive may just have changed the token.
    const continuation = CONTINUATION[directives.escapeToken];
    const content = first.startsWith('#') ? '' : first;

    const startLine = currentLine;
    let line = content;
    let cont = continuation(content);
    if (cont === undefined && content === '') continue;
    if (cont !== undefined) line = cont;

    let emptyContinuationLine: number | undefined;
    while (cont !== undefined) {
      const next = readLine();
      if (next === undefined) break; // EOF while continued: keep what we have
      const body = trimNewline(next);
      offerDirective(body);
      if (isComment(next)) continue;
      if (trimLeftSpace(body) === '') {
        emptyContinuationLine ??= currentLine;
        continue;
      }
      cont = continuation(body);
      line += cont ?? body;
      if (line.length > MAX_INSTRUCTION_CHARS) {
        throw new DockerfileParseError(`instruction longer than the maximum of ${MAX_INSTRUCTION_CHARS} characters (continuation lines joined)`, startLine);
      }
    }

    if (emptyContinuationLine !== undefined) {
      warnings.push({ message: `Empty continuation line found in: ${line}`, line: emptyContinuationLine });
    }

    if (root.children.length >= MAX_INSTRUCTIONS) {
      throw new DockerfileParseError(`more than ${MAX_INSTRUCTIONS} instructions`, startLine);
    }
    let child: Node;
    try {
      child = nodeFromLine(line, { escapeToken: directives.escapeToken }, comments);
    } catch (err) {
      throw new DockerfileParseError((err as Error).message, startLine);
    }

    if (canContainHeredoc(child) && line.includes('<<')) {
      child.heredocs = readHeredocs(line, startLine, readLine);
    }

    child.startLine = startLine;
    child.endLine = currentLine;
    for (const arg of argNodes(child)) {
      for (const sub of arg.children) {
        sub.startLine = startLine;
        sub.endLine = currentLine;
      }
    }
    if (root.children.length === 0) root.startLine = startLine;
    root.endLine = currentLine;
    root.children.push(child);
    comments = [];
  }

  if (root.children.length === 0) {
    throw new DockerfileParseError('file with no instructions', currentLine === 0 ? undefined : currentLine);
  }

  return {
    ast: root,
    escapeToken: directives.escapeToken,
    directives: { ...directives.values },
    warnings,
  };
}

/** 1-based line number of the byte at `offset` of the text's UTF-8 encoding. */
function lineAtByte(text: string, offset: number): number {
  let line = 1;
  let bytes = 0;
  for (let start = 0; start < text.length; line++) {
    const nl = text.indexOf('\n', start);
    const end = nl < 0 ? text.length : nl + 1;
    bytes += Buffer.byteLength(text.slice(start, end), 'utf8');
    if (bytes > offset) return line;
    start = end;
  }
  return line - 1;
}

function* argNodes(node: Node): Generator<Node> {
  for (let n = node.next; n !== undefined; n = n.next) yield n;
}

/** RUN/COPY/ADD in shell form, also when wrapped in ONBUILD. */
function canContainHeredoc(node: Node): boolean {
  let target = node;
  if (node.value.toLowerCase() === 'onbuild') {
    const wrapped = node.next?.children[0];
    if (wrapped !== undefined) target = wrapped;
  }
  return HEREDOC_INSTRUCTIONS.has(target.value.toLowerCase()) && target.attributes.json !== true;
}

/** Reads the bodies of every heredoc the line declares, one after the other. */
function readHeredocs(
  line: string,
  startLine: number,
  readLine: () => string | undefined,
): Heredoc[] {
  let markers;
  try {
    markers = heredocMarkersFromLine(line);
  } catch (err) {
    throw new DockerfileParseError((err as Error).message, startLine);
  }
  const heredocs: Heredoc[] = [];
  for (const marker of markers) {
    let content = '';
    let terminated = false;
    for (let raw = readLine(); raw !== undefined; raw = readLine()) {
      let candidate = trimNewline(raw);
      if (marker.chomp) candidate = candidate.replace(/^\t+/, '');
      if (candidate === marker.name) {
        terminated = true;
        break;
      }
      content += raw;
    }
    if (!terminated) {
      throw new DockerfileParseError(
        `unterminated heredoc ${marker.name} (no line "${marker.name}" before the end of the file)`,
        startLine,
      );
    }
    heredocs.push({ ...marker, content });
  }
  return heredocs;
}
