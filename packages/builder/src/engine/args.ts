import type { ArgCommand } from '../frontend/index.js';
import { withLocation } from '../errors.js';

/** ARGs that reach RUN without an ARG line and stay out of history, as in Docker. */
const PROXY_KINDS = ['HTTP_PROXY', 'HTTPS_PROXY', 'FTP_PROXY', 'NO_PROXY', 'ALL_PROXY'];

export type Expand = (word: string, env: Record<string, string>) => string;

/**
 * The build arguments of one build and which of them an ARG consumed, with
 * BuildKit's scoping rules:
 * - a global ARG (before the first FROM) is visible to FROM lines only;
 * - inside a stage an ARG is visible from its declaration to the end of that
 *   stage and in the stages built FROM it (the engine carries them over);
 *   a bare `ARG NAME` takes the global value of the same name;
 * - `--build-arg` overrides a declared default, but only for declared names;
 * - an ARG with neither default nor value is declared but unset.
 */
export class BuildArgScope {
  private readonly consumed = new Set<string>();
  /** The global scope: predefined platform args plus declared global ARGs. */
  readonly global: Record<string, string>;

  constructor(
    private readonly provided: Readonly<Record<string, string>>,
    predefined: Readonly<Record<string, string>>,
    metaArgs: readonly ArgCommand[],
    expand: Expand,
    file?: string,
  ) {
    const global: Record<string, string> = { ...predefined };
    for (const arg of metaArgs) {
      for (const { key, value } of arg.args) {
        let resolved: string | undefined;
        try {
          resolved = this.resolve(key, value, global, expand, predefined);
        } catch (err) {
          throw err instanceof Error ? withLocation(err, { file, line: arg.range.start }) : err;
        }
        if (resolved === undefined) delete global[key];
        else global[key] = resolved;
      }
    }
    this.global = global;
  }

  /**
   * The value of `ARG key[=value]` inside a stage, or undefined when unset.
   * `env` is what the default expands against (the stage's ARGs and ENV).
   */
  declare(key: string, value: string | undefined, env: Record<string, string>, expand: Expand): string | undefined {
    return this.resolve(key, value, env, expand, this.global);
  }

  private resolve(key: string, value: string | undefined, env: Record<string, string>, expand: Expand, outer: Readonly<Record<string, string>>): string | undefined {
    if (Object.hasOwn(this.provided, key)) {
      this.consumed.add(key);
      return this.provided[key];
    }
    if (value !== undefined) return expand(value, env);
    return Object.hasOwn(outer, key) ? outer[key] : undefined;
  }

  /**
   * Proxy variables given with --build-arg (any letter case), which RUN sees
   * without an ARG line, in both spellings (`HTTP_PROXY` and `http_proxy`) as
   * BuildKit's exec op sets them.
   */
  proxyEnv(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.provided)) {
      const kind = PROXY_KINDS.find((p) => p === k.toUpperCase());
      if (kind === undefined) continue;
      out[kind] = v;
      out[kind.toLowerCase()] = v;
      this.consumed.add(k);
    }
    return out;
  }

  /** --build-arg names no ARG of the built stages declared (Docker warns about them). */
  unused(): string[] {
    return Object.keys(this.provided).filter((k) => !this.consumed.has(k) && !PROXY_KINDS.includes(k.toUpperCase()));
  }
}
