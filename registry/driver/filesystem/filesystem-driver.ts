/**
 * A storage driver on a local directory. Small objects are written to a temporary file, fsynced and
 * renamed over the target, so readers see the old or the new content and never a mix; streamed writes
 * are fsynced before they resolve.
 */
import { randomUUID } from 'node:crypto';
import {
  close as closeCallback,
  createReadStream,
  createWriteStream,
  open as openCallback,
  read as readCallback,
  readFile as readFileCallback,
  stat as statCallback,
  type BigIntStats,
} from 'node:fs';
import { link, lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { FileInfo, StorageDriver, WriteOptions, WalkDecision } from '../driver.js';
import { InvalidOffsetError, PathNotFoundError } from '../errors.js';
import { walkByListing } from '../walk.js';

/** Settings of the filesystem driver (Distribution's `storage.filesystem`). */
export interface FilesystemDriverOptions {
  /** The directory every path is stored below. */
  readonly rootDirectory: string;
}

const NAME = 'filesystem';

// The callback forms are several times faster than fs/promises for small files (fewer round trips through
// FileHandle), and link reads are the hot path of every manifest and blob request.
const readFile = promisify(readFileCallback);
const stat = promisify(statCallback);
const openFd = promisify(openCallback);
const readFd = promisify(readCallback);
const closeFd = promisify(closeCallback);

/** Objects up to this size are read with one read and no fstat (links, tags, descriptors). */
const SMALL_READ = 4096;

/** Reads a file with open, one read and close; falls back to readFile when it is larger than SMALL_READ. */
async function readSmallFile(path: string): Promise<Buffer> {
  const fd = await openFd(path, 'r');
  let buffer: Buffer;
  let bytesRead: number;
  try {
    buffer = Buffer.allocUnsafe(SMALL_READ);
    ({ bytesRead } = await readFd(fd, buffer, 0, SMALL_READ, 0));
  } finally {
    await closeFd(fd);
  }
  if (bytesRead < SMALL_READ) return Buffer.from(buffer.subarray(0, bytesRead));
  return readFile(path);
}
const READ_CHUNK = 4 << 20;

const statBigint = (path: string) =>
  new Promise<BigIntStats>((resolve, reject) =>
    statCallback(path, { bigint: true }, (error, stats) => (error ? reject(error) : resolve(stats))),
  );

/**
 * Small objects (links, tags) by path, each with the identity of the file it was read from. Every write
 * replaces a file by rename, so a file with the same inode, size and nanosecond change time is the same
 * content: one stat then answers a read, instead of open, read and close. Bounded, oldest evicted first.
 */
class SmallFileCache {
  private readonly entries = new Map<string, { identity: string; content: Buffer }>();

  constructor(private readonly capacity: number) {}

  get(path: string, identity: string): Buffer | undefined {
    const entry = this.entries.get(path);
    return entry !== undefined && entry.identity === identity ? entry.content : undefined;
  }

  set(path: string, identity: string, content: Buffer): void {
    this.entries.delete(path);
    this.entries.set(path, { identity, content });
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Stores objects as files below a root directory. */
export class FilesystemDriver implements StorageDriver {
  readonly name = NAME;

  private readonly smallFiles = new SmallFileCache(16_384);

  constructor(private readonly options: FilesystemDriverOptions) {}

  private full(path: string): string {
    return join(this.options.rootDirectory, path);
  }

  async getContent(path: string): Promise<Buffer> {
    const full = this.full(path);
    try {
      const info = await statBigint(full);
      if (info.isDirectory()) throw new PathNotFoundError(path, NAME);
      const identity = `${info.ino}:${info.size}:${info.ctimeNs}:${info.mtimeNs}`;
      const cached = this.smallFiles.get(full, identity);
      if (cached !== undefined) return Buffer.from(cached);
      // Small objects only: one read is quicker than wiring an abort signal through it.
      const content = await readSmallFile(full);
      if (content.length < SMALL_READ && BigInt(content.length) === info.size) this.smallFiles.set(full, identity, content);
      return Buffer.from(content);
    } catch (error) {
      if (isMissing(error) || (error as NodeJS.ErrnoException).code === 'EISDIR') throw new PathNotFoundError(path, NAME);
      throw error;
    }
  }

  async putContent(path: string, content: Uint8Array): Promise<void> {
    const { target, temporary } = await this.writeTemporary(path, content);
    try {
      await rename(temporary, target);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }

  async putContentIfAbsent(path: string, content: Uint8Array): Promise<boolean> {
    const { target, temporary } = await this.writeTemporary(path, content);
    try {
      // link(2) fails when the target exists: the check and the creation are one step, and the content is whole.
      await link(temporary, target);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    } finally {
      await rm(temporary, { force: true });
    }
  }

  /** Writes `content` durably to a temporary file beside `path`'s object, ready to be put in place. */
  private async writeTemporary(path: string, content: Uint8Array): Promise<{ target: string; temporary: string }> {
    const target = this.full(path);
    await mkdir(dirname(target), { recursive: true });
    const temporary = `${target}.${randomUUID()}.tmp`;
    const handle = await open(temporary, 'w');
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return { target, temporary };
  }

  async reader(path: string, offset = 0, length?: number): Promise<Readable> {
    const info = await this.stat(path);
    if (info.isDir) throw new PathNotFoundError(path, NAME);
    if (offset < 0 || offset > info.size) throw new InvalidOffsetError(path, offset, NAME);
    const end = length === undefined ? undefined : offset + length - 1;
    const last = end === undefined ? info.size - 1 : Math.min(end, info.size - 1);
    if (last < offset) return Readable.from([]);
    return createReadStream(this.full(path), { start: offset, end: last, highWaterMark: READ_CHUNK });
  }

  async writeStream(path: string, source: Readable, options: WriteOptions): Promise<number> {
    const target = this.full(path);
    await mkdir(dirname(target), { recursive: true });
    if (options.append) {
      // Appends (upload chunks) are made durable when the upload is committed: `move` fsyncs the file.
      const out = createWriteStream(target, { flags: 'a', highWaterMark: READ_CHUNK });
      await pipeline(source, out, { signal: options.signal });
      return out.bytesWritten;
    }
    // A new object is written beside its path, fsynced, verified, and renamed into place: readers see the
    // old object or the whole new one, never a part.
    const temporary = `${target}.${randomUUID()}.tmp`;
    const out = createWriteStream(temporary, { flags: 'w', flush: true, highWaterMark: READ_CHUNK });
    try {
      await pipeline(source, out, { signal: options.signal });
      await options.verify?.();
      await rename(temporary, target);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
    return out.bytesWritten;
  }

  async stat(path: string): Promise<FileInfo> {
    try {
      const info = await stat(this.full(path));
      const isDir = info.isDirectory();
      return { path, size: isDir ? 0 : info.size, modTime: info.mtime, isDir };
    } catch (error) {
      if (isMissing(error)) throw new PathNotFoundError(path, NAME);
      throw error;
    }
  }

  async list(path: string): Promise<string[]> {
    try {
      const names = await readdir(this.full(path));
      const prefix = path === '/' ? '' : path;
      return names
        .filter((name) => !name.endsWith('.tmp'))
        .sort()
        .map((name) => `${prefix}/${name}`);
    } catch (error) {
      if (isMissing(error)) throw new PathNotFoundError(path, NAME);
      throw error;
    }
  }

  async move(source: string, destination: string): Promise<void> {
    const target = this.full(destination);
    await mkdir(dirname(target), { recursive: true });
    try {
      // What is moved into place (a committed upload) must be on disk before it is visible there.
      const handle = await open(this.full(source), 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(this.full(source), target);
    } catch (error) {
      if (isMissing(error)) throw new PathNotFoundError(source, NAME);
      throw error;
    }
  }

  async delete(path: string): Promise<void> {
    await this.stat(path);
    await rm(this.full(path), { recursive: true, force: true });
  }

  async redirectURL(): Promise<string | null> {
    return null;
  }

  walk(path: string, visit: (info: FileInfo) => Promise<WalkDecision> | WalkDecision, signal?: AbortSignal): Promise<void> {
    return walkByListing(this, path, visit, signal);
  }

  /** Removes temporary files (`*.tmp`) that writes interrupted by a crash left, last modified before `before`. */
  async purgeOrphans(before: Date, dryRun: boolean): Promise<string[]> {
    const purged: string[] = [];
    const entries = await readdir(this.options.rootDirectory, { recursive: true, withFileTypes: true }).catch((error: unknown) => {
      if (isMissing(error)) return [];
      throw error;
    });
    for (const entry of entries) {
      if (!entry.isFile() || !entry.name.endsWith('.tmp')) continue;
      const full = join(entry.parentPath, entry.name);
      const info = await lstat(full).catch(() => undefined);
      if (info === undefined || info.mtime >= before) continue;
      purged.push(`${full.slice(this.options.rootDirectory.length)} (${info.size} bytes)`);
      if (!dryRun) await rm(full, { force: true });
    }
    return purged;
  }
}
