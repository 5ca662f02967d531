import { MountSpecError, mountFrom, parseMountSpec, parseSize, splitCsv, type MountSpec } from '../../src/engine/mount-spec.js';

const env: Record<string, string> = { CACHE: '/root/.cache', UID: '1000' };
const expand = (v: string) => v.replace(/\$\{?(\w+)\}?/g, (_, name: string) => env[name] ?? '');

function parse(raw: string, workdir = '/'): MountSpec {
  return parseMountSpec(raw, { expand, workdir });
}

function error(raw: string): string {
  try {
    parse(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(MountSpecError);
    return (err as Error).message;
  }
  throw new Error(`expected ${raw} to fail`);
}

describe('splitCsv', () => {
  test('plain and quoted fields, as Go\'s encoding/csv', () => {
    expect(splitCsv('type=cache,target=/x')).toEqual(['type=cache', 'target=/x']);
    expect(splitCsv('"target=/a,b",ro')).toEqual(['target=/a,b', 'ro']);
    expect(splitCsv('"a ""q"" b",x')).toEqual(['a "q" b', 'x']);
    expect(splitCsv('a,,b')).toEqual(['a', '', 'b']);
  });

  test('broken quoting fails', () => {
    expect(() => splitCsv('"open')).toThrow(MountSpecError);
    expect(() => splitCsv('a"b')).toThrow(MountSpecError);
  });
});

describe('parseMountSpec: bind (the default type)', () => {
  test('defaults: read-only, source = root of the context', () => {
    expect(parse('target=/src')).toEqual({ type: 'bind', target: '/src', source: '/', readonly: true });
  });

  test('from, source aliases, rw', () => {
    expect(parse('type=bind,from=build,src=/out,dst=/in,rw')).toEqual({ type: 'bind', target: '/in', source: '/out', from: 'build', readonly: false });
    expect(parse('type=bind,source=a,destination=/b,readwrite=true')).toMatchObject({ source: 'a', target: '/b', readonly: false });
    expect(parse('type=bind,target=/b,ro=false')).toMatchObject({ readonly: false });
    expect(parse('type=bind,target=/b,readonly')).toMatchObject({ readonly: true });
  });

  test('a relative target is taken from WORKDIR', () => {
    expect(parse('target=src', '/app')).toMatchObject({ target: '/app/src' });
    expect(parse('target=../x', '/app/sub')).toMatchObject({ target: '/app/x' });
  });

  test('keys are case-insensitive; values are expanded except from', () => {
    expect(parse('Type=Cache,Target=$CACHE')).toMatchObject({ type: 'cache', target: '/root/.cache', id: '/root/.cache' });
    expect(error('type=bind,from=$STAGE,target=/x')).toMatch(/variables are not expanded in from/);
  });

  test('missing target, mount over /, options of other types', () => {
    expect(error('type=bind,source=x')).toMatch(/target is required for type=bind/);
    expect(error('type=bind,target=/')).toMatch(/cannot mount over the root/);
    expect(error('type=bind,target=/x,mode=0700')).toMatch(/option "mode" does not apply to type=bind/);
    expect(error('type=bind,target=/x,sharing=locked')).toMatch(/"sharing" does not apply to type=bind/);
    expect(error('type=bind,target=/x,required')).toMatch(/"required" does not apply/);
  });
});

describe('parseMountSpec: cache', () => {
  test('defaults: id = target, shared, 0755, root, writable', () => {
    expect(parse('type=cache,target=/var/cache/apt')).toEqual({
      type: 'cache', target: '/var/cache/apt', id: '/var/cache/apt', sharing: 'shared', source: '/', mode: 0o755, uid: 0, gid: 0, readonly: false,
    });
  });

  test('every option', () => {
    expect(parse('type=cache,id=go,target=/go,sharing=LOCKED,mode=0700,uid=$UID,gid=1000,from=deps,source=/pkg,ro')).toEqual({
      type: 'cache', target: '/go', id: 'go', sharing: 'locked', from: 'deps', source: '/pkg', mode: 0o700, uid: 1000, gid: 1000, readonly: true,
    });
  });

  test('bad values', () => {
    expect(error('type=cache,target=/x,sharing=exclusive')).toMatch(/unsupported sharing "exclusive"/);
    expect(error('type=cache,target=/x,mode=0999')).toMatch(/invalid value for mode/);
    expect(error('type=cache,target=/x,mode=rwx')).toMatch(/invalid value for mode/);
    expect(error('type=cache,target=/x,uid=-1')).toMatch(/invalid value for uid/);
    expect(error('type=cache,target=/x,gid=root')).toMatch(/invalid value for gid/);
    expect(error('type=cache,target=/x,ro=maybe')).toMatch(/invalid value for readonly/);
    expect(error('type=cache,target=/x,ro,rw')).toMatch(/readonly or readwrite, not both/);
    expect(error('type=cache,id=x')).toMatch(/target is required for type=cache/);
  });
});

describe('parseMountSpec: secret', () => {
  test('defaults: file at /run/secrets/<id>, 0400, root, not required', () => {
    expect(parse('type=secret,id=npmrc')).toEqual({ type: 'secret', id: 'npmrc', target: '/run/secrets/npmrc', required: false, mode: 0o400, uid: 0, gid: 0 });
  });

  test('the id defaults to the target\'s base name; source is another spelling of id', () => {
    expect(parse('type=secret,target=/root/.npmrc')).toMatchObject({ id: '.npmrc', target: '/root/.npmrc' });
    expect(parse('type=secret,source=tok')).toMatchObject({ id: 'tok', target: '/run/secrets/tok' });
  });

  test('env: no file unless a target is given too', () => {
    expect(parse('type=secret,id=tok,env=API_TOKEN')).toEqual({ type: 'secret', id: 'tok', env: 'API_TOKEN', required: false, mode: 0o400, uid: 0, gid: 0 });
    expect(parse('type=secret,id=tok,env=API_TOKEN,target=/t')).toMatchObject({ env: 'API_TOKEN', target: '/t' });
  });

  test('required, mode, uid, gid', () => {
    expect(parse('type=secret,id=a,required,mode=0440,uid=1,gid=2')).toMatchObject({ required: true, mode: 0o440, uid: 1, gid: 2 });
    expect(parse('type=secret,id=a,required=false')).toMatchObject({ required: false });
  });

  test('errors', () => {
    expect(error('type=secret,env=TOKEN')).toMatch(/needs id=/);
    expect(error('type=secret,id=a,source=b')).toMatch(/id= or source=, not both/);
    expect(error('type=secret,id=a,env=1BAD')).toMatch(/not a valid environment variable name/);
    expect(error('type=secret,id=a,from=x')).toMatch(/"from" does not apply to type=secret/);
    expect(error('type=secret,id=a,sharing=locked')).toMatch(/"sharing" does not apply/);
  });
});

describe('parseMountSpec: tmpfs, ssh, unknown', () => {
  test('tmpfs with and without size', () => {
    expect(parse('type=tmpfs,target=/t')).toEqual({ type: 'tmpfs', target: '/t', readonly: false });
    expect(parse('type=tmpfs,target=/t,size=64m')).toEqual({ type: 'tmpfs', target: '/t', size: 64 * 1024 * 1024, readonly: false });
    expect(error('type=tmpfs,target=/t,size=lots')).toMatch(/invalid value for size/);
    expect(error('type=tmpfs,size=1m')).toMatch(/target is required for type=tmpfs/);
  });

  test('ssh is recognised (the engine refuses it)', () => {
    expect(parse('type=ssh')).toEqual({ type: 'ssh' });
  });

  test('unknown options, types, flags without a value, repeats', () => {
    expect(error('type=cache,target=/x,colour=blue')).toMatch(/unknown mount option "colour"/);
    expect(error('type=volume,target=/x')).toMatch(/unsupported mount type "volume"/);
    expect(error('type=cache,target')).toMatch(/"target" must be a key=value pair/);
    expect(error('type=cache,target=/a,dst=/b')).toMatch(/given more than once/);
  });
});

describe('parseSize', () => {
  test('docker/go-units RAMInBytes', () => {
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('1k')).toBe(1024);
    expect(parseSize('1.5GiB')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('2 MB')).toBe(2 * 1024 ** 2);
  });
});

describe('mountFrom', () => {
  test('the raw from= of a spec, for the planner', () => {
    expect(mountFrom('type=bind,from=build,target=/x')).toBe('build');
    expect(mountFrom('FROM=Build,target=/x')).toBe('Build');
    expect(mountFrom('type=cache,target=/x')).toBeUndefined();
    expect(mountFrom('"broken')).toBeUndefined();
  });
});
