import { formatError } from '../../src/cli/format-error.js';
import { BuildError, InvalidOptionError, StageNotFoundError } from '../../src/errors.js';

describe('formatError', () => {
  test('an error with a location', () => {
    const err = new StageNotFoundError('stage "x" not found', { file: 'build.Dockerfile', line: 12 });
    expect(formatError(err, false)).toBe('error: build.Dockerfile:12: stage "x" not found');
  });

  test('a line without a file says Dockerfile', () => {
    expect(formatError(new BuildError('E_X', 'bad', { line: 3 }), false)).toBe('error: Dockerfile:3: bad');
  });

  test('an error without a location', () => {
    expect(formatError(new InvalidOptionError('-o: nope'), false)).toBe('error: -o: nope');
    expect(formatError(new Error('plain'), false)).toBe('error: plain');
  });

  test('non-Error values', () => {
    expect(formatError('text', false)).toBe('error: text');
    expect(formatError(42, true)).toBe('error: 42');
  });

  test('no stack without --debug', () => {
    const text = formatError(new BuildError('E_RUN_FAILED', 'boom', { line: 2 }), false);
    expect(text).not.toContain('\n');
    expect(text).not.toContain('code:');
  });

  test('--debug adds the code and the stack', () => {
    const err = new BuildError('E_RUN_FAILED', 'boom', { file: 'Dockerfile', line: 2 });
    const text = formatError(err, true);
    const lines = text.split('\n');
    expect(lines[0]).toBe('error: Dockerfile:2: boom');
    expect(lines[1]).toBe('code: E_RUN_FAILED');
    expect(text).toContain(err.stack!);
    expect(text).toMatch(/\n\s+at /);
  });

  test('--debug on an error without a code has the stack only', () => {
    const err = new Error('plain');
    const text = formatError(err, true);
    expect(text).not.toContain('code:');
    expect(text).toContain(err.stack!);
  });
});
