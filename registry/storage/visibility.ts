/**
 * Waiting out read-after-write lag: on an eventually consistent store a read may not yet see a write that
 * was acknowledged, possibly by another replica. Where the registry has reason to expect an object, it
 * retries the read with bounded exponential backoff before taking its absence as real.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** How long to keep looking for an object that should be there. */
export interface VisibilityPolicy {
  /** Retries after the first read; 0 for a strongly consistent store. */
  readonly retries: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
}

/** No waiting: the store is strongly consistent (filesystem, in-memory). */
export const STRONGLY_CONSISTENT: VisibilityPolicy = { retries: 0, initialDelayMs: 0, maxDelayMs: 0 };

/**
 * Up to about three seconds of waiting, for objects the registry knows were written (an upload's bytes it
 * reported, blobs a manifest names): object stores (S3 and compatible servers).
 */
export const OBJECT_STORE: VisibilityPolicy = { retries: 8, initialDelayMs: 25, maxDelayMs: 800 };

/**
 * About a fifth of a second, for pulls of objects that may or may not exist: enough for an object store's
 * usual lag after a push through another replica, short enough that a genuine 404 stays quick.
 */
export const OBJECT_STORE_PULL: VisibilityPolicy = { retries: 3, initialDelayMs: 25, maxDelayMs: 100 };

/**
 * Calls `read` until `done` accepts its result or the policy's retries are spent, and returns the last
 * result either way; the caller decides what a still-unaccepted result means.
 */
export async function readUntil<T>(
  policy: VisibilityPolicy,
  read: () => Promise<T>,
  done: (value: T) => boolean,
  signal?: AbortSignal,
): Promise<T> {
  let value = await read();
  let delay = policy.initialDelayMs;
  for (let attempt = 0; attempt < policy.retries && !done(value); attempt++) {
    await sleep(delay, undefined, signal ? { signal } : undefined);
    delay = Math.min(policy.maxDelayMs, delay * 2);
    value = await read();
  }
  return value;
}

/** The longest a policy waits in all (the sum of its delays): how far behind the store is taken to be, at most. */
export function longestWaitMs(policy: VisibilityPolicy): number {
  let total = 0;
  let delay = policy.initialDelayMs;
  for (let attempt = 0; attempt < policy.retries; attempt++) {
    total += delay;
    delay = Math.min(policy.maxDelayMs, delay * 2);
  }
  return total;
}
