/**
 * Go's `time.ParseDuration` (HEALTHCHECK flags use Go duration syntax:
 * `30s`, `1m30s`, `1.5h`, `250ms`). Returns nanoseconds, or undefined when
 * the text is not a valid duration.
 */

const UNIT_NS: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  'µs': 1e3, // U+00B5 micro sign
  'μs': 1e3, // U+03BC Greek mu
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

const COMPONENT = /^(\d*)(?:\.(\d*))?([^\d.]+)/u;

export function parseGoDuration(text: string): number | undefined {
  let s = text;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') return undefined;

  let total = 0;
  while (s !== '') {
    const m = COMPONENT.exec(s);
    if (!m) return undefined;
    const whole = m[1]!;
    const frac = m[2];
    if (whole === '' && (frac === undefined || frac === '')) return undefined;
    const unit = UNIT_NS[m[3]!];
    if (unit === undefined) return undefined;
    const value = Number(whole || '0') + (frac ? Number(`0.${frac}`) : 0);
    total += value * unit;
    s = s.slice(m[0].length);
  }
  return sign * Math.trunc(total);
}
