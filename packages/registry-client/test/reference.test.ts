import { InvalidReferenceError, parseReference } from '../src/index.js';

const D = `sha256:${'a'.repeat(64)}`;
const D512 = `sha512:${'b'.repeat(128)}`;

// [input, registry, repository, tag, digest, toString, familiar]
const valid: Array<[string, string, string, string | undefined, string | undefined, string, string]> = [
  ['golang:1.21', 'docker.io', 'library/golang', '1.21', undefined, 'docker.io/library/golang:1.21', 'golang:1.21'],
  ['golang', 'docker.io', 'library/golang', 'latest', undefined, 'docker.io/library/golang:latest', 'golang:latest'],
  ['user/app', 'docker.io', 'user/app', 'latest', undefined, 'docker.io/user/app:latest', 'user/app:latest'],
  ['docker.io/golang', 'docker.io', 'library/golang', 'latest', undefined, 'docker.io/library/golang:latest', 'golang:latest'],
  ['docker.io/library/golang:1.21', 'docker.io', 'library/golang', '1.21', undefined, 'docker.io/library/golang:1.21', 'golang:1.21'],
  ['index.docker.io/golang', 'docker.io', 'library/golang', 'latest', undefined, 'docker.io/library/golang:latest', 'golang:latest'],
  ['index.docker.io/user/app:v1', 'docker.io', 'user/app', 'v1', undefined, 'docker.io/user/app:v1', 'user/app:v1'],
  ['library/golang', 'docker.io', 'library/golang', 'latest', undefined, 'docker.io/library/golang:latest', 'golang:latest'],
  ['docker.io/library/a/b', 'docker.io', 'library/a/b', 'latest', undefined, 'docker.io/library/a/b:latest', 'library/a/b:latest'],
  ['a/b/c/d', 'docker.io', 'a/b/c/d', 'latest', undefined, 'docker.io/a/b/c/d:latest', 'a/b/c/d:latest'],
  ['localhost/foo', 'localhost', 'foo', 'latest', undefined, 'localhost/foo:latest', 'localhost/foo:latest'],
  ['localhost:5000/foo/bar:tag', 'localhost:5000', 'foo/bar', 'tag', undefined, 'localhost:5000/foo/bar:tag', 'localhost:5000/foo/bar:tag'],
  ['127.0.0.1:5000/app', '127.0.0.1:5000', 'app', 'latest', undefined, '127.0.0.1:5000/app:latest', '127.0.0.1:5000/app:latest'],
  ['[::1]:5000/app:v2', '[::1]:5000', 'app', 'v2', undefined, '[::1]:5000/app:v2', '[::1]:5000/app:v2'],
  ['gcr.io/project/image', 'gcr.io', 'project/image', 'latest', undefined, 'gcr.io/project/image:latest', 'gcr.io/project/image:latest'],
  ['quay.io/coreos/etcd:v3.5.0', 'quay.io', 'coreos/etcd', 'v3.5.0', undefined, 'quay.io/coreos/etcd:v3.5.0', 'quay.io/coreos/etcd:v3.5.0'],
  ['myregistry:5000/x', 'myregistry:5000', 'x', 'latest', undefined, 'myregistry:5000/x:latest', 'myregistry:5000/x:latest'],
  ['Registry.Example.com/app', 'Registry.Example.com', 'app', 'latest', undefined, 'Registry.Example.com/app:latest', 'Registry.Example.com/app:latest'],
  // A first component with uppercase cannot be a repository, so Docker treats it as a host.
  ['Foo/bar', 'Foo', 'bar', 'latest', undefined, 'Foo/bar:latest', 'Foo/bar:latest'],
  ['foo.com', 'docker.io', 'library/foo.com', 'latest', undefined, 'docker.io/library/foo.com:latest', 'foo.com:latest'],
  ['a_b/c__d/e-f--g/h.i', 'docker.io', 'a_b/c__d/e-f--g/h.i', 'latest', undefined, 'docker.io/a_b/c__d/e-f--g/h.i:latest', 'a_b/c__d/e-f--g/h.i:latest'],
  [`golang@${D}`, 'docker.io', 'library/golang', undefined, D, `docker.io/library/golang@${D}`, `golang@${D}`],
  [`golang:1.21@${D}`, 'docker.io', 'library/golang', '1.21', D, `docker.io/library/golang:1.21@${D}`, `golang:1.21@${D}`],
  [`localhost:5000/a/b@${D512}`, 'localhost:5000', 'a/b', undefined, D512, `localhost:5000/a/b@${D512}`, `localhost:5000/a/b@${D512}`],
  ['golang:Latest_1.2-3', 'docker.io', 'library/golang', 'Latest_1.2-3', undefined, 'docker.io/library/golang:Latest_1.2-3', 'golang:Latest_1.2-3'],
  [`golang:${'t'.repeat(128)}`, 'docker.io', 'library/golang', 't'.repeat(128), undefined, `docker.io/library/golang:${'t'.repeat(128)}`, `golang:${'t'.repeat(128)}`],
];

test.each(valid)('parses %s', (input, registry, repository, tag, digest, full, familiar) => {
  const r = parseReference(input);
  expect(r.registry).toBe(registry);
  expect(r.repository).toBe(repository);
  expect(r.tag).toBe(tag);
  expect(r.digest).toBe(digest);
  expect(r.toString()).toBe(full);
  expect(r.familiar()).toBe(familiar);
  expect(`${r}`).toBe(full);
  // Normalisation is idempotent.
  expect(parseReference(r.toString()).toString()).toBe(full);
});

const invalid: Array<[string, RegExp]> = [
  ['', /at least one component/],
  ['Golang', /must be lowercase/],
  ['user/App', /must be lowercase/],
  ['localhost:5000/Foo', /must be lowercase/],
  ['a'.repeat(64), /64-byte hexadecimal/],
  ['golang:', /invalid reference format/],
  ['golang:-tag', /invalid reference format/],
  [`golang:${'t'.repeat(129)}`, /invalid reference format/],
  ['golang@sha256:abc', /invalid reference format/],
  [`golang@sha256:${'A'.repeat(64)}`, /lowercase hex/],
  [`golang@sha256:${'a'.repeat(63)}0a`, /64 lowercase hex/],
  [`golang@md5:${'a'.repeat(32)}`, /unsupported algorithm/],
  ['-foo/bar', /invalid reference format/],
  ['foo-/bar', /invalid reference format/],
  ['foo/bar/', /invalid reference format/],
  ['foo//bar', /invalid reference format/],
  ['foo/.bar', /invalid reference format/],
  ['foo/bar..baz', /invalid reference format/],
  ['foo/bar___baz', /invalid reference format/],
  ['foo bar', /invalid reference format/],
  ['http://docker.io/foo', /invalid reference format/],
  ['docker.io/', /invalid reference format/],
  ['localhost:port/foo', /invalid reference format/],
  [`${'a'.repeat(256)}`, /255 characters/],
  [`example.com/${'a/'.repeat(130)}b`, /255 characters/],
];

test.each(invalid)('rejects %s', (input, message) => {
  let caught: unknown;
  try {
    parseReference(input);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(InvalidReferenceError);
  expect((caught as InvalidReferenceError).code).toBe('E_INVALID_REFERENCE');
  expect((caught as Error).message).toMatch(message);
});
