/**
 * The storage-driver interface: the only way the registry touches bytes at rest.
 *
 * Paths are absolute, slash-separated keys (`/docker/registry/v2/...`) matching PATH_PATTERN. A driver
 * holds no registry knowledge; it stores objects and lists directories. Directories exist implicitly
 * while they have at least one object below them.
 */
import type { Readable } from 'node:stream';

/** What `stat` tells about a path. */
export interface FileInfo {
  /** The path asked about. */
  readonly path: string;
  /** Size in bytes of an object; 0 for a directory. */
  readonly size: number;
  /** Last modification time. For directories some drivers report the epoch. */
  readonly modTime: Date;
  /** True when the path is a directory (a prefix of other objects). */
  readonly isDir: boolean;
}

/** How `writeStream` writes. */
export interface WriteOptions {
  /** Add to the end of the object instead of replacing it. */
  readonly append: boolean;
  readonly signal?: AbortSignal;
  /**
   * Without `append` only: runs once every byte is received and before the object becomes visible; if it
   * throws, the object is never visible (nor any previous one disturbed) and the error is rethrown. This is
   * how a blob whose digest is known in advance is verified and published in place, with no copy.
   */
  readonly verify?: () => void | Promise<void>;
}

/** What a `walk` visitor may return: `'skip'` to not descend into the directory it was given. */
export type WalkDecision = 'skip' | void;

/** The contract every storage driver implements. */
export interface StorageDriver {
  /** A short name for logs and metrics, such as `filesystem`. */
  readonly name: string;

  /** Returns the whole content of a small object. Throws PathNotFoundError if there is none. */
  getContent(path: string, signal?: AbortSignal): Promise<Buffer>;

  /** Stores a small object in one atomic write, replacing any previous content; readers see old or new, never a mix. */
  putContent(path: string, content: Uint8Array, signal?: AbortSignal): Promise<void>;

  /**
   * Stores a small object like `putContent`, but only if no object is at `path`, decided atomically by the
   * store (of two concurrent calls at most one creates it); resolves true when this call created it.
   */
  putContentIfAbsent(path: string, content: Uint8Array, signal?: AbortSignal): Promise<boolean>;

  /**
   * Opens a stream over an object's bytes from `offset`, for at most `length` bytes (to the end if absent).
   * Throws PathNotFoundError if there is no object, InvalidOffsetError if `offset` is past its end.
   */
  reader(path: string, offset?: number, length?: number, signal?: AbortSignal): Promise<Readable>;

  /**
   * Streams `source` into an object, creating it or, with `append`, adding to its end, and resolves with
   * the number of bytes written by this call. A new object is durable when it resolves; appended bytes are
   * durable at the latest once the object is moved. If it fails, an object it created is removed; bytes it
   * appended may remain (callers re-read the size to resume).
   */
  writeStream(path: string, source: Readable, options: WriteOptions): Promise<number>;

  /** Describes an object or directory. Throws PathNotFoundError if neither exists. */
  stat(path: string, signal?: AbortSignal): Promise<FileInfo>;

  /** Lists the full paths of a directory's direct children, sorted. Throws PathNotFoundError if it has none. */
  list(path: string, signal?: AbortSignal): Promise<string[]>;

  /**
   * Moves an object to a new path, replacing any object there, durably (its bytes are on stable storage
   * before it appears at the destination). Throws PathNotFoundError if the source is missing.
   */
  move(source: string, destination: string, signal?: AbortSignal): Promise<void>;

  /** Deletes an object, or a directory and everything below it. Throws PathNotFoundError if nothing is there. */
  delete(path: string, signal?: AbortSignal): Promise<void>;

  /** Returns a URL from which a client may fetch the object directly, or null when the driver has none. */
  redirectURL(method: 'GET' | 'HEAD', path: string): Promise<string | null>;

  /**
   * Visits every object and directory below `path` depth first, children in sorted order, awaiting the
   * visitor for each. Throws PathNotFoundError if `path` has nothing below it.
   */
  walk(path: string, visit: (info: FileInfo) => Promise<WalkDecision> | WalkDecision, signal?: AbortSignal): Promise<void>;

  /**
   * Removes what interrupted writes left behind and no path names (a filesystem's temporary files, an object
   * store's incomplete multipart uploads), when started before `before`; returns a description of each. Optional:
   * a driver whose writes leave nothing behind has none.
   */
  purgeOrphans?(before: Date, dryRun: boolean): Promise<string[]>;
}

/** The shape every storage path must have: absolute, slash-separated, no empty, `.` or `..` components. */
export const PATH_PATTERN = /^(?:\/[A-Za-z0-9._:-]+)+$/;
