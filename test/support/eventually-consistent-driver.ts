/**
 * A storage-driver wrapper that makes any driver eventually consistent in controlled, replayable ways, for
 * tests. Wrap the real driver once and give the same wrapper to every in-process replica, so that what one
 * replica writes reaches the others (and itself) late, as it can on an eventually consistent object store:
 *
 * - every write (putContent, writeStream, move, delete) reaches the inner driver at once, but for a random
 *   lag in [minLagMs, maxLagMs] reads (getContent, reader, stat) still return the version before it: a new
 *   object is missing, an overwritten one shows its previous bytes, a deleted one is still there;
 * - listings lag further behind (listLagMs): a new child is missing from `list`, a deleted one still listed;
 * - the lags come from a seeded generator, so a failing run is replayed by giving it the printed seed.
 *
 * Writes go to the inner driver unchanged (server-side operations such as S3's copy see the truth), so
 * what the wrapper tests is whether the registry's own reads tolerate lag. Superseded versions are kept in
 * memory: use it with test-sized data.
 *
 * Usage: `new EventuallyConsistentDriver(new FilesystemDriver({ rootDirectory }), { seed: 42 })`.
 */
import { Readable } from 'node:stream';
import type { FileInfo, StorageDriver, WriteOptions, WalkDecision } from '../../registry/driver/driver.js';
import { PathNotFoundError } from '../../registry/driver/errors.js';
import { walkByListing } from '../../registry/driver/walk.js';

/** How inconsistent the wrapper is. */
export interface ConsistencyOptions {
  readonly seed: number;
  readonly minLagMs?: number;
  readonly maxLagMs?: number;
  readonly listLagMs?: number;
}

/** A small, fast, seedable generator (mulberry32). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Shadow {
  /** Until this time, reads see `content` instead of the inner driver's object. */
  until: number;
  /** The version readers still see; null when the object did not exist. */
  readonly content: Buffer | null;
  readonly modTime: Date;
}

interface ListShadow {
  until: number;
  /** True for a deleted object that listings still show; false for a new one they do not show yet. */
  readonly listed: boolean;
}

/** Wraps a driver so that its writes become visible late; see the module comment. */
export class EventuallyConsistentDriver implements StorageDriver {
  readonly name: string;
  private readonly random: () => number;
  private readonly shadows = new Map<string, Shadow>();
  private readonly listShadows = new Map<string, ListShadow>();
  private readonly minLag: number;
  private readonly maxLag: number;
  private readonly listLag: number;

  constructor(
    private readonly inner: StorageDriver,
    options: ConsistencyOptions,
  ) {
    this.name = inner.name;
    this.random = seededRandom(options.seed);
    this.minLag = options.minLagMs ?? 0;
    this.maxLag = options.maxLagMs ?? 200;
    this.listLag = options.listLagMs ?? this.maxLag;
  }

  private lag(): number {
    return this.minLag + this.random() * (this.maxLag - this.minLag);
  }

  private activeShadow(path: string): Shadow | undefined {
    const shadow = this.shadows.get(path);
    if (shadow === undefined) return undefined;
    if (shadow.until <= Date.now()) {
      this.shadows.delete(path);
      return undefined;
    }
    return shadow;
  }

  private async currentContent(path: string): Promise<{ content: Buffer | null; modTime: Date }> {
    try {
      const info = await this.inner.stat(path);
      if (info.isDir) return { content: null, modTime: new Date(0) };
      return { content: await this.inner.getContent(path), modTime: info.modTime };
    } catch (error) {
      if (error instanceof PathNotFoundError) return { content: null, modTime: new Date(0) };
      throw error;
    }
  }

  /** Records what readers keep seeing of `path` while the write about to happen stays invisible. */
  private async shadow(path: string): Promise<void> {
    const now = Date.now();
    const until = now + this.lag();
    const existing = this.activeShadow(path);
    if (existing !== undefined) {
      existing.until = Math.max(existing.until, until);
      return;
    }
    const { content, modTime } = await this.currentContent(path);
    this.shadows.set(path, { until, content, modTime });
    this.listShadows.set(path, { until: now + this.listLag, listed: content !== null });
  }

  /** Shadows every object below a directory (or the object itself) before it is deleted. */
  private async shadowTree(path: string): Promise<void> {
    const info = await this.inner.stat(path);
    if (!info.isDir) {
      await this.shadow(path);
      return;
    }
    await walkByListing(this.inner, path, async (child) => {
      if (!child.isDir) await this.shadow(child.path);
    });
  }

  async getContent(path: string, signal?: AbortSignal): Promise<Buffer> {
    const shadow = this.activeShadow(path);
    if (shadow === undefined) return this.inner.getContent(path, signal);
    if (shadow.content === null) throw new PathNotFoundError(path, this.name);
    return Buffer.from(shadow.content);
  }

  async putContent(path: string, content: Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.shadow(path);
    await this.inner.putContent(path, content, signal);
  }

  async putContentIfAbsent(path: string, content: Uint8Array, signal?: AbortSignal): Promise<boolean> {
    // Decided by the inner store, which sees the truth (as S3 decides a conditional write), not by a lagging read.
    await this.shadow(path);
    return this.inner.putContentIfAbsent(path, content, signal);
  }

  async reader(path: string, offset = 0, length?: number, signal?: AbortSignal): Promise<Readable> {
    const shadow = this.activeShadow(path);
    if (shadow === undefined) return this.inner.reader(path, offset, length, signal);
    if (shadow.content === null) throw new PathNotFoundError(path, this.name);
    const end = length === undefined ? shadow.content.length : offset + length;
    return Readable.from([shadow.content.subarray(offset, end)]);
  }

  async writeStream(path: string, source: Readable, options: WriteOptions): Promise<number> {
    await this.shadow(path);
    return this.inner.writeStream(path, source, options);
  }

  async stat(path: string, signal?: AbortSignal): Promise<FileInfo> {
    const shadow = this.activeShadow(path);
    if (shadow === undefined) return this.inner.stat(path, signal);
    if (shadow.content === null) {
      const info = await this.inner.stat(path, signal);
      if (info.isDir) return info;
      throw new PathNotFoundError(path, this.name);
    }
    return { path, size: shadow.content.length, modTime: shadow.modTime, isDir: false };
  }

  async list(path: string, signal?: AbortSignal): Promise<string[]> {
    let children: string[] = [];
    try {
      children = await this.inner.list(path, signal);
    } catch (error) {
      if (!(error instanceof PathNotFoundError)) throw error;
    }
    const now = Date.now();
    const prefix = path === '/' ? '/' : `${path}/`;
    const result = new Set(children);
    const hiddenUnder = new Set<string>();
    for (const [object, shadow] of this.listShadows) {
      if (shadow.until <= now) {
        this.listShadows.delete(object);
        continue;
      }
      if (!object.startsWith(prefix)) continue;
      const child = prefix + (object.slice(prefix.length).split('/')[0] as string);
      if (shadow.listed) result.add(child);
      else hiddenUnder.add(child);
    }
    // A child whose every object is newly created is not listed yet.
    for (const child of hiddenUnder) {
      if (!result.has(child)) continue;
      let visible = false;
      const consider = (objectPath: string) => {
        const shadow = this.listShadows.get(objectPath);
        if (shadow === undefined || shadow.until <= now || shadow.listed) visible = true;
      };
      const info = await this.inner.stat(child, signal).catch(() => undefined);
      if (info === undefined) continue;
      if (!info.isDir) consider(child);
      else
        await walkByListing(this.inner, child, (entry) => {
          if (!entry.isDir) consider(entry.path);
          return visible ? 'skip' : undefined;
        });
      if (!visible) result.delete(child);
    }
    if (result.size === 0) throw new PathNotFoundError(path, this.name);
    return [...result].sort();
  }

  async move(source: string, destination: string, signal?: AbortSignal): Promise<void> {
    await this.shadow(source);
    await this.shadow(destination);
    await this.inner.move(source, destination, signal);
  }

  async delete(path: string, signal?: AbortSignal): Promise<void> {
    await this.shadowTree(path);
    await this.inner.delete(path, signal);
  }

  redirectURL(method: 'GET' | 'HEAD', path: string): Promise<string | null> {
    return this.inner.redirectURL(method, path);
  }

  walk(path: string, visit: (info: FileInfo) => Promise<WalkDecision> | WalkDecision, signal?: AbortSignal): Promise<void> {
    return walkByListing(this, path, visit, signal);
  }
}
