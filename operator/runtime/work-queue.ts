/**
 * A keyed work queue with client-go's semantics: a key is queued at most once however often it is
 * added; a key being processed is never handed out again until `done`, and if it was added meanwhile it
 * is queued again then; failures are retried with per-key exponential backoff; `addAfter` delays a key.
 */

/** The clock the queue reads and the timers it sets; injected so tests need not wait. */
export interface QueueClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): { unref?(): void } | unknown;
}

/** Backoff for failed keys: base × 2^failures, capped. */
export interface BackoffOptions {
  readonly baseMs: number;
  readonly maxMs: number;
}

const systemClock: QueueClock = { now: () => Date.now(), setTimeout: (fn, ms) => setTimeout(fn, ms) };

/** A de-duplicating, rate-limited queue of keys. */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;
  /** Keys handed out again after a failure, for metrics. */
  retries = 0;

  constructor(
    private readonly backoff: BackoffOptions = { baseMs: 5, maxMs: 1_000_000 },
    private readonly clock: QueueClock = systemClock,
  ) {}

  /** Keys waiting to be handed out. */
  get length(): number {
    return this.queue.length;
  }

  /** Queues a key unless it is queued already; a key being processed is queued again when it is done. */
  add(key: string): void {
    if (this.shuttingDown) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queued.add(key);
    this.queue.push(key);
  }

  /** Queues a key after `ms` milliseconds. */
  addAfter(key: string, ms: number): void {
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const timer = this.clock.setTimeout(() => this.add(key), ms) as { unref?(): void } | undefined;
    timer?.unref?.();
  }

  /** Queues a key after its backoff, which doubles with every failure since the last `forget`. */
  addRateLimited(key: string): void {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    this.retries++;
    this.addAfter(key, this.delayFor(failures));
  }

  /** The backoff before the next retry of a key that failed `failures` times already. */
  delayFor(failures: number): number {
    return Math.min(this.backoff.maxMs, this.backoff.baseMs * 2 ** Math.min(failures, 40));
  }

  /** Clears a key's failure count (after a success). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** How often a key has failed since it was last forgotten. */
  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Resolves with the next key, or undefined once the queue shuts down. The key stays processing until `done`. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.queued.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks a key processed; queues it again if it was added meanwhile. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  /** Stops handing out keys; pending `get` calls resolve with undefined. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }
}
