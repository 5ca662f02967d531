/**
 * Platform normalisation and matching, following containerd's `platforms`
 * package: architecture aliases are folded, and variants are compared as
 * "can this machine run that binary" (an armv7 host runs v6 and v5 images,
 * arm64 without a variant means v8).
 */
import type { Platform } from './types.js';

export function hostPlatform(): Platform {
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  switch (process.arch) {
    case 'x64':
      return { os, architecture: 'amd64' };
    case 'arm64':
      return { os, architecture: 'arm64', variant: 'v8' };
    case 'arm':
      // Node does not expose the ARM level reliably; v7 is what every
      // supported Node build for 32-bit ARM targets.
      return { os, architecture: 'arm', variant: 'v7' };
    case 'ia32':
      return { os, architecture: '386' };
    default:
      // ppc64 (Node only ships little-endian), s390x, riscv64, loong64, mips…
      return { os, architecture: process.arch === 'ppc64' ? 'ppc64le' : process.arch };
  }
}

/** Folds aliases so that comparisons are purely structural. */
export function normalizePlatform(p: Platform): Platform {
  let os = p.os.toLowerCase();
  if (os === 'macos') os = 'darwin';
  let arch = p.architecture.toLowerCase();
  let variant = (p.variant ?? '').toLowerCase();
  switch (arch) {
    case 'i386':
      arch = '386';
      variant = '';
      break;
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      arch = 'amd64';
      if (variant === 'v1') variant = '';
      break;
    case 'aarch64':
    case 'arm64':
      arch = 'arm64';
      if (variant === '8' || variant === 'v8' || variant === '') variant = 'v8';
      break;
    case 'armhf':
      arch = 'arm';
      variant = 'v7';
      break;
    case 'armel':
      arch = 'arm';
      variant = 'v6';
      break;
    case 'arm':
      if (variant === '') variant = 'v7';
      else if (/^[5-8]$/.test(variant)) variant = `v${variant}`;
      break;
  }
  const out: Platform = { os, architecture: arch };
  if (variant !== '') out.variant = variant;
  if (p['os.version'] !== undefined) out['os.version'] = p['os.version'];
  if (p['os.features'] !== undefined) out['os.features'] = p['os.features'];
  return out;
}

function variantLevel(v: string | undefined, fallback: number): number {
  if (v === undefined || v === '') return fallback;
  const m = /^v(\d+)$/.exec(v);
  return m ? Number(m[1]) : Number.NaN;
}

/**
 * Whether an image built for `have` runs on a machine described by `want`.
 * os and architecture must be equal after normalisation; variants follow
 * backwards compatibility for arm (v8 ⊇ v7 ⊇ v6 ⊇ v5) and amd64 microarch
 * levels (v4 ⊇ v3 ⊇ v2 ⊇ v1 = ''), and must be equal elsewhere.
 */
export function platformMatches(want: Platform, have: Platform): boolean {
  return platformScore(want, have) > 0;
}

/**
 * 0 = no match; higher is better. Exact variant beats a compatible older one,
 * and among compatible ones the newest wins (more optimised code).
 */
export function platformScore(want: Platform, have: Platform): number {
  const w = normalizePlatform(want);
  const h = normalizePlatform(have);
  if (w.os !== h.os || w.architecture !== h.architecture) return 0;
  if ((w.variant ?? '') === (h.variant ?? '')) return 1000;
  if (w.architecture === 'arm' || w.architecture === 'amd64') {
    const fallback = w.architecture === 'arm' ? 7 : 1;
    const wl = variantLevel(w.variant, fallback);
    const hl = variantLevel(h.variant, fallback);
    if (Number.isNaN(wl) || Number.isNaN(hl) || hl > wl) return 0;
    return hl === wl ? 1000 : 100 + hl;
  }
  return 0;
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}
