/**
 * The docker-credential-helpers protocol: `docker-credential-<name> ACTION`,
 * the request on stdin, the answer on stdout.
 *
 *   get    stdin: server URL            stdout: {"ServerURL","Username","Secret"}
 *   store  stdin: {"ServerURL","Username","Secret"}
 *   erase  stdin: server URL
 *
 * A helper that does not know the server exits non-zero and prints
 * "credentials not found in native keychain". Secrets travel only over the
 * pipes; nothing here puts one in an argument, the environment or a message
 * (a helper's own error output is scrubbed of the secret before we quote it).
 */
import { spawn } from 'node:child_process';
import { CredentialStoreError } from '../errors.js';
import type { Credentials } from './docker-config.js';

const HELPER_TIMEOUT_MS = 15_000;
const OUTPUT_LIMIT = 1 << 20;
/** What Docker's helpers print (on stdout) for an unknown server. */
export const CREDENTIALS_NOT_FOUND = 'credentials not found in native keychain';
/** Docker's convention: this username marks the secret as an identity (refresh) token. */
export const IDENTITY_TOKEN_USERNAME = '<token>';

interface HelperResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the helper could not be started or timed out. */
  failure?: string;
}

/** Config text names the helper; it must stay a name, never a path or option. */
export function isValidHelperName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name);
}

function runHelper(helper: string, action: 'get' | 'store' | 'erase', input: string): Promise<HelperResult> {
  if (!isValidHelperName(helper)) return Promise.resolve({ code: null, stdout: '', stderr: '', failure: `invalid credential helper name "${helper.slice(0, 60)}"` });
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let settled = false;
    const finish = (r: HelperResult): void => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(r);
      }
    };
    // env passed explicitly so PATH is the one this code sees (matters under test runners with sandboxed env).
    const child = spawn(`docker-credential-${helper}`, [action], { stdio: ['pipe', 'pipe', 'pipe'], env: process.env });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish({ code: null, stdout, stderr, failure: `docker-credential-${helper} ${action} timed out after ${HELPER_TIMEOUT_MS / 1000} s` });
    }, HELPER_TIMEOUT_MS);
    child.on('error', (err: NodeJS.ErrnoException) =>
      finish({ code: null, stdout, stderr, failure: err.code === 'ENOENT' ? `docker-credential-${helper} not found in PATH` : `docker-credential-${helper}: ${err.message}` }),
    );
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      if (stdout.length < OUTPUT_LIMIT) stdout += d;
    });
    child.stderr.on('data', (d: string) => {
      if (stderr.length < OUTPUT_LIMIT) stderr += d;
    });
    child.on('close', (code) => finish({ code, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The helper's complaint, one line, without any secret we gave it. */
function complaint(r: HelperResult, secrets: string[]): string {
  let text = r.failure ?? (r.stdout.trim() || r.stderr.trim() || `exit code ${r.code}`);
  for (const s of secrets) if (s !== '') text = text.split(s).join('<redacted>');
  return text.split('\n')[0]!.slice(0, 200);
}

/**
 * `get`. A helper that is missing, fails or does not know the server yields
 * undefined rather than an error: anonymous pulls must keep working.
 */
export async function helperGet(helper: string, serverUrl: string): Promise<Credentials | undefined> {
  const r = await runHelper(helper, 'get', serverUrl);
  if (r.code !== 0) return undefined;
  try {
    const parsed: unknown = JSON.parse(r.stdout);
    if (!isRecord(parsed)) return undefined;
    const username = typeof parsed['Username'] === 'string' && parsed['Username'] !== '' ? parsed['Username'] : undefined;
    const secret = typeof parsed['Secret'] === 'string' && parsed['Secret'] !== '' ? parsed['Secret'] : undefined;
    if (secret === undefined) return undefined;
    if (username === IDENTITY_TOKEN_USERNAME) return { identityToken: secret };
    return username !== undefined ? { username, password: secret } : undefined;
  } catch {
    return undefined;
  }
}

/** `store`, as Docker does it: an identity token goes in with the username `<token>`. */
export async function helperStore(helper: string, serverUrl: string, creds: Credentials): Promise<void> {
  const secret = creds.identityToken ?? creds.password;
  if (secret === undefined || secret === '') throw new CredentialStoreError(`docker-credential-${helper} store: no secret to store for ${serverUrl}`);
  const username = creds.identityToken !== undefined ? IDENTITY_TOKEN_USERNAME : (creds.username ?? '');
  const r = await runHelper(helper, 'store', JSON.stringify({ ServerURL: serverUrl, Username: username, Secret: secret }));
  if (r.code !== 0) {
    throw new CredentialStoreError(`docker-credential-${helper} store for ${serverUrl} failed: ${complaint(r, [secret, creds.password ?? ''])}`);
  }
}

/** `erase`. Returns false when the helper had nothing for the server. */
export async function helperErase(helper: string, serverUrl: string): Promise<boolean> {
  const r = await runHelper(helper, 'erase', serverUrl);
  if (r.code === 0) return true;
  if (r.failure === undefined && `${r.stdout}\n${r.stderr}`.includes(CREDENTIALS_NOT_FOUND)) return false;
  throw new CredentialStoreError(`docker-credential-${helper} erase for ${serverUrl} failed: ${complaint(r, [])}`);
}
