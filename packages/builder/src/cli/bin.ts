// The CLI's entry point (what scripts/bundle.mjs bundles). `--version` is
// answered before anything else is loaded, and `build` goes straight into
// its user namespace (launch-build.ts); everything else goes to main.ts,
// whose commands load their heavy modules only when they run.
import { VERSION_LINE } from './version-info.js';

const args = process.argv.slice(2);
if (args.length === 1 && args[0] === '--version') process.stdout.write(`${VERSION_LINE}\n`);
else {
  const { launchBuild } = await import('./launch-build.js');
  if (!(await launchBuild(args))) await import('./main.js');
}
