/**
 * Manifests, tags and referrers of a repository. Manifest bytes are stored as blobs by digest and never
 * change; a revision link puts a manifest in a repository; a tag is a current link plus an index entry;
 * a referrer is one descriptor object under its subject.
 */
import type { StorageDriver } from '../driver/driver.js';
import { PathNotFoundError } from '../driver/errors.js';
import type { BlobStore } from './blob-store.js';
import { digestAlgorithm, digestOf, parseDigest, type Digest } from './digest.js';
import {
  DigestInvalidError,
  ManifestBlobUnknownError,
  ManifestUnknownError,
  NameUnknownError,
} from './errors.js';
import { baseName, deleteIfPresent, listIfPresent, readLink, writeLink } from './links.js';
import { parseManifest, storedMediaType, type Descriptor } from './manifest.js';
import {
  blobDataPath,
  manifestRevisionLinkPath,
  manifestRevisionPath,
  referrerDescriptorPath,
  referrersPath,
  repositoryPath,
  tagCurrentLinkPath,
  tagIndexLinkPath,
  tagPath,
  tagsRoot,
} from './paths.js';
import { isTag } from './reference.js';
import { STRONGLY_CONSISTENT, readUntil, type VisibilityPolicy } from './visibility.js';
import { NO_JOURNAL, type WriteJournal } from './write-journal.js';

/** A manifest as served to clients. */
export interface StoredManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly bytes: Buffer;
}

/** What a manifest PUT stored. */
export interface PutManifestResult {
  readonly digest: Digest;
  readonly subject?: Digest;
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(workers);
}

/** A small cache of immutable manifest content by digest, bounded in bytes. */
class ContentCache {
  private readonly entries = new Map<string, StoredManifest>();
  private bytes = 0;

  constructor(private readonly capacityBytes: number) {}

  get(digest: Digest): StoredManifest | undefined {
    const entry = this.entries.get(digest);
    if (entry !== undefined) {
      this.entries.delete(digest);
      this.entries.set(digest, entry);
    }
    return entry;
  }

  set(entry: StoredManifest): void {
    if (entry.bytes.length > this.capacityBytes / 16 || this.entries.has(entry.digest)) return;
    this.entries.set(entry.digest, entry);
    this.bytes += entry.bytes.length;
    for (const [key, old] of this.entries) {
      if (this.bytes <= this.capacityBytes) break;
      this.entries.delete(key);
      this.bytes -= old.bytes.length;
    }
  }

  delete(digest: Digest): void {
    const entry = this.entries.get(digest);
    if (entry === undefined) return;
    this.entries.delete(digest);
    this.bytes -= entry.bytes.length;
  }
}

/** Stores and serves manifests, tags and referrers. */
export class ManifestStore {
  private readonly cache = new ContentCache(32 << 20);

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: BlobStore,
    private readonly visibility: VisibilityPolicy = STRONGLY_CONSISTENT,
    private readonly pullVisibility: VisibilityPolicy = visibility,
    private readonly journal: WriteJournal = NO_JOURNAL,
  ) {}

  /**
   * Validates and stores a manifest under a tag or digest reference. Every blob and child manifest it
   * references must already be in the repository (ManifestBlobUnknownError otherwise); its digest is over
   * the exact bytes received; a digest reference must match them. `tags` are extra tags to point at it.
   */
  async put(
    name: string,
    reference: string,
    bytes: Buffer,
    contentType: string | undefined,
    tags: readonly string[] = [],
    signal?: AbortSignal,
  ): Promise<PutManifestResult> {
    const byDigest = !isTag(reference);
    const expected = byDigest ? parseDigest(reference) : undefined;
    const digest = digestOf(bytes, expected ? digestAlgorithm(expected) : 'sha256');
    if (expected !== undefined && expected !== digest) {
      throw new DigestInvalidError(`the manifest's content has digest ${digest}, not ${expected}`, {
        detail: { expected, actual: digest },
      });
    }
    const manifest = parseManifest(bytes, contentType);
    await this.checkReferences(name, manifest.blobs, manifest.manifests, signal);

    await this.journal.record({ kind: 'manifest', name, digest }, signal);
    await this.driver.putContent(blobDataPath(digest), bytes, signal);
    await writeLink(this.driver, manifestRevisionLinkPath(name, digest), digest, signal);
    if (manifest.subject !== undefined) {
      const descriptor: Descriptor = {
        mediaType: manifest.mediaType,
        digest,
        size: bytes.length,
        ...(manifest.artifactType !== undefined ? { artifactType: manifest.artifactType } : {}),
        ...(manifest.annotations !== undefined ? { annotations: manifest.annotations } : {}),
      };
      await this.driver.putContent(
        referrerDescriptorPath(name, manifest.subject.digest, digest),
        Buffer.from(JSON.stringify(descriptor)),
        signal,
      );
    }
    const allTags = byDigest ? tags : [reference, ...tags];
    for (const tag of new Set(allTags)) {
      await writeLink(this.driver, tagIndexLinkPath(name, tag, digest), digest, signal);
      await writeLink(this.driver, tagCurrentLinkPath(name, tag), digest, signal);
    }
    return { digest, ...(manifest.subject ? { subject: manifest.subject.digest } : {}) };
  }

  /**
   * Returns the manifest a tag or digest names; throws ManifestUnknownError when there is none, after
   * waiting out the store's read-after-write lag (a pull right after a push to another replica).
   */
  async get(name: string, reference: string, signal?: AbortSignal): Promise<StoredManifest> {
    const attempt = () =>
      this.getOnce(name, reference, signal).catch((error: unknown) => {
        if (error instanceof ManifestUnknownError) return error;
        throw error;
      });
    const result = await readUntil(this.pullVisibility, attempt, (value) => !(value instanceof ManifestUnknownError), signal);
    if (result instanceof ManifestUnknownError) throw result;
    return result;
  }

  private async getOnce(name: string, reference: string, signal?: AbortSignal): Promise<StoredManifest> {
    const digest = await this.resolve(name, reference, signal);
    const linked = await readLink(this.driver, manifestRevisionLinkPath(name, digest), signal);
    if (linked !== digest) throw new ManifestUnknownError(`manifest ${reference} is not known to repository ${name}`);
    const cached = this.cache.get(digest);
    if (cached !== undefined) return cached;
    let bytes: Buffer;
    try {
      bytes = await this.driver.getContent(blobDataPath(digest), signal);
    } catch (error) {
      if (error instanceof PathNotFoundError) throw new ManifestUnknownError(`manifest ${reference} is gone`);
      throw error;
    }
    const stored = { digest, mediaType: storedMediaType(bytes), bytes };
    this.cache.set(stored);
    return stored;
  }

  /** Returns true when the repository has the manifest. */
  async exists(name: string, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    return (await readLink(this.driver, manifestRevisionLinkPath(name, digest), signal)) === digest;
  }

  /** Resolves a tag or digest reference to a digest; throws ManifestUnknownError for an unknown tag. */
  async resolve(name: string, reference: string, signal?: AbortSignal): Promise<Digest> {
    if (!isTag(reference)) return parseDigest(reference);
    const digest = await readLink(this.driver, tagCurrentLinkPath(name, reference), signal);
    if (digest === undefined) throw new ManifestUnknownError(`tag ${reference} is not known to repository ${name}`, { detail: { tag: reference } });
    return digest;
  }

  /**
   * Deletes a manifest revision from a repository, with every tag that points at it and its referrer
   * entry. Throws ManifestUnknownError when the repository does not have it.
   */
  async delete(name: string, digest: Digest, signal?: AbortSignal): Promise<void> {
    const stored = await this.get(name, digest, signal);
    let subject: Digest | undefined;
    try {
      subject = parseManifest(stored.bytes, stored.mediaType).subject?.digest;
    } catch {
      subject = undefined;
    }
    for (const tag of await this.tags(name, signal)) {
      if ((await readLink(this.driver, tagCurrentLinkPath(name, tag), signal)) === digest) {
        await deleteIfPresent(this.driver, tagPath(name, tag), signal);
      }
    }
    if (subject !== undefined) {
      const path = referrerDescriptorPath(name, subject, digest);
      await deleteIfPresent(this.driver, path.slice(0, -'/descriptor'.length), signal);
    }
    await deleteIfPresent(this.driver, manifestRevisionPath(name, digest), signal);
    this.cache.delete(digest);
  }

  /** Deletes a tag; the manifest stays. Throws ManifestUnknownError when the tag does not exist. */
  async deleteTag(name: string, tag: string, signal?: AbortSignal): Promise<void> {
    if (!(await deleteIfPresent(this.driver, tagPath(name, tag), signal))) {
      throw new ManifestUnknownError(`tag ${tag} is not known to repository ${name}`, { detail: { tag } });
    }
  }

  /** Lists a repository's tags in lexical order; throws NameUnknownError when the repository does not exist. */
  async tags(name: string, signal?: AbortSignal): Promise<string[]> {
    const paths = await listIfPresent(this.driver, tagsRoot(name), signal);
    if (paths.length === 0) {
      try {
        await this.driver.stat(repositoryPath(name), signal);
      } catch (error) {
        if (error instanceof PathNotFoundError) throw new NameUnknownError(`repository ${name} is not known`, { detail: { name } });
        throw error;
      }
    }
    return paths.map(baseName).sort();
  }

  /**
   * Lists the descriptors of the manifests whose subject is `subject`, filtered by artifact type when one
   * is given. Entries whose manifest has been deleted are left out.
   */
  async referrers(name: string, subject: Digest, artifactType?: string, signal?: AbortSignal): Promise<Descriptor[]> {
    const found: Descriptor[] = [];
    const root = referrersPath(name, subject);
    const entries: string[] = [];
    for (const algorithmDir of await listIfPresent(this.driver, root, signal)) {
      entries.push(...(await listIfPresent(this.driver, algorithmDir, signal)));
    }
    await forEachLimit(entries, 16, async (entry) => {
      let descriptor: Descriptor;
      try {
        descriptor = JSON.parse((await this.driver.getContent(`${entry}/descriptor`, signal)).toString('utf8')) as Descriptor;
      } catch (error) {
        if (error instanceof PathNotFoundError || error instanceof SyntaxError) return;
        throw error;
      }
      if (artifactType !== undefined && descriptor.artifactType !== artifactType) return;
      if (!(await this.exists(name, descriptor.digest, signal))) return;
      found.push(descriptor);
    });
    return found.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  }

  private async checkReferences(
    name: string,
    blobs: readonly Descriptor[],
    manifests: readonly Descriptor[],
    signal?: AbortSignal,
  ): Promise<void> {
    const missing: Digest[] = [];
    // A reference pushed through another replica may not be visible yet: look again before refusing.
    const check = (present: () => Promise<boolean>) => readUntil(this.visibility, present, (ok) => ok, signal);
    await forEachLimit(blobs, 8, async (descriptor) => {
      if (!(await check(() => this.blobs.exists(name, descriptor.digest, signal)))) missing.push(descriptor.digest);
    });
    await forEachLimit(manifests, 8, async (descriptor) => {
      if (!(await check(() => this.exists(name, descriptor.digest, signal)))) missing.push(descriptor.digest);
    });
    if (missing.length > 0) {
      throw new ManifestBlobUnknownError(`the manifest references ${missing.length} blob(s) or manifest(s) the repository does not have, first ${missing[0]}`, {
        detail: { digests: missing },
      });
    }
  }
}
