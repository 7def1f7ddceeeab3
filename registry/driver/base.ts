/**
 * The one wrapper around every storage driver: it checks paths, times every operation, counts failures,
 * and normalises errors so that callers only ever see the typed errors of `errors.ts`.
 */
import type { Readable } from 'node:stream';
import type { Counter, Histogram } from 'prom-client';
import { PATH_PATTERN, type FileInfo, type StorageDriver, type WalkDecision, type WriteOptions } from './driver.js';
import { DriverError, InvalidPathError, PathNotFoundError, isDriverContractError } from './errors.js';

/** The metrics the wrapper records into. */
export interface DriverMetrics {
  readonly storageDuration: Histogram<'driver' | 'operation'>;
  readonly storageErrors: Counter<'driver' | 'operation'>;
}

/** Wraps a driver with path checks, metrics and error normalisation. */
export class BaseDriver implements StorageDriver {
  readonly name: string;
  /** Errors thrown by callers' own code run inside an operation (`verify`), which are rethrown as they are. */
  private readonly callerErrors = new WeakSet<object>();

  constructor(
    private readonly inner: StorageDriver,
    private readonly metrics?: DriverMetrics,
  ) {
    this.name = inner.name;
  }

  getContent(path: string, signal?: AbortSignal): Promise<Buffer> {
    return this.run('get_content', [path], () => this.inner.getContent(path, signal));
  }

  putContent(path: string, content: Uint8Array, signal?: AbortSignal): Promise<void> {
    return this.run('put_content', [path], () => this.inner.putContent(path, content, signal));
  }

  putContentIfAbsent(path: string, content: Uint8Array, signal?: AbortSignal): Promise<boolean> {
    return this.run('put_content_if_absent', [path], () => this.inner.putContentIfAbsent(path, content, signal));
  }

  reader(path: string, offset = 0, length?: number, signal?: AbortSignal): Promise<Readable> {
    return this.run('reader', [path], () => this.inner.reader(path, offset, length, signal));
  }

  writeStream(path: string, source: Readable, options: WriteOptions): Promise<number> {
    const { verify } = options;
    // A verification failure is the caller's verdict on the content, not a storage fault: it passes through.
    const checked = verify && (async () => {
      try {
        await verify();
      } catch (error) {
        if (typeof error === 'object' && error !== null) this.callerErrors.add(error);
        throw error;
      }
    });
    return this.run('write_stream', [path], () => this.inner.writeStream(path, source, { ...options, ...(checked ? { verify: checked } : {}) }));
  }

  stat(path: string, signal?: AbortSignal): Promise<FileInfo> {
    return this.run('stat', [path], () => this.inner.stat(path, signal));
  }

  list(path: string, signal?: AbortSignal): Promise<string[]> {
    return this.run('list', [path], () => this.inner.list(path, signal));
  }

  move(source: string, destination: string, signal?: AbortSignal): Promise<void> {
    return this.run('move', [source, destination], () => this.inner.move(source, destination, signal));
  }

  delete(path: string, signal?: AbortSignal): Promise<void> {
    return this.run('delete', [path], () => this.inner.delete(path, signal));
  }

  redirectURL(method: 'GET' | 'HEAD', path: string): Promise<string | null> {
    return this.run('redirect_url', [path], () => this.inner.redirectURL(method, path));
  }

  purgeOrphans(before: Date, dryRun: boolean): Promise<string[]> {
    const inner = this.inner;
    if (inner.purgeOrphans === undefined) return Promise.resolve([]);
    return this.run('purge_orphans', [], () => inner.purgeOrphans?.(before, dryRun) ?? Promise.resolve([]));
  }

  walk(path: string, visit: (info: FileInfo) => Promise<WalkDecision> | WalkDecision, signal?: AbortSignal): Promise<void> {
    return this.run('walk', [path], () => this.inner.walk(path, visit, signal));
  }

  private async run<T>(operation: string, paths: string[], fn: () => Promise<T>): Promise<T> {
    for (const path of paths) {
      if (!PATH_PATTERN.test(path) || path.split('/').some((part) => part === '.' || part === '..')) {
        throw new InvalidPathError(path, this.name);
      }
    }
    const labels = { driver: this.name, operation };
    const end = this.metrics?.storageDuration.startTimer(labels);
    try {
      return await fn();
    } catch (error) {
      if (typeof error === 'object' && error !== null && this.callerErrors.has(error)) throw error;
      if (!(error instanceof PathNotFoundError)) this.metrics?.storageErrors.inc(labels);
      if (isDriverContractError(error)) throw error;
      throw new DriverError(this.name, operation, error);
    } finally {
      end?.();
    }
  }
}
