import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/**
 * Whether `address` reaches only this machine or its link: loopback
 * (127.0.0.0/8, ::1), unspecified (0.0.0.0, ::, which connect to loopback),
 * link-local (169.254.0.0/16: cloud metadata services answer there with the
 * runner's credentials; fe80::/10), and IPv4 written as IPv6 (::ffff:a.b.c.d).
 */
export function isHostOnlyAddress(address: string): boolean {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1] ?? address;
  if (isIP(v4) === 4) {
    const [a, b] = v4.split('.').map(Number) as [number, number];
    return a === 127 || a === 0 || (a === 169 && b === 254);
  }
  const v6 = address.toLowerCase();
  return v6 === '::1' || v6 === '::' || /^fe[89ab][0-9a-f]:/.test(v6);
}

/**
 * Why the builder must not fetch from `host` for a Dockerfile, or undefined
 * when it may: ADD <url> and ADD <git> are fetched by stowage itself on the
 * host's network (as BuildKit's daemon fetches them), so without this a
 * Dockerfile could copy what a service on the runner's 127.0.0.1 or the
 * cloud metadata address answers into the image. Every address the name
 * resolves to is checked; a name that does not resolve is left to the fetch
 * to report. Not closed: a name that resolves elsewhere now and to loopback
 * when the fetch resolves it again (DNS rebinding) — Node's fetch offers no
 * way to pin the address.
 */
export async function hostOnlyReason(host: string): Promise<string | undefined> {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  let addresses: string[];
  try {
    addresses = isIP(bare) ? [bare] : (await lookup(bare, { all: true, verbatim: true })).map((a) => a.address);
  } catch {
    return undefined;
  }
  const local = addresses.find(isHostOnlyAddress);
  if (local === undefined) return undefined;
  return `${bare}${local === bare ? '' : ` (${local})`} is a loopback or link-local address, reachable only from this machine: a Dockerfile may not fetch from it; pass --allow network.host (or build with --network host) to grant it`;
}
