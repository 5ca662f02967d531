// Bundles the CLI so that `stowage` starts without resolving hundreds of
// modules: packages/builder/dist/stowage.mjs (the entry: yargs and the command
// list) plus chunks/ that the commands import() when they run, so that
// `stowage --help` and `--version` never load the engine, the registry client
// or tar. Copy stowage.mjs together with chunks/.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const outdir = 'packages/builder/dist';
rmSync(`${outdir}/chunks`, { recursive: true, force: true });

/** The commit being bundled (`-dirty` with uncommitted changes to tracked files), or '' outside a git checkout. */
function commit() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return `${head}${dirty ? '-dirty' : ''}`;
  } catch {
    return '';
  }
}

/**
 * `string-width` for the whole bundle is the lazy shim in bundle-shims/, over
 * yargs' own version (8.x). Otherwise wrap-ansi brings 7.x, which runs every
 * character of the help text through Intl.Segmenter and a fresh emoji regex,
 * and 8.x builds its segmenter and Unicode regexes at import: together about
 * half of what `stowage --help` costs beyond Node's own start.
 */
const shim = fileURLToPath(new URL('bundle-shims/string-width.mjs', import.meta.url));
const lazyStringWidth = {
  name: 'lazy-string-width',
  setup(b) {
    b.onResolve({ filter: /^string-width$/ }, async (args) => {
      if (args.pluginData === 'real') return undefined; // our own lookup below: the usual resolution
      if (args.importer !== shim) return { path: shim };
      const yargs = await b.resolve('yargs', { kind: 'import-statement', resolveDir: 'packages/builder' });
      const real = await b.resolve('string-width', { kind: args.kind, resolveDir: dirname(yargs.path), pluginData: 'real' });
      return real.errors.length > 0 ? { errors: real.errors } : { path: real.path };
    });
  },
};

await build({
  entryPoints: { stowage: 'packages/builder/dist/src/cli/bin.js' },
  outdir,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  logLevel: 'warning',
  define: { __STOWAGE_COMMIT__: JSON.stringify(commit()) },
  plugins: [lazyStringWidth],
  // CommonJS dependencies inside an ESM bundle still call require().
  banner: { js: "import { createRequire as __stowageCreateRequire } from 'node:module'; const require = __stowageCreateRequire(import.meta.url);" },
});
