import type { ParseDirectives } from './ast.js';

/**
 * Parser directives (`# syntax=`, `# escape=`, `# check=`).
 *
 * BuildKit only honours them in the leading run of directive-shaped comment
 * lines: the first line of any other shape (blank line, instruction, plain
 * comment, or an unknown name such as `# foo=bar`) ends the run for good, and
 * that line is then treated normally.
 */

// Go's `\s` is ASCII-only, hence the explicit classes.
const RE_DIRECTIVE = /^#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*$/s;

const KNOWN = new Set<keyof ParseDirectives>(['syntax', 'escape', 'check']);

export class DirectiveParser {
  private done = false;
  readonly values: ParseDirectives = {};
  escapeToken: '\\' | '`' = '\\';

  /**
   * Offer one physical line (newline removed, leading whitespace already
   * stripped when the caller does so). Throws a plain Error on a repeated
   * directive or a bad escape token; the caller attaches the line number.
   */
  offer(line: string): void {
    if (this.done) return;
    const m = RE_DIRECTIVE.exec(line);
    if (!m) {
      this.done = true;
      return;
    }
    const name = m[1]!.toLowerCase();
    if (!KNOWN.has(name as keyof ParseDirectives)) {
      this.done = true;
      return;
    }
    const key = name as keyof ParseDirectives;
    if (this.values[key] !== undefined) {
      throw new Error(`only one ${key} parser directive can be used`);
    }
    const value = m[2]!;
    if (key === 'escape') {
      if (value !== '`' && value !== '\\') {
        throw new Error(`invalid escape token '${value}' does not match \` or \\`);
      }
      this.escapeToken = value;
    }
    this.values[key] = value;
  }
}
