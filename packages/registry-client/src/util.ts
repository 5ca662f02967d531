/** Small helpers shared by the pull and push paths (and the transport). */

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The first 12 hex digits of a digest, as progress lines show it. */
export function shortDigest(d: string): string {
  const colon = d.indexOf(':');
  return colon === -1 ? d : d.slice(colon + 1, colon + 13);
}

export function humanSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Belt and braces: whatever reaches a log line or error detail, no auth header value survives. */
export function scrubSecrets(s: string): string {
  return s.replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, '$1 <redacted>');
}

/**
 * Runs `fn` over `items`, at most `concurrency` at a time. After the first
 * failure no new item starts, but running ones finish cleanly; then the
 * failure is thrown.
 */
export async function mapPool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  if (failure !== undefined) throw failure.error;
}
