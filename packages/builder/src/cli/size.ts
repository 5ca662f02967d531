import { InvalidOptionError } from '../errors.js';

const DECIMAL: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12 };
const BINARY: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };

/**
 * A byte count as people write it: `1048576`, `500MB`, `2GiB`, `1.5 gb`.
 * kB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of 1024; a bare
 * k/m/g/t is binary, as in Docker's `--memory`. Case does not matter.
 */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m?.[2]?.toLowerCase() ?? '';
  const factor = DECIMAL[unit] ?? BINARY[unit];
  if (m === null || factor === undefined) {
    throw new InvalidOptionError(`${what} ${JSON.stringify(text)}: expected a number of bytes with an optional unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 500MB or 2GiB`);
  }
  const bytes = Math.floor(Number(m[1]) * factor);
  if (!Number.isSafeInteger(bytes)) throw new InvalidOptionError(`${what} ${JSON.stringify(text)}: too large`);
  return bytes;
}

/** `512 B`, `1.5 KiB`, `12.3 MiB`, `2.00 GiB`: binary units, three significant digits. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${bytes} B`;
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[i]}`;
}
