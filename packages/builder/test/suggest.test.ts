import { closest, didYouMean, editDistance } from '../src/suggest.js';

describe('did you mean', () => {
  test('edit distance', () => {
    expect(editDistance('bulid', 'build')).toBe(2);
    expect(editDistance('oci', 'ocii')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
  });
  test('the closest candidate within the distance, never the word itself, not for words shorter than the edits', () => {
    expect(closest('bulid', ['base', 'build', 'test'])).toBe('build');
    expect(closest('ocii', ['oci', 'docker', 'local'])).toBe('oci');
    expect(closest('runtime', ['build'])).toBeUndefined();
    expect(closest('x', ['oci', 'tar'])).toBeUndefined();
    expect(closest('build', ['build'])).toBeUndefined();
    expect(didYouMean('COPPY', ['COPY', 'RUN'])).toBe(' (did you mean COPY?)');
    expect(didYouMean('zzz', ['COPY'])).toBe('');
  });
});
