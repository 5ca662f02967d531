import { parseBuildArgs, parseMirrors, parseOutput, registryNames } from '../../src/cli/options.js';
import { BuildError } from '../../src/errors.js';

function optionError(fn: () => unknown): BuildError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BuildError);
    expect((err as BuildError).code).toBe('E_INVALID_OPTION');
    return err as BuildError;
  }
  throw new Error('expected an error');
}

describe('parseOutput', () => {
  test('type=oci,dest=FILE', () => {
    expect(parseOutput('type=oci,dest=out.tar')).toEqual({ type: 'oci', dest: 'out.tar' });
    expect(parseOutput('dest=/tmp/x.tar,type=oci')).toEqual({ type: 'oci', dest: '/tmp/x.tar' });
  });

  test('dest=FILE alone means oci', () => {
    expect(parseOutput('dest=x')).toEqual({ type: 'oci', dest: 'x' });
  });

  test('a bare path', () => {
    expect(parseOutput('image.tar')).toEqual({ type: 'oci', dest: 'image.tar' });
    expect(parseOutput('./out/image.tar')).toEqual({ type: 'oci', dest: './out/image.tar' });
  });

  test('name= names the image of that output, repeatable', () => {
    expect(parseOutput('type=oci,dest=x,name=foo:1')).toEqual({ type: 'oci', dest: 'x', names: ['foo:1'] });
    expect(parseOutput('type=docker,dest=d.tar,name=a,name=b/c:2')).toEqual({ type: 'docker', dest: 'd.tar', names: ['a', 'b/c:2'] });
    expect(parseOutput('type=oci,dest=x')).not.toHaveProperty('names');
  });

  test('an invalid or empty name', () => {
    expect(optionError(() => parseOutput('type=docker,dest=x,name=Bad:Tag')).message).toMatch(/^-o type=docker,dest=x,name=Bad:Tag: name Bad:Tag: /);
    expect(optionError(() => parseOutput('type=oci,dest=x,name=')).message).toContain('name= is empty');
  });

  test('type=docker,dest=FILE', () => {
    expect(parseOutput('type=docker,dest=img.tar')).toEqual({ type: 'docker', dest: 'img.tar' });
  });

  test('type=docker without dest: no daemon to load into', () => {
    const err = optionError(() => parseOutput('type=docker'));
    expect(err.message).toContain('dest=FILE is required');
    expect(err.message).toContain('no daemon');
  });

  test('type=local,dest=DIR and type=tar,dest=FILE', () => {
    expect(parseOutput('type=local,dest=out/rootfs')).toEqual({ type: 'local', dest: 'out/rootfs' });
    expect(parseOutput('dest=fs.tar,type=tar')).toEqual({ type: 'tar', dest: 'fs.tar' });
    expect(optionError(() => parseOutput('type=local')).message).toMatch(/dest=DIR is required/);
    expect(optionError(() => parseOutput('type=tar')).message).toMatch(/dest=FILE is required/);
  });

  test('local and tar take no name', () => {
    expect(optionError(() => parseOutput('type=local,dest=d,name=x')).message).toBe('-o type=local,dest=d,name=x: unknown key "name" for type=local (known: type, dest, preserve-special)');
    optionError(() => parseOutput('type=tar,dest=f,name=x'));
  });

  test('type=local takes preserve-special=true|false; any other value, or the key elsewhere, is an error', () => {
    expect(parseOutput('type=local,dest=d,preserve-special=true')).toEqual({ type: 'local', dest: 'd', preserveSpecial: true });
    expect(parseOutput('type=local,dest=d,preserve-special=false')).toEqual({ type: 'local', dest: 'd' });
    for (const bad of ['yes', '1', '', 'TRUE']) {
      expect(optionError(() => parseOutput(`type=local,dest=d,preserve-special=${bad}`)).message).toBe(`-o type=local,dest=d,preserve-special=${bad}: preserve-special=${bad}: expected true or false`);
    }
    expect(optionError(() => parseOutput('type=tar,dest=f,preserve-special=true')).message).toMatch(/unknown key "preserve-special" for type=tar/);
  });

  test('an unknown type names the supported ones', () => {
    const err = optionError(() => parseOutput('type=cacheonly,dest=x'));
    expect(err.message).toBe('-o type=cacheonly,dest=x: output type "cacheonly" is not supported yet (supported: oci, docker, local, tar, registry)');
    expect(() => parseOutput('type=ocii,dest=x')).toThrow('-o type=ocii,dest=x: unknown output type "ocii" (did you mean oci?) (supported: oci, docker, local, tar, registry)');
    expect(() => parseOutput('type=oci,dets=x')).toThrow(/unknown key "dets" for type=oci \(did you mean dest\?\)/);
  });

  test('type=registry: names optional and repeatable, push=true accepted, no dest', () => {
    expect(parseOutput('type=registry')).toEqual({ type: 'registry' });
    expect(parseOutput('type=registry,name=127.0.0.1:5000/a/b:1,name=c:2')).toEqual({ type: 'registry', names: ['127.0.0.1:5000/a/b:1', 'c:2'] });
    expect(parseOutput('type=registry,push=true,name=x')).toEqual({ type: 'registry', names: ['x'] });
    expect(optionError(() => parseOutput('type=registry,push=false')).message).toContain('always pushes');
    expect(optionError(() => parseOutput('type=registry,dest=x')).message).toBe('-o type=registry,dest=x: unknown key "dest" for type=registry (known: type, name, push)');
    expect(optionError(() => parseOutput('type=registry,name=Bad:Tag')).message).toMatch(/^-o type=registry,name=Bad:Tag: name Bad:Tag: /);
    expect(optionError(() => parseOutput('type=registry,name=')).message).toContain('name= is empty');
  });

  test('type=image (a daemon\'s image store) is not supported', () => {
    expect(optionError(() => parseOutput('type=image,name=x,push=true')).message).toMatch(/"image".*type=registry/);
  });

  test('a missing dest', () => {
    expect(optionError(() => parseOutput('type=oci')).message).toMatch(/dest=FILE is required/);
    expect(optionError(() => parseOutput('type=oci,dest=')).message).toMatch(/dest=FILE is required/);
  });

  test('an unknown key', () => {
    expect(optionError(() => parseOutput('type=oci,dest=x,compression=zstd')).message).toContain('unknown key "compression"');
    expect(optionError(() => parseOutput('type=docker,dest=x,oci-mediatypes=true')).message).toContain('unknown key "oci-mediatypes" for type=docker (known: type, dest, name)');
  });

  test('a part that is not key=value', () => {
    expect(optionError(() => parseOutput('type=oci,out.tar')).message).toContain('"out.tar" is not key=value');
    optionError(() => parseOutput('=x'));
  });

  test('standard output is not supported yet, however it is spelled', () => {
    expect(optionError(() => parseOutput('-')).message).toMatch(/standard output/);
    optionError(() => parseOutput(''));
    expect(optionError(() => parseOutput('type=oci,dest=-')).message).toMatch(/standard output/);
    optionError(() => parseOutput('dest=-'));
    expect(optionError(() => parseOutput('type=tar,dest=-')).message).toMatch(/standard output/);
    expect(optionError(() => parseOutput('type=local,dest=-')).message).toMatch(/standard output/);
  });
});

describe('parseBuildArgs', () => {
  test('K=V pairs, values may contain = and be empty', () => {
    expect(parseBuildArgs(['A=1', 'B=x=y', 'C='], {})).toEqual({ A: '1', B: 'x=y', C: '' });
  });

  test('later values win', () => {
    expect(parseBuildArgs(['A=1', 'A=2'], {})).toEqual({ A: '2' });
  });

  test('a bare K takes its value from the environment, or is left out', () => {
    expect(parseBuildArgs(['HOME_DIR', 'MISSING'], { HOME_DIR: '/h' })).toEqual({ HOME_DIR: '/h' });
  });

  test('=v is an error', () => {
    expect(optionError(() => parseBuildArgs(['=v'], {})).message).toMatch(/missing name/);
  });
});

describe('parseMirrors', () => {
  test('REGISTRY=HOST[:PORT]', () => {
    expect(parseMirrors(['docker.io=127.0.0.1:5055'])).toEqual({ 'docker.io': ['127.0.0.1:5055'] });
  });

  test('a bare host mirrors docker.io', () => {
    expect(parseMirrors(['mirror.example.com'])).toEqual({ 'docker.io': ['mirror.example.com'] });
  });

  test('strips the scheme and trailing slashes, keeps order, groups by registry', () => {
    expect(parseMirrors(['https://m1.example/', 'docker.io=http://m2.example:5000', 'ghcr.io=m3.example', 'index.docker.io=m4'])).toEqual({
      'docker.io': ['m1.example', 'm2.example:5000', 'm4'],
      'ghcr.io': ['m3.example'],
    });
  });

  test('empty registry or mirror is an error', () => {
    optionError(() => parseMirrors(['=m.example']));
    optionError(() => parseMirrors(['docker.io=']));
    optionError(() => parseMirrors(['docker.io=https://']));
  });
});

describe('registryNames', () => {
  test('no registry output: nothing to push', () => {
    expect(registryNames([{ type: 'oci', dest: 'x' }], ['a:1'])).toEqual([]);
  });

  test('without name= the -t tags are used (as --push); duplicates dropped by full name', () => {
    expect(registryNames([{ type: 'registry' }], ['h:5000/a:1', 'h:5000/a:2'])).toEqual(['h:5000/a:1', 'h:5000/a:2']);
    expect(registryNames([{ type: 'registry' }, { type: 'registry', names: ['docker.io/library/a:1', 'b'] }], ['a:1'])).toEqual(['a:1', 'b']);
  });

  test('name= replaces the tags for that output', () => {
    expect(registryNames([{ type: 'registry', names: ['x:1'] }], ['y:1'])).toEqual(['x:1']);
  });

  test('no name anywhere is a clear option error', () => {
    const err = optionError(() => registryNames([{ type: 'oci', dest: 'x' }, { type: 'registry' }], []));
    expect(err.message).toMatch(/no image name to push to; give -t/);
  });
});
