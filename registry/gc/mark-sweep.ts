/**
 * Garbage collection's mark and sweep over the storage layout, driver-agnostic.
 *
 * Mark: in every repository, the roots are the tagged manifests (and every manifest revision unless
 * `deleteUntagged`); from each kept manifest it follows index children, config and layers, and the
 * referrers whose subject is kept. Sweep: untagged, unreferenced manifest revisions (with `deleteUntagged`),
 * then blob data that nothing marked and that is older than the grace period, with the `_layers` links
 * to it. Unlike CNCF Distribution it keeps the children of a kept index (distribution#3004) and the
 * referrers of kept manifests.
 */
import type { StorageDriver } from '../driver/driver.js';
import { PathNotFoundError } from '../driver/errors.js';
import { listRepositories } from '../storage/catalog.js';
import { parseDigest, type Digest } from '../storage/digest.js';
import { baseName, deleteIfPresent, listIfPresent, readLink } from '../storage/links.js';
import { parseManifest, storedMediaType } from '../storage/manifest.js';
import {
  blobDataPath,
  blobPath,
  blobsRoot,
  layerLinkPath,
  layersRoot,
  manifestRevisionLinkPath,
  manifestRevisionPath,
  manifestRevisionsRoot,
  referrersPath,
  tagCurrentLinkPath,
  tagsRoot,
  uploadsRoot,
} from '../storage/paths.js';

/** How a collection runs. */
export interface CollectOptions {
  readonly deleteUntagged: boolean;
  readonly dryRun: boolean;
  /** Blobs modified less than this long before the mark began are kept even when unmarked. */
  readonly gracePeriodMs: number;
  /** Uploads started longer ago than this are abandoned and purged (Distribution's uploadpurging age). */
  readonly uploadMaxAgeMs?: number;
  /** Reports progress lines. */
  readonly progress?: (message: string) => void;
  readonly now?: () => Date;
}

/** What a collection did (or, in a dry run, would do). */
export interface CollectResult {
  readonly uploadsPurged: string[];
  readonly manifestsDeleted: string[];
  readonly blobsDeleted: string[];
  readonly bytesFreed: number;
  readonly markSeconds: number;
  readonly sweepSeconds: number;
}

/** What the mark found. */
export interface MarkResult {
  /** Every blob digest to keep (manifests, configs, layers). */
  readonly blobs: Set<string>;
  /** Per repository, the manifest revisions to keep. */
  readonly manifests: Map<string, Set<string>>;
  /** Per repository, the manifest revisions to delete (untagged and unreferenced, with deleteUntagged). */
  readonly untagged: Map<string, string[]>;
  readonly startedAt: Date;
}

async function listDigests(driver: StorageDriver, root: string): Promise<Digest[]> {
  const digests: Digest[] = [];
  for (const algorithmDir of await listIfPresent(driver, root)) {
    for (const hexDir of await listIfPresent(driver, algorithmDir)) {
      try {
        digests.push(parseDigest(`${baseName(algorithmDir)}:${baseName(hexDir)}`));
      } catch {
        // not a digest directory: leave it alone
      }
    }
  }
  return digests;
}

/** Marks everything reachable from the roots of every repository. */
export async function mark(driver: StorageDriver, options: Pick<CollectOptions, 'deleteUntagged' | 'progress' | 'now'>): Promise<MarkResult> {
  const startedAt = (options.now ?? (() => new Date()))();
  const blobs = new Set<string>();
  const manifests = new Map<string, Set<string>>();
  const untagged = new Map<string, string[]>();
  const { names } = await listRepositories(driver, { limit: Number.MAX_SAFE_INTEGER });
  let done = 0;
  for (const name of names) {
    const kept = new Set<string>();
    // A revision counts only while its link file exists: Distribution deletes the link and leaves the directory.
    const revisions: Digest[] = [];
    for (const digest of await listDigests(driver, manifestRevisionsRoot(name))) {
      if ((await readLink(driver, manifestRevisionLinkPath(name, digest))) === digest) revisions.push(digest);
    }
    const roots = new Set<Digest>();
    const present = new Set<string>(revisions);
    for (const tagDir of await listIfPresent(driver, tagsRoot(name))) {
      const digest = await readLink(driver, tagCurrentLinkPath(name, baseName(tagDir)));
      // A tag pointing at a deleted revision does not keep it (as Distribution, and as a pull sees it).
      if (digest !== undefined && present.has(digest)) roots.add(digest);
    }
    if (!options.deleteUntagged) for (const digest of revisions) roots.add(digest);

    const visit = async (digest: Digest): Promise<void> => {
      if (kept.has(digest)) return;
      kept.add(digest);
      blobs.add(digest);
      let bytes: Buffer;
      try {
        bytes = await driver.getContent(blobDataPath(digest));
      } catch (error) {
        if (error instanceof PathNotFoundError) return;
        throw error;
      }
      try {
        const manifest = parseManifest(bytes, storedMediaType(bytes));
        for (const blob of manifest.blobs) blobs.add(blob.digest);
        for (const child of manifest.manifests) await visit(child.digest);
      } catch {
        // not a manifest we can read: keep its bytes, follow nothing
      }
      for (const referrer of await listDigests(driver, referrersPath(name, digest))) await visit(referrer);
    };
    for (const root of roots) await visit(root);
    manifests.set(name, kept);
    const unkept = revisions.filter((digest) => !kept.has(digest));
    if (unkept.length > 0) untagged.set(name, unkept);
    done++;
    if (done % 100 === 0 || done === names.length) options.progress?.(`marked ${done}/${names.length} repositories, ${blobs.size} blobs kept`);
  }
  return { blobs, manifests, untagged, startedAt };
}

/** Runs a whole collection: mark, then sweep unless `dryRun`. */
export async function collect(driver: StorageDriver, options: CollectOptions): Promise<CollectResult> {
  const markStarted = performance.now();
  const marked = await mark(driver, options);
  const markSeconds = (performance.now() - markStarted) / 1000;
  const sweepStarted = performance.now();
  const manifestsDeleted: string[] = [];
  for (const [name, digests] of marked.untagged) {
    for (const digest of digests) {
      manifestsDeleted.push(`${name}@${digest}`);
      if (!options.dryRun) await deleteIfPresent(driver, manifestRevisionPath(name, digest as Digest));
    }
  }
  const cutoff = marked.startedAt.getTime() - options.gracePeriodMs;
  const blobsDeleted: string[] = [];
  let bytesFreed = 0;
  for (const digest of await listBlobs(driver)) {
    if (marked.blobs.has(digest)) continue;
    let info;
    try {
      info = await driver.stat(blobDataPath(digest));
    } catch (error) {
      if (error instanceof PathNotFoundError) continue;
      throw error;
    }
    if (info.modTime.getTime() > cutoff) continue;
    blobsDeleted.push(digest);
    bytesFreed += info.size;
    if (!options.dryRun) await deleteIfPresent(driver, blobPath(digest));
  }
  if (!options.dryRun && blobsDeleted.length > 0) {
    const deleted = new Set(blobsDeleted);
    for (const name of marked.manifests.keys()) {
      for (const digest of await listDigests(driver, layersRoot(name))) {
        if (deleted.has(digest)) await deleteIfPresent(driver, layerLinkPath(name, digest).slice(0, -'/link'.length));
      }
    }
  }
  const uploadsPurged =
    options.uploadMaxAgeMs === undefined ? [] : await purgeUploads(driver, [...marked.manifests.keys()], marked.startedAt.getTime() - options.uploadMaxAgeMs, options.dryRun);
  options.progress?.(
    `${options.dryRun ? 'would delete' : 'deleted'} ${manifestsDeleted.length} manifests, ${blobsDeleted.length} blobs (${bytesFreed} bytes) and ${uploadsPurged.length} abandoned uploads`,
  );
  return { uploadsPurged, manifestsDeleted, blobsDeleted, bytesFreed, markSeconds, sweepSeconds: (performance.now() - sweepStarted) / 1000 };
}

/** Deletes uploads whose `startedat` is before `cutoff` (or unreadable and old); returns `name/id` of each. */
async function purgeUploads(driver: StorageDriver, names: string[], cutoff: number, dryRun: boolean): Promise<string[]> {
  const purged: string[] = [];
  for (const name of names) {
    for (const uploadDir of await listIfPresent(driver, uploadsRoot(name))) {
      let started: number;
      try {
        started = Date.parse((await driver.getContent(`${uploadDir}/startedat`)).toString('utf8'));
      } catch (error) {
        if (!(error instanceof PathNotFoundError)) throw error;
        started = Number.NaN;
      }
      if (Number.isNaN(started)) {
        // No start time (a process died before writing it): judge by the directory's data, if any.
        started = await driver.stat(`${uploadDir}/data`).then((info) => info.modTime.getTime(), () => 0);
      }
      if (started >= cutoff) continue;
      purged.push(`${name}/${baseName(uploadDir)}`);
      if (!dryRun) await deleteIfPresent(driver, uploadDir);
    }
  }
  return purged;
}

/** Every blob digest with data in the store. */
async function listBlobs(driver: StorageDriver): Promise<Digest[]> {
  const digests: Digest[] = [];
  for (const algorithmDir of await listIfPresent(driver, blobsRoot())) {
    for (const prefixDir of await listIfPresent(driver, algorithmDir)) {
      for (const hexDir of await listIfPresent(driver, prefixDir)) {
        try {
          digests.push(parseDigest(`${baseName(algorithmDir)}:${baseName(hexDir)}`));
        } catch {
          // a stray entry
        }
      }
    }
  }
  return digests;
}
