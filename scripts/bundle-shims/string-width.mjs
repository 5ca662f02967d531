// What the bundle gives yargs, cliui and wrap-ansi for `string-width`: plain
// printable ASCII (all of stowage's help text) is measured by its length, as
// string-width itself does first; anything else goes to the real module,
// which is required (so esbuild initialises it) only then. Loading it eagerly
// costs ~30 ms of every start (an Intl.Segmenter and Unicode-property
// regexes built at import).
let real;

export default function stringWidth(string, options) {
  if (typeof string === 'string' && /^[\u0020-\u007E]*$/.test(string)) return string.length;
  real ??= require('string-width').default;
  return real(string, options);
}
