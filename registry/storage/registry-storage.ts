/**
 * The storage services of one registry, composed over one storage driver.
 */
import type { StorageDriver } from '../driver/driver.js';
import { BlobStore } from './blob-store.js';
import { listRepositories } from './catalog.js';
import { ManifestStore } from './manifest-store.js';
import { UploadStore, type UploadObserver } from './upload-store.js';
import { STRONGLY_CONSISTENT, type VisibilityPolicy } from './visibility.js';

/** Blobs, uploads, manifests, tags, referrers and the catalog over one driver. */
export class RegistryStorage {
  readonly blobs: BlobStore;
  readonly uploads: UploadStore;
  readonly manifests: ManifestStore;

  /**
   * `visibility` says how long to wait for objects that should exist but are not visible yet:
   * STRONGLY_CONSISTENT for a filesystem, OBJECT_STORE for S3.
   */
  constructor(
    readonly driver: StorageDriver,
    options: { observer?: UploadObserver; visibility?: VisibilityPolicy } = {},
  ) {
    const visibility = options.visibility ?? STRONGLY_CONSISTENT;
    this.blobs = new BlobStore(driver, visibility);
    this.uploads = new UploadStore(driver, this.blobs, options.observer, visibility);
    this.manifests = new ManifestStore(driver, this.blobs, visibility);
  }

  /** Lists repository names in lexical order, after `last`, at most `limit`. */
  catalog(options: { last?: string; limit: number; signal?: AbortSignal }): Promise<{ names: string[]; more: boolean }> {
    return listRepositories(this.driver, options);
  }
}
