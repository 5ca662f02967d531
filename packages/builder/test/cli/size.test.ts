import { formatSize, parseSize } from '../../src/cli/size.js';
import { BuildError } from '../../src/errors.js';

describe('parseSize', () => {
  test('bare numbers are bytes', () => {
    expect(parseSize('0')).toBe(0);
    expect(parseSize('1048576')).toBe(1048576);
    expect(parseSize('12B')).toBe(12);
  });

  test('kB/MB/GB/TB are decimal, KiB/MiB/GiB/TiB binary, case-insensitive, spaces allowed', () => {
    expect(parseSize('500MB')).toBe(500_000_000);
    expect(parseSize('500mb')).toBe(500_000_000);
    expect(parseSize('2kB')).toBe(2000);
    expect(parseSize('1TB')).toBe(1e12);
    expect(parseSize('2GiB')).toBe(2 * 1024 ** 3);
    expect(parseSize('3 MiB')).toBe(3 * 1024 ** 2);
    expect(parseSize('1KiB')).toBe(1024);
  });

  test('a bare k/m/g/t is binary, as Docker\'s --memory', () => {
    expect(parseSize('512m')).toBe(512 * 1024 ** 2);
    expect(parseSize('1g')).toBe(1024 ** 3);
    expect(parseSize('4K')).toBe(4096);
  });

  test('fractions round down to whole bytes', () => {
    expect(parseSize('1.5GiB')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('0.5kB')).toBe(500);
    expect(parseSize('1.0001kB')).toBe(1000);
  });

  test('anything else is an option error naming the option', () => {
    for (const bad of ['', 'MB', '-1MB', '1 2', '1XB', '1e9', '1,5GB', '0x10']) {
      let err: unknown;
      try {
        parseSize(bad, '--keep-storage');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BuildError);
      expect((err as BuildError).code).toBe('E_INVALID_OPTION');
      expect((err as BuildError).message).toMatch(/^--keep-storage ".*": expected a number of bytes/);
    }
    expect(() => parseSize('99999999999TB')).toThrow(/too large/);
  });
});

describe('formatSize', () => {
  test('binary units, three significant digits', () => {
    expect(formatSize(0)).toBe('0 B');
    expect(formatSize(1023)).toBe('1023 B');
    expect(formatSize(1024)).toBe('1.00 KiB');
    expect(formatSize(1536)).toBe('1.50 KiB');
    expect(formatSize(12.34 * 1024 ** 2)).toBe('12.3 MiB');
    expect(formatSize(123.4 * 1024 ** 2)).toBe('123 MiB');
    expect(formatSize(2 * 1024 ** 3)).toBe('2.00 GiB');
    expect(formatSize(5 * 1024 ** 5)).toBe('5120 TiB');
  });

  test('what it prints parses back to about the same size', () => {
    for (const n of [1536, 5_000_000, 3 * 1024 ** 3]) {
      const back = parseSize(formatSize(n).replace(' ', ''));
      expect(Math.abs(back - n) / n).toBeLessThan(0.01);
    }
  });
});
