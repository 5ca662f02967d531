// What the bundle gives yargs, cliui and wrap-ansi for `string-width`: text made
// only of characters that are one column wide (printable ASCII, Latin-1 but the
// soft hyphen, and the punctuation, arrows and maths signs stowage's help uses,
// such as `…`; East Asian "ambiguous" ones count as narrow, string-width's
// default) is measured by its length; anything else goes to the real module,
// which is required (so esbuild initialises it) only then. Loading it eagerly
// costs ~30 ms of every start (an Intl.Segmenter and Unicode-property
// regexes built at import).
let real;
const ONE_COLUMN = /^[\u0020-\u007E\u00A0-\u00AC\u00AE-\u00FF\u2010-\u2027\u2030-\u205E\u2190-\u22FF]*$/;

export default function stringWidth(string, options) {
  if (typeof string === 'string' && ONE_COLUMN.test(string)) return string.length;
  real ??= require('string-width').default;
  return real(string, options);
}
