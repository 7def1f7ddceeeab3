/**
 * Link objects: one small object that holds a digest, Distribution's way of recording set membership
 * and pointers (`_layers`, revisions, tags).
 */
import type { StorageDriver } from '../driver/driver.js';
import { PathNotFoundError } from '../driver/errors.js';
import { parseDigest, type Digest } from './digest.js';

/** Reads a link; returns undefined when it does not exist, and treats a corrupt link as absent. */
export async function readLink(driver: StorageDriver, path: string, signal?: AbortSignal): Promise<Digest | undefined> {
  try {
    const content = await driver.getContent(path, signal);
    return parseDigest(content.toString('utf8').trim());
  } catch (error) {
    if (error instanceof PathNotFoundError) return undefined;
    if (error instanceof Error && error.name === 'DigestInvalidError') return undefined;
    throw error;
  }
}

/** Writes a link in one atomic put, exactly as Distribution does (the digest, no newline). */
export function writeLink(driver: StorageDriver, path: string, digest: Digest, signal?: AbortSignal): Promise<void> {
  return driver.putContent(path, Buffer.from(digest, 'utf8'), signal);
}

/** Deletes an object or directory; returns false when it was already gone. */
export async function deleteIfPresent(driver: StorageDriver, path: string, signal?: AbortSignal): Promise<boolean> {
  try {
    await driver.delete(path, signal);
    return true;
  } catch (error) {
    if (error instanceof PathNotFoundError) return false;
    throw error;
  }
}

/** Lists a directory; returns an empty list when it does not exist. */
export async function listIfPresent(driver: StorageDriver, path: string, signal?: AbortSignal): Promise<string[]> {
  try {
    return await driver.list(path, signal);
  } catch (error) {
    if (error instanceof PathNotFoundError) return [];
    throw error;
  }
}

/** Returns the last component of a path. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
