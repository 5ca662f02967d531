/**
 * The layer downloads of one pull that a base layer can be unpacked from
 * while its bytes arrive (RegistryClient.downloadLayers' `onIngest`), so a
 * cold build unpacks layer 1 during the download instead of after it.
 */
import type { IngestWriter } from '@stowage/registry-client';

export class DownloadFeeds {
  private readonly writers = new Map<string, IngestWriter>();
  private readonly waiting = new Map<string, (() => void)[]>();

  /** For `onIngest`: the download of `digest` writes through `writer` (a later call replaces it: another endpoint). */
  readonly started = (digest: string, writer: IngestWriter): void => {
    this.writers.set(digest, writer);
    const waiting = this.waiting.get(digest) ?? [];
    this.waiting.delete(digest);
    for (const w of waiting) w();
  };

  /**
   * The bytes of `digest` as they download, once its download has started;
   * undefined when `download` settles first (already stored, fetched by
   * another process, or failed: the caller awaits it and reads the store).
   */
  async follow(digest: string, download: Promise<void>): Promise<AsyncIterable<Buffer> | undefined> {
    const settled = download.then(() => true, () => true);
    for (;;) {
      const writer = this.writers.get(digest);
      // A finished writer is either in the store already or replaced by the next endpoint's soon.
      if (writer && !writer.finished) return writer.follow();
      const arrived = new Promise<boolean>((resolve) => {
        const list = this.waiting.get(digest) ?? [];
        list.push(() => resolve(false));
        this.waiting.set(digest, list);
      });
      if (await Promise.race([settled, arrived])) return undefined;
    }
  }
}
