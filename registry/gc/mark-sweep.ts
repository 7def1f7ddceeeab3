/**
 * Garbage collection's mark and sweep over the storage layout, driver-agnostic.
 *
 * Mark: in every repository, the roots are the tagged manifests (and every manifest revision unless
 * `deleteUntagged`); from each kept manifest it follows index children, config and layers, and the
 * referrers whose subject is kept. Repositories are marked in parallel with bounded concurrency. Sweep:
 * untagged, unreferenced manifest revisions (with `deleteUntagged`) and their tag index entries, then blob
 * data that nothing marked and that is older than the grace period, with the `_layers` links to it. Unlike
 * CNCF Distribution it keeps the children of a kept index (distribution#3004) and the referrers of kept
 * manifests.
 *
 * The pieces are separate so the collector (collector.ts) can mark online, re-mark what the replicas'
 * journal says was written meanwhile, and sweep inside a short read-only window; `collect` runs them back to
 * back for a store no registry is writing to.
 */
import pLimit, { type LimitFunction } from 'p-limit';
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
  tagIndexLinkPath,
  tagsRoot,
  uploadsRoot,
} from '../storage/paths.js';
import type { JournalEntry } from '../storage/write-journal.js';

/** How a collection runs. */
export interface CollectOptions {
  readonly deleteUntagged: boolean;
  readonly dryRun: boolean;
  /** Blobs modified less than this long before the mark began are kept even when unmarked. */
  readonly gracePeriodMs: number;
  /** Uploads started longer ago than this are abandoned and purged (Distribution's uploadpurging age). */
  readonly uploadMaxAgeMs?: number;
  /** Storage requests in flight at once while marking and sweeping (default 16). */
  readonly concurrency?: number;
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

/** What is to be deleted: computed after the mark, trimmed by the re-mark. */
export interface Candidates {
  /** Unmarked blobs older than the cutoff, with their sizes. */
  readonly blobs: Map<Digest, number>;
  /** Per repository, the manifest revisions to delete (untagged and unreferenced, with deleteUntagged). */
  readonly manifests: Map<string, Set<Digest>>;
}

/** Marks reachable content, once over the whole store and then again for single journaled references. */
export class Marker {
  /** Every blob digest to keep (manifests, configs, layers). */
  readonly blobs = new Set<Digest>();
  /** Per repository, the manifest revisions kept. */
  readonly manifests = new Map<string, Set<Digest>>();
  /** Per repository, revisions that exist and are not kept (deleteUntagged only). */
  readonly untagged = new Map<string, Set<Digest>>();
  /** Per repository, the blobs linked into it (`_layers`), so a sweep deletes links without listing again. */
  readonly layerLinks = new Map<string, Set<Digest>>();
  /** Per repository and tag, the digests in the tag's index, so a sweep deletes entries without listing again. */
  readonly tagIndex = new Map<string, Map<string, Set<Digest>>>();
  private readonly io: LimitFunction;

  constructor(
    private readonly driver: StorageDriver,
    private readonly options: Pick<CollectOptions, 'deleteUntagged' | 'progress' | 'concurrency'>,
  ) {
    this.io = pLimit(options.concurrency ?? 16);
  }

  /** Marks everything reachable from the roots of every repository. */
  async markAll(): Promise<void> {
    const { names } = await listRepositories(this.driver, { limit: Number.MAX_SAFE_INTEGER });
    const repositories = pLimit(Math.max(1, Math.ceil((this.options.concurrency ?? 16) / 4)));
    let done = 0;
    await Promise.all(
      names.map((name) =>
        repositories(async () => {
          await this.markRepository(name);
          done++;
          if (done % 100 === 0 || done === names.length) {
            this.options.progress?.(`marked ${done}/${names.length} repositories, ${this.blobs.size} blobs kept`);
          }
        }),
      ),
    );
  }

  /** Marks one journaled reference: a blob is kept; a manifest is kept with everything it reaches. */
  async remark(entry: JournalEntry): Promise<void> {
    if (entry.kind === 'blob') {
      this.blobs.add(entry.digest);
      return;
    }
    await this.visit(entry.name, entry.digest);
  }

  private async markRepository(name: string): Promise<void> {
    const read = <T>(fn: () => Promise<T>) => this.io(fn);
    // A revision counts only while its link file exists: Distribution deletes the link and leaves the directory.
    const listed = await read(() => listDigests(this.driver, manifestRevisionsRoot(name)));
    const linked = await Promise.all(listed.map((digest) => read(() => readLink(this.driver, manifestRevisionLinkPath(name, digest)))));
    const revisions = listed.filter((digest, i) => linked[i] === digest);
    const present = new Set<Digest>(revisions);
    const roots = new Set<Digest>();
    const tagDirs = await read(() => listIfPresent(this.driver, tagsRoot(name)));
    const tagIndex = new Map<string, Set<Digest>>();
    await Promise.all(
      tagDirs.map(async (tagDir) => {
        const tag = baseName(tagDir);
        const digest = await read(() => readLink(this.driver, tagCurrentLinkPath(name, tag)));
        // A tag pointing at a deleted revision does not keep it (as Distribution, and as a pull sees it).
        if (digest !== undefined && present.has(digest)) roots.add(digest);
        if (this.options.deleteUntagged) tagIndex.set(tag, new Set(await read(() => listDigests(this.driver, `${tagDir}/index`))));
      }),
    );
    this.tagIndex.set(name, tagIndex);
    if (!this.options.deleteUntagged) for (const digest of revisions) roots.add(digest);
    this.layerLinks.set(name, new Set(await read(() => listDigests(this.driver, layersRoot(name)))));
    await Promise.all([...roots].map((root) => this.visit(name, root)));
    const kept = this.keptIn(name);
    this.untagged.set(name, new Set(revisions.filter((digest) => !kept.has(digest))));
  }

  private keptIn(name: string): Set<Digest> {
    let kept = this.manifests.get(name);
    if (kept === undefined) {
      kept = new Set();
      this.manifests.set(name, kept);
    }
    return kept;
  }

  /** Keeps a manifest of a repository and, recursively, what it references and its referrers. */
  private async visit(name: string, digest: Digest): Promise<void> {
    const kept = this.keptIn(name);
    if (kept.has(digest)) return;
    kept.add(digest);
    this.untagged.get(name)?.delete(digest);
    this.blobs.add(digest);
    let bytes: Buffer | undefined;
    try {
      bytes = await this.io(() => this.driver.getContent(blobDataPath(digest)));
    } catch (error) {
      if (!(error instanceof PathNotFoundError)) throw error;
    }
    const children: Digest[] = [];
    if (bytes !== undefined) {
      try {
        const manifest = parseManifest(bytes, storedMediaType(bytes));
        for (const blob of manifest.blobs) this.blobs.add(blob.digest);
        children.push(...manifest.manifests.map((child) => child.digest));
      } catch {
        // not a manifest we can read: keep its bytes, follow nothing
      }
    }
    children.push(...(await this.io(() => listDigests(this.driver, referrersPath(name, digest)))));
    await Promise.all(children.map((child) => this.visit(name, child)));
  }
}

/** Lists the `<algorithm>/<hex>` digest directories under a root. */
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

/** Finds the candidates: untagged revisions, and unmarked blobs last modified before `cutoff`. */
export async function findCandidates(driver: StorageDriver, marker: Marker, cutoff: Date, concurrency = 16): Promise<Candidates> {
  const io = pLimit(concurrency);
  const blobs = new Map<Digest, number>();
  const unmarked = (await listBlobs(driver, concurrency)).filter((digest) => !marker.blobs.has(digest));
  await Promise.all(
    unmarked.map((digest) =>
      io(async () => {
        try {
          const info = await driver.stat(blobDataPath(digest));
          if (info.modTime.getTime() <= cutoff.getTime()) blobs.set(digest, info.size);
        } catch (error) {
          if (!(error instanceof PathNotFoundError)) throw error;
        }
      }),
    ),
  );
  const manifests = new Map<string, Set<Digest>>();
  for (const [name, digests] of marker.untagged) if (digests.size > 0) manifests.set(name, new Set(digests));
  return { blobs, manifests };
}

/** Drops from the candidates whatever the marker has kept since they were found (after a re-mark). */
export function dropMarked(candidates: Candidates, marker: Marker): void {
  for (const digest of candidates.blobs.keys()) if (marker.blobs.has(digest)) candidates.blobs.delete(digest);
  for (const [name, digests] of candidates.manifests) {
    const kept = marker.manifests.get(name);
    for (const digest of digests) if (kept?.has(digest) === true) digests.delete(digest);
  }
}

/** What a sweep deleted. */
export interface SweepResult {
  readonly manifestsDeleted: string[];
  readonly blobsDeleted: string[];
  readonly bytesFreed: number;
}

/**
 * Deletes the candidates: manifest revisions with their tag index entries, blob data, and the `_layers`
 * links the mark found to deleted blobs. Its cost follows the number of candidates, not the store's size.
 */
export async function sweep(driver: StorageDriver, candidates: Candidates, marker: Marker, concurrency = 16): Promise<SweepResult> {
  const io = pLimit(concurrency);
  const deletes: Promise<unknown>[] = [];
  const manifestsDeleted: string[] = [];
  for (const [name, digests] of candidates.manifests) {
    for (const digest of digests) {
      manifestsDeleted.push(`${name}@${digest}`);
      deletes.push(io(() => deleteIfPresent(driver, manifestRevisionPath(name, digest))));
      for (const [tag, indexed] of marker.tagIndex.get(name) ?? []) {
        if (indexed.has(digest)) deletes.push(io(() => deleteIfPresent(driver, tagIndexLinkPath(name, tag, digest).slice(0, -'/link'.length))));
      }
    }
  }
  let bytesFreed = 0;
  for (const [digest, size] of candidates.blobs) {
    bytesFreed += size;
    deletes.push(io(() => deleteIfPresent(driver, blobPath(digest))));
    for (const [name, linked] of marker.layerLinks) {
      if (linked.has(digest)) deletes.push(io(() => deleteIfPresent(driver, layerLinkPath(name, digest).slice(0, -'/link'.length))));
    }
  }
  await Promise.all(deletes);
  return { manifestsDeleted, blobsDeleted: [...candidates.blobs.keys()], bytesFreed };
}

/** What an online mark found: the marker (for a re-mark), the candidates, when it began and how long it took. */
export interface Marked {
  readonly marker: Marker;
  readonly candidates: Candidates;
  readonly startedAt: Date;
  readonly markSeconds: number;
}

/** Marks the whole store and finds the candidates older than the grace period before the mark's start. */
export async function markAndFindCandidates(driver: StorageDriver, options: CollectOptions): Promise<Marked> {
  const markStarted = performance.now();
  const startedAt = (options.now ?? (() => new Date()))();
  const marker = new Marker(driver, options);
  await marker.markAll();
  const candidates = await findCandidates(driver, marker, new Date(startedAt.getTime() - options.gracePeriodMs), options.concurrency);
  return { marker, candidates, startedAt, markSeconds: (performance.now() - markStarted) / 1000 };
}

/** Runs a whole collection on a store no registry writes to: mark, then sweep unless `dryRun`. */
export async function collect(driver: StorageDriver, options: CollectOptions): Promise<CollectResult> {
  const { marker, candidates, startedAt, markSeconds } = await markAndFindCandidates(driver, options);
  const sweepStarted = performance.now();
  const swept = options.dryRun ? describeCandidates(candidates) : await sweep(driver, candidates, marker, options.concurrency);
  const uploadsPurged = await purgeOldUploads(driver, options, startedAt);
  reportSweep(options, swept, uploadsPurged);
  return { ...swept, uploadsPurged, markSeconds, sweepSeconds: (performance.now() - sweepStarted) / 1000 };
}

/** What a sweep of the candidates would delete, without deleting anything. */
export function describeCandidates(candidates: Candidates): SweepResult {
  const manifestsDeleted = [...candidates.manifests].flatMap(([name, digests]) => [...digests].map((digest) => `${name}@${digest}`));
  let bytesFreed = 0;
  for (const size of candidates.blobs.values()) bytesFreed += size;
  return { manifestsDeleted, blobsDeleted: [...candidates.blobs.keys()], bytesFreed };
}

/** Reports what a sweep did (or would do) as one progress line. */
export function reportSweep(options: Pick<CollectOptions, 'dryRun' | 'progress'>, swept: SweepResult, uploadsPurged: readonly string[]): void {
  options.progress?.(
    `${options.dryRun ? 'would delete' : 'deleted'} ${swept.manifestsDeleted.length} manifests, ${swept.blobsDeleted.length} blobs (${swept.bytesFreed} bytes) and ${uploadsPurged.length} abandoned uploads`,
  );
}

/**
 * Purges uploads older than `uploadMaxAgeMs` before `startedAt`, when purging is configured, and what
 * interrupted writes left in the driver (temporary files, incomplete multipart uploads) older than that too.
 */
export async function purgeOldUploads(driver: StorageDriver, options: CollectOptions, startedAt: Date): Promise<string[]> {
  if (options.uploadMaxAgeMs === undefined) return [];
  const cutoff = startedAt.getTime() - options.uploadMaxAgeMs;
  const { names } = await listRepositories(driver, { limit: Number.MAX_SAFE_INTEGER });
  const uploads = await purgeUploads(driver, names, cutoff, options.dryRun, options.concurrency);
  const orphans = (await driver.purgeOrphans?.(new Date(cutoff), options.dryRun)) ?? [];
  return [...uploads, ...orphans];
}

/** Deletes uploads whose `startedat` is before `cutoff` (or unreadable and old); returns `name/id` of each. Repositories in parallel. */
async function purgeUploads(driver: StorageDriver, names: string[], cutoff: number, dryRun: boolean, concurrency = 16): Promise<string[]> {
  const io = pLimit(concurrency);
  const purgeIn = async (name: string): Promise<string[]> => {
    const purged: string[] = [];
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
    return purged;
  };
  return (await Promise.all(names.map((name) => io(() => purgeIn(name))))).flat();
}

/** Every blob digest with data in the store; the prefix directories are listed in parallel. */
async function listBlobs(driver: StorageDriver, concurrency = 16): Promise<Digest[]> {
  const io = pLimit(concurrency);
  const digests: Digest[] = [];
  for (const algorithmDir of await listIfPresent(driver, blobsRoot())) {
    const prefixes = await listIfPresent(driver, algorithmDir);
    const listed = await Promise.all(prefixes.map((prefixDir) => io(() => listIfPresent(driver, prefixDir))));
    for (const hexDir of listed.flat()) {
      try {
        digests.push(parseDigest(`${baseName(algorithmDir)}:${baseName(hexDir)}`));
      } catch {
        // a stray entry
      }
    }
  }
  return digests;
}
