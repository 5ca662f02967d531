// Bundles the CLI into one ESM file so that `stowage` starts without resolving
// hundreds of modules, and so that it can be copied anywhere a user can read.
import { build } from 'esbuild';
await build({
  entryPoints: ['packages/builder/dist/src/cli/main.js'],
  outfile: 'packages/builder/dist/stowage.mjs',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  logLevel: 'warning',
  // CommonJS dependencies inside an ESM bundle still call require().
  banner: { js: "import { createRequire as __stowageCreateRequire } from 'node:module'; const require = __stowageCreateRequire(import.meta.url);" },
});
