/**
 * The one walk every driver uses: depth first over `list` and `stat`, children in sorted order.
 */
import type { FileInfo, StorageDriver, WalkDecision } from './driver.js';
import { PathNotFoundError } from './errors.js';

/**
 * Visits every object and directory below `path` through the driver's own `list` and `stat`. Entries that
 * vanish while the walk runs are passed over; a visitor returning `'skip'` keeps the walk out of a directory.
 */
export async function walkByListing(
  driver: Pick<StorageDriver, 'list' | 'stat'>,
  path: string,
  visit: (info: FileInfo) => Promise<WalkDecision> | WalkDecision,
  signal?: AbortSignal,
): Promise<void> {
  for (const child of await driver.list(path, signal)) {
    signal?.throwIfAborted();
    let info: FileInfo;
    try {
      info = await driver.stat(child, signal);
    } catch (error) {
      if (error instanceof PathNotFoundError) continue;
      throw error;
    }
    const decision = await visit(info);
    if (info.isDir && decision !== 'skip') {
      try {
        await walkByListing(driver, child, visit, signal);
      } catch (error) {
        if (!(error instanceof PathNotFoundError)) throw error;
      }
    }
  }
}
