import type { Node } from './ast.js';
import { trimSpace as goTrimSpace } from './chars.js';

/**
 * BuildKit's `Node.Dump()`: the s-expression form the upstream parser
 * fixtures are written in. Kept byte-compatible so the fixtures can be
 * compared verbatim.
 */
export function dumpNode(node: Node): string {
  let str = node.value.toLowerCase();
  if (node.flags.length > 0) str += ' [' + node.flags.map(goQuote).join(' ') + ']';
  for (const child of node.children) str += '(' + dumpNode(child) + ')\n';
  for (let n = node.next; n !== undefined; n = n.next) {
    str += ' ' + (n.children.length > 0 ? dumpNode(n) : goQuote(n.value));
  }
  return goTrimSpace(str);
}

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** Go `strconv.Quote`. */
export function goQuote(s: string): string {
  let out = '"';
  for (const cp of s) {
    const code = cp.codePointAt(0)!;
    switch (cp) {
      case '"': out += '\\"'; continue;
      case '\\': out += '\\\\'; continue;
      case '\x07': out += '\\a'; continue;
      case '\b': out += '\\b'; continue;
      case '\f': out += '\\f'; continue;
      case '\n': out += '\\n'; continue;
      case '\r': out += '\\r'; continue;
      case '\t': out += '\\t'; continue;
      case '\v': out += '\\v'; continue;
    }
    if (code < 0x20 || code === 0x7f) {
      out += '\\x' + code.toString(16).padStart(2, '0');
    } else if (code >= 0xd800 && code <= 0xdfff) {
      // A lone surrogate cannot come from valid UTF-8; Go would have decoded
      // the bytes to U+FFFD, which is printable.
      out += '\ufffd';
    } else if (cp === ' ' || PRINTABLE.test(cp)) {
      out += cp;
    } else if (code < 0x10000) {
      out += '\\u' + code.toString(16).padStart(4, '0');
    } else {
      out += '\\U' + code.toString(16).padStart(8, '0');
    }
  }
  return out + '"';
}
