import { loginRegistry, passwordFromStdinText } from '../../src/cli/login-input.js';

test('loginRegistry: Docker Hub by default and by any of its names; URLs lose scheme and path', () => {
  for (const a of [undefined, '', 'docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/', 'https://registry-1.docker.io']) {
    expect(loginRegistry(a)).toBe('docker.io');
  }
  expect(loginRegistry('127.0.0.1:5000')).toBe('127.0.0.1:5000');
  expect(loginRegistry('http://127.0.0.1:5000/v2/')).toBe('127.0.0.1:5000');
  expect(loginRegistry('ghcr.io')).toBe('ghcr.io');
  expect(loginRegistry('myregistry')).toBe('myregistry');
  expect(loginRegistry('[::1]:5000')).toBe('[::1]:5000');
});

test('loginRegistry refuses what is not HOST[:PORT]', () => {
  for (const bad of ['bad host', 'a_b!', '-x.example', 'host:port']) expect(() => loginRegistry(bad)).toThrow(/is not a registry/);
});

test('--password-stdin strips one trailing newline (LF or CRLF), nothing else', () => {
  expect(passwordFromStdinText('pw\n')).toBe('pw');
  expect(passwordFromStdinText('pw\r\n')).toBe('pw');
  expect(passwordFromStdinText(' pw \n\n')).toBe(' pw \n');
  expect(passwordFromStdinText('pw')).toBe('pw');
});
