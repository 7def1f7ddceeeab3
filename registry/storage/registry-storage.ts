/**
 * The storage services of one registry, composed over one storage driver.
 */
import type { StorageDriver } from '../driver/driver.js';
import { BlobStore } from './blob-store.js';
import { listRepositories } from './catalog.js';
import { ManifestStore } from './manifest-store.js';
import { UploadStore, type UploadObserver } from './upload-store.js';

/** Blobs, uploads, manifests, tags, referrers and the catalog over one driver. */
export class RegistryStorage {
  readonly blobs: BlobStore;
  readonly uploads: UploadStore;
  readonly manifests: ManifestStore;

  constructor(
    readonly driver: StorageDriver,
    observer: UploadObserver = {},
  ) {
    this.blobs = new BlobStore(driver);
    this.uploads = new UploadStore(driver, this.blobs, observer);
    this.manifests = new ManifestStore(driver, this.blobs);
  }

  /** Lists repository names in lexical order, after `last`, at most `limit`. */
  catalog(options: { last?: string; limit: number; signal?: AbortSignal }): Promise<{ names: string[]; more: boolean }> {
    return listRepositories(this.driver, options);
  }
}
