/**
 * Blobs of a repository: whether a blob is linked into it, serving its bytes, linking and unlinking.
 * Blob data is shared by every repository and stored once by digest.
 */
import type { Readable } from 'node:stream';
import type { StorageDriver } from '../driver/driver.js';
import { PathNotFoundError } from '../driver/errors.js';
import type { Digest } from './digest.js';
import { BlobUnknownError } from './errors.js';
import { deleteIfPresent, readLink, writeLink } from './links.js';
import { blobDataPath, layerLinkPath } from './paths.js';
import { STRONGLY_CONSISTENT, readUntil, type VisibilityPolicy } from './visibility.js';
import { NO_JOURNAL, type WriteJournal } from './write-journal.js';

/** What the registry knows of a stored blob. */
export interface BlobInfo {
  readonly digest: Digest;
  readonly size: number;
}

/** Reads and links blobs. */
export class BlobStore {
  constructor(
    private readonly driver: StorageDriver,
    private readonly visibility: VisibilityPolicy = STRONGLY_CONSISTENT,
    private readonly journal: WriteJournal = NO_JOURNAL,
  ) {}

  /** Returns the size of blob data stored under a digest in any repository, or undefined if there is none. */
  async statData(digest: Digest, signal?: AbortSignal): Promise<BlobInfo | undefined> {
    try {
      const info = await this.driver.stat(blobDataPath(digest), signal);
      return info.isDir ? undefined : { digest, size: info.size };
    } catch (error) {
      if (error instanceof PathNotFoundError) return undefined;
      throw error;
    }
  }

  /**
   * Returns a blob linked into the repository; throws BlobUnknownError when it is not linked or has no data.
   * With `wait`, a blob that is not visible yet is looked for again (a pull right after a push elsewhere).
   */
  async stat(name: string, digest: Digest, signal?: AbortSignal, wait = false): Promise<BlobInfo> {
    const once = () => this.statOnce(name, digest, signal);
    const info = wait ? await readUntil(this.visibility, once, (found) => found !== undefined, signal) : await once();
    if (info === undefined) throw new BlobUnknownError(`blob ${digest} is not known to repository ${name}`, { detail: { digest } });
    this.journal.observe({ kind: 'blob', name, digest });
    return info;
  }

  private async statOnce(name: string, digest: Digest, signal?: AbortSignal): Promise<BlobInfo | undefined> {
    const linked = await readLink(this.driver, layerLinkPath(name, digest), signal);
    if (linked !== digest) return undefined;
    return this.statData(digest, signal);
  }

  /** Returns true when the repository has the blob. */
  async exists(name: string, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.stat(name, digest, signal);
      return true;
    } catch (error) {
      if (error instanceof BlobUnknownError) return false;
      throw error;
    }
  }

  /** Opens a stream over a blob's bytes, `length` bytes from `offset`. */
  async open(digest: Digest, offset: number, length: number, signal?: AbortSignal): Promise<Readable> {
    try {
      return await this.driver.reader(blobDataPath(digest), offset, length, signal);
    } catch (error) {
      if (error instanceof PathNotFoundError) throw new BlobUnknownError(`blob ${digest} is gone`, { detail: { digest } });
      throw error;
    }
  }

  /** Returns a URL the client may fetch the blob from directly, if the driver offers one. */
  redirectURL(method: 'GET' | 'HEAD', digest: Digest): Promise<string | null> {
    return this.driver.redirectURL(method, blobDataPath(digest));
  }

  /** Links stored blob data into a repository (cross-repository mount, upload commit). */
  async link(name: string, digest: Digest, signal?: AbortSignal): Promise<void> {
    await this.journal.record({ kind: 'blob', name, digest }, signal);
    await writeLink(this.driver, layerLinkPath(name, digest), digest, signal);
  }

  /** Unlinks a blob from a repository; the data stays for garbage collection. Throws BlobUnknownError if not linked. */
  async unlink(name: string, digest: Digest, signal?: AbortSignal): Promise<void> {
    const path = layerLinkPath(name, digest);
    if (!(await deleteIfPresent(this.driver, path.slice(0, -'/link'.length), signal))) {
      throw new BlobUnknownError(`blob ${digest} is not known to repository ${name}`, { detail: { digest } });
    }
  }
}
