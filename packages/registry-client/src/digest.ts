import { createHash } from 'node:crypto';
import { InvalidDigestError } from './errors.js';

export type DigestAlgorithm = 'sha256' | 'sha512';

// go-digest's canonical forms: lowercase hex of the exact length for the algorithm.
const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/**
 * Validates a digest string. Only sha256/sha512 are accepted: they are the
 * algorithms the OCI image-spec registers, and accepting anything else would
 * mean storing blobs we cannot verify.
 */
export function parseDigest(d: string): { algorithm: DigestAlgorithm; hex: string } {
  const colon = d.indexOf(':');
  if (colon <= 0) throw new InvalidDigestError(`invalid digest "${truncate(d)}": missing algorithm`);
  const algorithm = d.slice(0, colon);
  const hex = d.slice(colon + 1);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new InvalidDigestError(`invalid digest "${truncate(d)}": unsupported algorithm "${truncate(algorithm)}"`);
  }
  const want = HEX_LENGTH[algorithm];
  if (hex.length !== want || !/^[a-f0-9]+$/.test(hex)) {
    throw new InvalidDigestError(`invalid digest "${truncate(d)}": ${algorithm} needs ${want} lowercase hex characters`);
  }
  return { algorithm, hex };
}

export function isValidDigest(d: string): boolean {
  try {
    parseDigest(d);
    return true;
  } catch {
    return false;
  }
}

/** Incremental hasher for the algorithm named by an expected digest. */
export function hasherFor(digest: string): { update(chunk: Uint8Array): void; digest(): string } {
  const { algorithm } = parseDigest(digest);
  const h = createHash(algorithm);
  return {
    update: (chunk) => void h.update(chunk),
    digest: () => `${algorithm}:${h.digest('hex')}`,
  };
}

export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
