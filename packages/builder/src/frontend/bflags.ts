/**
 * Validation of an instruction's `--flags` against the set it accepts
 * (BuildKit's `BFlags`): unknown flags, duplicates, missing or malformed
 * values. Errors are plain Errors; the caller attaches the line.
 */

type FlagType = 'bool' | 'string' | 'strings';

export class BFlags {
  private readonly defs = new Map<string, FlagType>();
  private readonly values = new Map<string, string[]>();

  constructor(
    private readonly instruction: string,
    private readonly args: readonly string[],
  ) {}

  addBool(name: string): this {
    this.defs.set(name, 'bool');
    return this;
  }

  addString(name: string): this {
    this.defs.set(name, 'string');
    return this;
  }

  /** A flag that may be repeated (`--mount`, `--exclude`). */
  addStrings(name: string): this {
    this.defs.set(name, 'strings');
    return this;
  }

  parse(): this {
    for (const arg of this.args) {
      if (!arg.startsWith('--')) throw new Error(`arg should start with -- : ${arg}`);
      const body = arg.slice(2);
      const eq = body.indexOf('=');
      const name = eq < 0 ? body : body.slice(0, eq);
      const value = eq < 0 ? undefined : body.slice(eq + 1);

      const type = this.defs.get(name);
      if (type === undefined) throw new Error(this.unknownFlagMessage(name));
      const seen = this.values.get(name);
      if (seen !== undefined && type !== 'strings') throw new Error(`duplicate flag specified: --${name}`);

      switch (type) {
        case 'bool': {
          // `--link` alone means true; `--link=` (explicitly empty) is a mistake.
          if (value === '') throw new Error(`missing a value on flag: ${arg}`);
          const v = (value ?? 'true').toLowerCase();
          if (v !== 'true' && v !== 'false') {
            throw new Error(`expecting boolean value for flag --${name}, not: ${value ?? ''}`);
          }
          this.values.set(name, [v]);
          break;
        }
        case 'string':
        case 'strings':
          if (value === undefined) throw new Error(`missing a value on flag: ${arg}`);
          this.values.set(name, [...(seen ?? []), value]);
          break;
      }
    }
    return this;
  }

  /** undefined when the flag was not given. */
  bool(name: string): boolean | undefined {
    const v = this.values.get(name);
    return v === undefined ? undefined : v[0] === 'true';
  }

  string(name: string): string | undefined {
    return this.values.get(name)?.[0];
  }

  strings(name: string): string[] {
    return [...(this.values.get(name) ?? [])];
  }

  private unknownFlagMessage(name: string): string {
    const accepted = [...this.defs.keys()].map((n) => `--${n}`);
    const hint =
      accepted.length === 0
        ? `${this.instruction} takes no flags`
        : `${this.instruction} accepts ${accepted.join(', ')}`;
    return `unknown flag: --${name} (${hint})`;
  }
}
