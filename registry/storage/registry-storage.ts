/**
 * The storage services of one registry, composed over one storage driver.
 */
import type { StorageDriver } from '../driver/driver.js';
import { BlobStore } from './blob-store.js';
import { listRepositories } from './catalog.js';
import { ManifestStore } from './manifest-store.js';
import { UploadStore, type UploadObserver } from './upload-store.js';
import { STRONGLY_CONSISTENT, type VisibilityPolicy } from './visibility.js';
import { NO_JOURNAL, type WriteJournal } from './write-journal.js';

/** Blobs, uploads, manifests, tags, referrers and the catalog over one driver. */
export class RegistryStorage {
  readonly blobs: BlobStore;
  readonly uploads: UploadStore;
  readonly manifests: ManifestStore;

  /**
   * `visibility` says how long to wait for objects the registry knows were written but cannot see yet, and
   * `pullVisibility` how long a pull waits for an object that may not exist: STRONGLY_CONSISTENT for a
   * filesystem, OBJECT_STORE and OBJECT_STORE_PULL for S3. `journal` hears of every write that can make a
   * blob or manifest reachable, for garbage collection.
   */
  constructor(
    readonly driver: StorageDriver,
    options: { observer?: UploadObserver; visibility?: VisibilityPolicy; pullVisibility?: VisibilityPolicy; journal?: WriteJournal } = {},
  ) {
    const visibility = options.visibility ?? STRONGLY_CONSISTENT;
    const pullVisibility = options.pullVisibility ?? visibility;
    const journal = options.journal ?? NO_JOURNAL;
    this.blobs = new BlobStore(driver, pullVisibility, journal);
    this.uploads = new UploadStore(driver, this.blobs, options.observer, visibility);
    this.manifests = new ManifestStore(driver, this.blobs, visibility, pullVisibility, journal);
  }

  /** Lists repository names in lexical order, after `last`, at most `limit`. */
  catalog(options: { last?: string; limit: number; signal?: AbortSignal }): Promise<{ names: string[]; more: boolean }> {
    return listRepositories(this.driver, options);
  }
}
