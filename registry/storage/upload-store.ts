/**
 * Blob uploads: bytes stream into a private upload directory, are hashed while they stream, and are
 * moved into place only after the digest is verified. All upload state lives in the store, so any process
 * sharing the store can continue or finish any upload; the running hash is a per-process cache that a
 * process rebuilds from the stored bytes when it does not hold it (Node cannot serialise a hash's state).
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { StorageDriver } from '../driver/driver.js';
import { PathNotFoundError } from '../driver/errors.js';
import type { BlobInfo, BlobStore } from './blob-store.js';
import { HashingStream, digestAlgorithm, digestFromHash, type Digest, type DigestAlgorithm } from './digest.js';
import { BlobUploadInvalidError, BlobUploadUnknownError, DigestInvalidError, RangeInvalidError, SizeInvalidError } from './errors.js';
import { deleteIfPresent } from './links.js';
import { blobDataPath, uploadDataPath, uploadPath, uploadStartedAtPath } from './paths.js';
import { STRONGLY_CONSISTENT, readUntil, type VisibilityPolicy } from './visibility.js';

const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The state of an upload as a client sees it. */
export interface UploadStatus {
  readonly id: string;
  /** Bytes received so far; the next chunk must start here. */
  readonly size: number;
}

/** A byte range a client declares for a chunk, `start` and `end` inclusive. */
export interface ChunkRange {
  readonly start: number;
  readonly end: number;
}

interface RunningHash {
  readonly algorithm: DigestAlgorithm;
  readonly offset: number;
  readonly hash: Hash;
}

/** A bounded map of running hashes by upload id, least recently used evicted first. */
class HashCache {
  private readonly entries = new Map<string, RunningHash>();

  constructor(private readonly capacity: number) {}

  take(id: string): RunningHash | undefined {
    const entry = this.entries.get(id);
    this.entries.delete(id);
    return entry;
  }

  put(id: string, entry: RunningHash): void {
    this.entries.set(id, entry);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }
}

/** Observes hash rebuilds, so their cost can be measured. */
export interface UploadObserver {
  hashRebuilt?(bytes: number, seconds: number): void;
}

/** Starts, continues, finishes and cancels blob uploads. */
export class UploadStore {
  private readonly hashes = new HashCache(4096);

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: BlobStore,
    private readonly observer: UploadObserver = {},
    private readonly visibility: VisibilityPolicy = STRONGLY_CONSISTENT,
  ) {}

  /** Starts an upload and returns its id. */
  async start(name: string, signal?: AbortSignal): Promise<UploadStatus> {
    const id = randomUUID();
    await this.driver.putContent(uploadStartedAtPath(name, id), Buffer.from(new Date().toISOString()), signal);
    return { id, size: 0 };
  }

  /**
   * Returns the upload's status; throws BlobUploadUnknownError for an unknown or malformed id. `expected`
   * is the size this registry last reported to the client (from the upload URL's state): on an eventually
   * consistent store a smaller or missing upload is read again until it shows that many bytes.
   */
  async status(name: string, id: string, signal?: AbortSignal, expected?: number): Promise<UploadStatus> {
    if (!UPLOAD_ID.test(id)) throw new BlobUploadUnknownError(`upload ${id.slice(0, 80)} is not known`);
    const read = () => this.readStatus(name, id, signal);
    const status = expected === undefined ? await read() : await readUntil(this.visibility, read, (s) => s !== undefined && s.size >= expected, signal);
    if (status === undefined) throw new BlobUploadUnknownError(`upload ${id} is not known`, { detail: { id } });
    return status;
  }

  private async readStatus(name: string, id: string, signal?: AbortSignal): Promise<UploadStatus | undefined> {
    try {
      const info = await this.driver.stat(uploadDataPath(name, id), signal);
      return { id, size: info.size };
    } catch (error) {
      if (!(error instanceof PathNotFoundError)) throw error;
    }
    try {
      await this.driver.stat(uploadStartedAtPath(name, id), signal);
      return { id, size: 0 };
    } catch (error) {
      if (error instanceof PathNotFoundError) return undefined;
      throw error;
    }
  }

  /**
   * Appends a chunk to an upload. With a declared range the chunk must start where the upload ends
   * (RangeInvalidError otherwise) and its length must match `length` when given. Returns the new status
   * and the bytes this chunk carried.
   */
  async append(
    name: string,
    id: string,
    source: Readable,
    options: { range?: ChunkRange; length?: number; signal?: AbortSignal; expected?: number } = {},
  ): Promise<UploadStatus & { received: number }> {
    const { size } = await this.status(name, id, options.signal, options.expected ?? options.range?.start);
    const { range, length } = options;
    if (range !== undefined) {
      if (range.start !== size) {
        throw new RangeInvalidError(`chunk starts at ${range.start} but the upload has ${size} bytes`, {
          status: 416,
          detail: { expectedStart: size },
        });
      }
      if (length !== undefined && range.end - range.start + 1 !== length) {
        throw new RangeInvalidError(`Content-Range ${range.start}-${range.end} does not match Content-Length ${length}`, {
          status: 416,
        });
      }
    }
    // Hash while streaming only when this process holds the running hash at this offset (or the upload is
    // empty). Otherwise the chunk is stored unhashed and the commit hashes the stored bytes once: rebuilding
    // the hash on every chunk that lands on another replica would read the upload again and again.
    const cached = this.hashes.take(id);
    const running: RunningHash | undefined =
      cached !== undefined && cached.offset === size && cached.algorithm === 'sha256'
        ? cached
        : size === 0
          ? { algorithm: 'sha256', offset: 0, hash: createHash('sha256') }
          : undefined;
    // An empty upload has no data object yet: create it, which spares a driver the look-up an append needs.
    const written = await this.writeHashed(uploadDataPath(name, id), source, running?.hash, size > 0, options.signal);
    const newSize = size + written;
    if (running !== undefined) this.hashes.put(id, { algorithm: running.algorithm, offset: newSize, hash: running.hash });
    if (range !== undefined && range.end - range.start + 1 !== written) {
      throw new SizeInvalidError(`chunk declared ${range.end - range.start + 1} bytes but carried ${written}`);
    }
    return { id, size: newSize, received: written };
  }

  /**
   * Finishes an upload: appends the last chunk if there is one, verifies the digest over every byte, moves
   * the data into the blob store and links the blob into the repository. A digest mismatch cancels the
   * upload and throws DigestInvalidError.
   */
  async commit(
    name: string,
    id: string,
    digest: Digest,
    last?: { source: Readable; range?: ChunkRange; length?: number },
    signal?: AbortSignal,
    expected?: number,
  ): Promise<BlobInfo> {
    let status = await this.status(name, id, signal, expected);
    if (last !== undefined && status.size === 0) {
      // The whole blob arrives with the digest: verify it on its way into place, with no upload copy.
      const info = await this.putMonolithic(name, digest, last.source, last.length, signal);
      this.hashes.take(id);
      await deleteIfPresent(this.driver, uploadPath(name, id), signal);
      return info;
    }
    if (last !== undefined) {
      status = await this.append(name, id, last.source, { ...last, ...(signal ? { signal } : {}), expected: status.size });
    }
    const algorithm = digestAlgorithm(digest);
    const running = await this.runningHash(name, id, status.size, algorithm, signal);
    const actual = digestFromHash(running.hash, algorithm);
    if (actual !== digest) {
      await this.cancel(name, id, signal).catch(() => undefined);
      throw new DigestInvalidError(`the upload's content has digest ${actual}, not ${digest}`, {
        detail: { expected: digest, actual },
      });
    }
    await this.place(name, id, digest, status.size, signal);
    return { digest, size: status.size };
  }

  /**
   * Receives a whole blob whose digest is known before its first byte (`POST ?digest=`, or a PUT carrying
   * the whole blob), verifying it while it streams. It is written straight to its place in the blob store
   * and published only once verified, so it is never copied; when the blob is already stored, the body is
   * verified and not written again. When `length` is given, the body must carry exactly that many bytes.
   */
  async putMonolithic(name: string, digest: Digest, source: Readable, length: number | undefined, signal?: AbortSignal): Promise<BlobInfo> {
    const algorithm = digestAlgorithm(digest);
    const hash = createHash(algorithm);
    const hashing = new HashingStream(hash);
    const verify = () => {
      if (length !== undefined && hashing.bytes !== length) {
        throw new SizeInvalidError(`the body carried ${hashing.bytes} bytes, not the ${length} declared`);
      }
      const actual = digestFromHash(hash, algorithm);
      if (actual !== digest) {
        throw new DigestInvalidError(`the blob's content has digest ${actual}, not ${digest}`, { detail: { expected: digest, actual } });
      }
    };
    const existing = await this.blobs.statData(digest, signal);
    if (existing !== undefined) {
      await pipeline(source, hashing, async (stream: AsyncIterable<Buffer>) => {
        for await (const chunk of stream) void chunk;
      });
      verify();
    } else {
      await pipeline(
        source,
        hashing,
        async () => {
          await this.driver.writeStream(blobDataPath(digest), hashing, { append: false, verify, ...(signal ? { signal } : {}) });
        },
        ...(signal ? [{ signal }] : []),
      );
    }
    await this.blobs.link(name, digest, signal);
    return { digest, size: hashing.bytes };
  }

  /**
   * Streams `source` (through `hash` when given) into an object and returns the bytes written; a failure on
   * either side stops both.
   */
  private async writeHashed(path: string, source: Readable, hash: Hash | undefined, append: boolean, signal?: AbortSignal): Promise<number> {
    const hashing = new HashingStream(hash);
    await pipeline(
      source,
      hashing,
      async () => {
        await this.driver.writeStream(path, hashing, { append, ...(signal ? { signal } : {}) });
      },
      ...(signal ? [{ signal }] : []),
    );
    return hashing.bytes;
  }

  /** Cancels an upload and removes its data. Throws BlobUploadUnknownError when it does not exist. */
  async cancel(name: string, id: string, signal?: AbortSignal): Promise<void> {
    if (!UPLOAD_ID.test(id)) throw new BlobUploadUnknownError(`upload ${id.slice(0, 80)} is not known`);
    this.hashes.take(id);
    if (!(await deleteIfPresent(this.driver, uploadPath(name, id), signal))) {
      throw new BlobUploadUnknownError(`upload ${id} is not known`, { detail: { id } });
    }
  }

  /** Moves verified upload data into the blob store (unless the blob is already there) and links it. */
  private async place(name: string, id: string, digest: Digest, size: number, signal?: AbortSignal): Promise<void> {
    this.hashes.take(id);
    const existing = await this.blobs.statData(digest, signal);
    if (existing === undefined) {
      if (size === 0) {
        await this.driver.putContent(blobDataPath(digest), new Uint8Array(0), signal);
      } else {
        await this.driver.move(uploadDataPath(name, id), blobDataPath(digest), signal);
      }
    } else if (existing.size !== size) {
      throw new BlobUploadInvalidError(`stored blob ${digest} has ${existing.size} bytes, not ${size}`);
    }
    await this.blobs.link(name, digest, signal);
    await deleteIfPresent(this.driver, uploadPath(name, id), signal);
  }

  /**
   * Returns the running hash of an upload at `offset`: the cached one when this process holds it, or one
   * rebuilt by reading the stored bytes.
   */
  private async runningHash(name: string, id: string, offset: number, algorithm: DigestAlgorithm, signal?: AbortSignal): Promise<RunningHash> {
    const cached = this.hashes.take(id);
    if (cached !== undefined && cached.offset === offset && cached.algorithm === algorithm) return cached;
    const hash = createHash(algorithm);
    if (offset > 0) {
      const started = process.hrtime.bigint();
      const stream = await this.driver.reader(uploadDataPath(name, id), 0, offset, signal);
      let read = 0;
      for await (const chunk of stream) {
        hash.update(chunk as Buffer);
        read += (chunk as Buffer).length;
      }
      if (read !== offset) throw new BlobUploadInvalidError(`upload ${id} has ${read} bytes stored, expected ${offset}`);
      this.observer.hashRebuilt?.(offset, Number(process.hrtime.bigint() - started) / 1e9);
    }
    return { algorithm, offset, hash };
  }
}
