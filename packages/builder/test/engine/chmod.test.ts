import { applyChmod, ChmodError, parseChmod } from '../../src/engine/chmod.js';

const apply = (value: string, mode: number, isDir = false) => applyChmod(parseChmod(value), mode, isDir);

describe('parseChmod / applyChmod', () => {
  test.each<[string, number]>([
    ['755', 0o755],
    ['0644', 0o644],
    ['4755', 0o4755],
    ['7', 0o7],
    ['07777', 0o7777],
  ])('octal %s replaces the mode of files and directories', (value, mode) => {
    expect(apply(value, 0o600)).toBe(mode);
    expect(apply(value, 0o700, true)).toBe(mode);
  });

  test.each(['10000', '8', '0o755', '9x'])('%s is rejected with the octal message', (value) => {
    expect(() => parseChmod(value)).toThrow(ChmodError);
    expect(() => parseChmod(value)).toThrow(`invalid chmod parameter: '${value}'. it should be octal string and between 0 and 07777`);
  });

  test.each(['', 'u*x', 'z+x', 'u+x,', 'u', '+x,,g+w', 'u+x y'])('symbolic %j is rejected', (value) => {
    expect(() => parseChmod(value)).toThrow(ChmodError);
  });

  // [mode string, source mode, is a directory, result]
  test.each<[string, number, boolean, number]>([
    ['u+x', 0o644, false, 0o744],
    ['g-w', 0o664, false, 0o644],
    ['o=r', 0o777, false, 0o774],
    ['u+x,go-w', 0o666, false, 0o744],
    ['u+x,go-w', 0o777, true, 0o755],
    ['a+rX', 0o600, false, 0o644],
    ['a+rX', 0o700, false, 0o755],
    ['a+rX', 0o600, true, 0o755],
    ['+x', 0o644, false, 0o755],
    // without ugoa the umask (022) limits what is set
    ['+w', 0o444, false, 0o644],
    ['=r', 0o777, false, 0o444],
    // the reference's example: directories 755, files 644, executables kept executable
    ['u=rwX,go=rX', 0o700, true, 0o755],
    ['u=rwX,go=rX', 0o600, false, 0o644],
    ['u=rwX,go=rX', 0o744, false, 0o755],
    ['-X', 0o755, true, 0o755],
    ['g=u', 0o740, false, 0o770],
    ['go=u-w', 0o700, false, 0o755],
    ['u+s', 0o755, false, 0o4755],
    ['g+s', 0o755, true, 0o2755],
    ['o+s', 0o755, false, 0o755],
    ['+t', 0o777, true, 0o1777],
    ['u-s', 0o4755, false, 0o755],
    ['a=', 0o4777, false, 0o0],
    ['u+r-w', 0o200, false, 0o400],
    ['a-x,u+x', 0o777, false, 0o766],
  ])('%s on %o (directory: %s) gives %o', (value, mode, isDir, expected) => {
    expect(apply(value, mode, isDir)).toBe(expected);
  });

  test('a plain number (the older builder API) is the mode', () => {
    expect(applyChmod(0o4711, 0o644, false)).toBe(0o4711);
  });
});
