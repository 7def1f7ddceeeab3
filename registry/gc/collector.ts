/**
 * The collector's side of garbage collection with a short read-only window (DESIGN.md §2), over a store
 * that live replicas keep writing to:
 *
 * 1. take the store's GC lock (two runs never overlap);
 * 2. write the marker in phase `mark` and wait until every live replica journals for its epoch;
 * 3. mark online and find the candidates (the work that grows with the store);
 * 4. open the window (marker phase `window`) and wait for every live replica's acknowledgement, checking
 *    again who is live;
 * 5. re-mark from the replicas' journals, sweep what is still unmarked, and clear the marker;
 * 6. outside the window: purge abandoned uploads, old journals and the heartbeats of long-gone replicas.
 *
 * The window's work follows the writes made during the mark and the garbage deleted, not the store's size.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StorageDriver } from '../driver/driver.js';
import { PathNotFoundError } from '../driver/errors.js';
import { baseName, deleteIfPresent, listIfPresent } from '../storage/links.js';
import { gcLockPath, journalEpochRoot, journalsRoot, maintenanceMarkerPath, replicaHeartbeatPath, replicasRoot } from '../storage/paths.js';
import { longestWaitMs, readUntil, STRONGLY_CONSISTENT, type VisibilityPolicy } from '../storage/visibility.js';
import { readJournals } from './journal.js';
import type { Heartbeat, MaintenanceMarker } from './maintenance.js';
import {
  collect,
  describeCandidates,
  dropMarked,
  markAndFindCandidates,
  purgeOldUploads,
  reportSweep,
  sweep,
  type CollectOptions,
  type CollectResult,
} from './mark-sweep.js';

/** How the collector coordinates with the replicas. */
export interface WindowOptions {
  /** How long replicas stay read-only if the collector dies inside the window. */
  readonly readOnlyTimeoutMs: number;
  /** How long to wait for every live replica to journal, or to acknowledge the window (default 60 s). */
  readonly ackTimeoutMs?: number;
  /** A replica whose heartbeat is older than this is gone (default 15 s; replicas fence themselves after 6 s). */
  readonly liveAfterMs?: number;
  /** How long replicas keep journaling without hearing from the collector (default 60 s, renewed at a quarter). */
  readonly markTtlMs?: number;
  /** How often heartbeats are read while waiting (default 100 ms). */
  readonly pollMs?: number;
  /** How long to look for journal batches a replica reported (OBJECT_STORE on S3). */
  readonly visibility?: VisibilityPolicy;
  /** How long the GC lock is held without renewal before another run may take it (default 60 s). */
  readonly lockTtlMs?: number;
  /** How long to wait after writing the lock before reading it back (default 1 s). */
  readonly lockSettleMs?: number;
  /** Called after the mark and after the re-mark; tests pause here to stand for a large store's slow steps. */
  readonly pace?: (step: 'marked' | 'remarked') => Promise<void>;
  /** Switches that break the protocol, so the torture test can show it catches the bug. Never in production. */
  readonly unsafe?: { readonly noWindow?: boolean; readonly noRemark?: boolean };
}

/** What a collection did, with the window's figures. */
export interface CollectionResult extends CollectResult {
  /** How long writes were refused (from opening the window to clearing the marker). */
  readonly readOnlyWindowSeconds: number;
  /** Journal entries re-marked inside the window. */
  readonly remarked: number;
  /** Replicas that acknowledged the window. */
  readonly replicas: number;
}

/** Another collection holds the store's GC lock. */
export class CollectionBusyError extends Error {}

/** Another step of the protocol could not complete (a replica did not answer, the lock was lost). */
export class CollectionAbortedError extends Error {}

interface LockRecord {
  readonly owner: string;
  readonly at: number;
}

/** The store-wide GC lock: one object, renewed while held, taken over only when stale. */
class StoreLock {
  private timer: NodeJS.Timeout | undefined;
  private lost = false;

  private constructor(
    private readonly driver: StorageDriver,
    private readonly owner: string,
  ) {}

  /**
   * Takes the lock, or throws CollectionBusyError. A free lock is created atomically by the store; a stale
   * one is overwritten, and `settleMs` later only the last writer still sees itself (it must be longer than
   * twice the store's lag for two runs taking over one stale lock at once). On an eventually consistent store
   * (`visibility`) every read that would change the outcome is looked at again for as long as the store may
   * lag: a lock just released can still show, and one just written can still be missing.
   */
  static async acquire(driver: StorageDriver, owner: string, options: { ttlMs: number; settleMs: number; visibility: VisibilityPolicy }): Promise<StoreLock> {
    const { ttlMs, visibility } = options;
    const heldByOther = (seen: LockRecord | undefined) => seen !== undefined && seen.owner !== owner && Date.now() - seen.at < ttlMs;
    const current = await readUntil(visibility, () => readLock(driver), (seen) => !heldByOther(seen));
    if (current !== undefined && heldByOther(current)) {
      throw new CollectionBusyError(`another garbage collection (${current.owner}) holds the store's lock since ${new Date(current.at).toISOString()}`);
    }
    const lock = new StoreLock(driver, owner);
    if (current === undefined) {
      // A free lock is taken with a create the store decides atomically: of two runs, one gets it.
      if (!(await driver.putContentIfAbsent(gcLockPath(), lock.record()))) throw new CollectionBusyError("another garbage collection took the store's lock");
    } else {
      // A stale lock (its run stopped renewing it) is overwritten: after a pause, only the last writer still sees itself.
      await lock.write();
    }
    // Read back after a pause as well: a store that ignores the create's condition still gets the last-writer check.
    await sleep(options.settleMs);
    const after = await readUntil(visibility, () => readLock(driver), (seen) => seen !== undefined);
    if (after?.owner !== owner) throw new CollectionBusyError(`another garbage collection (${after?.owner ?? 'unknown'}) took the store's lock`);
    lock.timer = setInterval(() => {
      readUntil(visibility, () => readLock(driver), (seen) => seen?.owner === owner).then(
        async (seen) => {
          if (seen?.owner === owner) await lock.write();
          else lock.lost = true;
        },
        () => undefined,
      );
    }, ttlMs / 3);
    lock.timer.unref();
    return lock;
  }

  private record(): Buffer {
    const record: LockRecord = { owner: this.owner, at: Date.now() };
    return Buffer.from(JSON.stringify(record));
  }

  private async write(): Promise<void> {
    await this.driver.putContent(gcLockPath(), this.record());
  }

  /** Throws when another run has taken the lock over. */
  assertHeld(): void {
    if (this.lost) throw new CollectionAbortedError("another garbage collection took over the store's lock");
  }

  async release(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    if ((await readLock(this.driver))?.owner === this.owner) await deleteIfPresent(this.driver, gcLockPath());
  }
}

async function readLock(driver: StorageDriver): Promise<LockRecord | undefined> {
  try {
    return JSON.parse((await driver.getContent(gcLockPath())).toString('utf8')) as LockRecord;
  } catch (error) {
    if (error instanceof PathNotFoundError || error instanceof SyntaxError) return undefined;
    throw error;
  }
}

/**
 * Reads every replica's heartbeat. One that cannot be parsed counts as a live replica that has acknowledged
 * nothing: waiting for it is safe, passing it over is not.
 */
export async function readHeartbeats(driver: StorageDriver): Promise<Heartbeat[]> {
  const beats = await Promise.all(
    (await listIfPresent(driver, replicasRoot())).map(async (path): Promise<Heartbeat | undefined> => {
      try {
        return JSON.parse((await driver.getContent(path)).toString('utf8')) as Heartbeat;
      } catch (error) {
        if (error instanceof PathNotFoundError) return undefined;
        if (error instanceof SyntaxError) return { id: `${baseName(path)} (unreadable heartbeat)`, at: Date.now(), since: 0 };
        throw error;
      }
    }),
  );
  return beats.filter((beat) => beat !== undefined);
}

/** Runs a collection against a store that replicas may be writing to; a dry run only marks and reports. */
export async function runCollection(driver: StorageDriver, options: CollectOptions & WindowOptions): Promise<CollectionResult> {
  if (options.dryRun) return { ...(await collect(driver, options)), readOnlyWindowSeconds: 0, remarked: 0, replicas: 0 };
  const progress = options.progress ?? (() => undefined);
  const owner = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const lock = await StoreLock.acquire(driver, owner, {
    ttlMs: options.lockTtlMs ?? 60_000,
    settleMs: options.lockSettleMs ?? 1000,
    visibility: options.visibility ?? STRONGLY_CONSISTENT,
  });
  const epoch = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const liveAfterMs = options.liveAfterMs ?? 15_000;
  const markTtlMs = options.markTtlMs ?? 60_000;

  const writeMarker = (marker: MaintenanceMarker) => driver.putContent(maintenanceMarkerPath(), Buffer.from(JSON.stringify(marker)));
  /** Waits until every live replica's heartbeat satisfies `ok`, twice in a row (the second read re-checks who is live). */
  const waitForReplicas = async (what: string, ok: (beat: Heartbeat) => boolean): Promise<Heartbeat[]> => {
    const deadline = performance.now() + (options.ackTimeoutMs ?? 60_000);
    let confirmed = false;
    for (;;) {
      const live = (await readHeartbeats(driver)).filter((beat) => Date.now() - beat.at < liveAfterMs);
      const waiting = live.filter((beat) => !ok(beat));
      if (waiting.length === 0) {
        if (confirmed) return live;
        // Look once more, a moment later: a replica that started meanwhile must be waited for too.
        confirmed = true;
        await sleep(options.pollMs ?? 100);
        continue;
      }
      confirmed = false;
      if (performance.now() > deadline) {
        throw new CollectionAbortedError(`${waiting.length} live replica(s) did not ${what} in time: ${waiting.map((beat) => beat.id).join(', ')}`);
      }
      await sleep(options.pollMs ?? 100);
    }
  };

  let renewal = 0;
  let renewTimer: NodeJS.Timeout | undefined;
  let windowOpenedAt: number | undefined;
  let windowSeconds = 0;
  let markerWritten = false;
  try {
    await writeMarker({ epoch, phase: 'mark', ttlSeconds: markTtlMs / 1000, renewal, reason: 'GarbageCollection' });
    markerWritten = true;
    renewTimer = setInterval(() => {
      renewal++;
      writeMarker({ epoch, phase: 'mark', ttlSeconds: markTtlMs / 1000, renewal, reason: 'GarbageCollection' }).catch(() => undefined);
    }, markTtlMs / 4);
    renewTimer.unref();
    const journaling = await waitForReplicas('start journaling', (beat) => beat.journal?.epoch === epoch);
    // What was written before journaling began is found by the mark's listings, which on an eventually
    // consistent store may not show it yet: wait out the store's lag first (nothing is refused meanwhile).
    const lagMs = longestWaitMs(options.visibility ?? STRONGLY_CONSISTENT);
    if (lagMs > 0) {
      progress(`${journaling.length} live replica(s) journal their writes; waiting ${(lagMs / 1000).toFixed(1)} s for the store's listings to catch up`);
      await sleep(lagMs);
    }
    progress(`${journaling.length} live replica(s) journal their writes; marking`);

    const { marker, candidates, startedAt, markSeconds } = await markAndFindCandidates(driver, options);
    const found = describeCandidates(candidates);
    progress(`marked in ${markSeconds.toFixed(2)} s: ${marker.blobs.size} blobs kept, ${found.blobsDeleted.length} blob and ${found.manifestsDeleted.length} manifest candidates`);
    await options.pace?.('marked');
    lock.assertHeld();

    clearInterval(renewTimer);
    let acknowledged: Heartbeat[] = [];
    if (options.unsafe?.noWindow !== true) {
      windowOpenedAt = performance.now();
      const openedAt = Date.now();
      await writeMarker({ epoch, phase: 'window', ttlSeconds: options.readOnlyTimeoutMs / 1000, reason: 'GarbageCollection' });
      acknowledged = await waitForReplicas('acknowledge the read-only window', (beat) =>
        // A replica that started after the window opened has written nothing and journals nothing.
        beat.ackEpoch === epoch && (beat.journal?.epoch === epoch || beat.since >= openedAt),
      );
      progress(`read-only window open: ${acknowledged.length} replica(s) acknowledged`);
    }
    const sweepStarted = performance.now();
    let remarked = 0;
    if (options.unsafe?.noRemark !== true) {
      const expected = new Map(acknowledged.map((beat) => [beat.id, beat.journal?.batches ?? 0]));
      const entries = await readJournals(driver, epoch, expected, options.visibility ?? STRONGLY_CONSISTENT);
      // In parallel, bounded by the marker's request limit: the window grows with the writes during the mark.
      await Promise.all(entries.map((entry) => marker.remark(entry)));
      dropMarked(candidates, marker);
      remarked = entries.length;
    }
    await options.pace?.('remarked');
    lock.assertHeld();
    const swept = await sweep(driver, candidates, marker, options.concurrency);
    await deleteIfPresent(driver, maintenanceMarkerPath());
    markerWritten = false;
    if (windowOpenedAt !== undefined) windowSeconds = (performance.now() - windowOpenedAt) / 1000;
    progress(`window closed after ${windowSeconds.toFixed(3)} s (${remarked} journal entries re-marked)`);

    const uploadsPurged = await purgeOldUploads(driver, options, startedAt);
    // Housekeeping only: a failure here (a replica still finishing a journal batch) leaves it for the next run.
    await cleanUp(driver, liveAfterMs).catch((error: unknown) => progress(`left old journals or heartbeats for the next run: ${(error as Error).message}`));
    reportSweep(options, swept, uploadsPurged);
    return {
      ...swept,
      uploadsPurged,
      markSeconds,
      sweepSeconds: (performance.now() - sweepStarted) / 1000,
      readOnlyWindowSeconds: windowSeconds,
      remarked,
      replicas: acknowledged.length,
    };
  } finally {
    if (renewTimer !== undefined) clearInterval(renewTimer);
    if (markerWritten) await deleteIfPresent(driver, maintenanceMarkerPath()).catch(() => undefined);
    await deleteIfPresent(driver, journalEpochRoot(epoch)).catch(() => undefined);
    await lock.release().catch(() => undefined);
  }
}

/** Deletes the journals of earlier runs and the heartbeats of replicas gone for an hour. */
async function cleanUp(driver: StorageDriver, liveAfterMs: number): Promise<void> {
  for (const dir of await listIfPresent(driver, journalsRoot())) await deleteIfPresent(driver, dir);
  const goneFor = Math.max(3_600_000, liveAfterMs);
  for (const beat of await readHeartbeats(driver)) {
    if (Date.now() - beat.at > goneFor) await deleteIfPresent(driver, replicaHeartbeatPath(baseName(beat.id)));
  }
}
