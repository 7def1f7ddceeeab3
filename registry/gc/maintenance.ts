/**
 * The replica's side of garbage collection (DESIGN.md §2). Every replica polls the maintenance marker in
 * the shared store (every second, ten times a second while a collection runs) and heartbeats into it.
 * While a collection marks (`phase: 'mark'`), the replica journals every write that can make content
 * reachable, and reports journaling once the writes that began before it have ended (or been stopped after
 * the drain timeout), so that none lands behind the mark unrecorded. When the window opens (`phase:
 * 'window'`, a new epoch) it refuses new writes (503 with Retry-After), lets the writes in flight finish
 * (aborting those still running after the drain timeout), stores the rest of its journal, and acknowledges
 * the epoch in its heartbeat. It writes again when the marker is gone, or when the window's time-to-live has
 * passed on its own monotonic clock since it first saw it (so a collector that died cannot leave the
 * registry read-only).
 *
 * A replica that cannot read the marker or store its heartbeat for `fenceAfterMs` refuses writes until it
 * can again: it might be missing a window, and a collector will soon count it as gone and not wait for it.
 */
import type { WriteGuard } from '../api/context.js';
import type { StorageDriver } from '../driver/driver.js';
import { PathNotFoundError } from '../driver/errors.js';
import { UnavailableError } from '../storage/errors.js';
import { maintenanceMarkerPath, replicaHeartbeatPath } from '../storage/paths.js';
import { ReplicaJournal, type JournalState } from './journal.js';

/** How long one read of the marker or one heartbeat may take before it counts as failed. */
const STORE_TIMEOUT_MS = 5000;

/** How long aborted writes may take to unwind before the replica stops waiting for them (and keeps its acknowledgement or report back). */
const ABORT_GRACE_MS = 1000;

/** The marker a collector writes: first to start journaling (`mark`), then to open the window (`window`). */
export interface MaintenanceMarker {
  /** Unique per collection; replicas journal for it and acknowledge its window. */
  readonly epoch: string;
  /** `mark` (journal writes) or `window` (refuse writes); absent means `window`. */
  readonly phase?: 'mark' | 'window';
  /** How long replicas honour the marker after they see it (or, in `mark`, after they see it renewed). */
  readonly ttlSeconds: number;
  /** Bumped by the collector to renew a `mark` phase. */
  readonly renewal?: number;
  readonly reason: string;
}

/** A replica's heartbeat object. */
export interface Heartbeat {
  readonly id: string;
  /** Wall-clock milliseconds of the beat, for liveness. */
  readonly at: number;
  /** Wall-clock milliseconds when the replica started (one that started inside a window has nothing to journal). */
  readonly since: number;
  /** The epoch whose window this replica has stopped writing for, with its journal stored, if any. */
  readonly ackEpoch?: string;
  /** The collection epoch this replica journals for, and the batches stored. */
  readonly journal?: JournalState;
}

/** Settings of a maintenance watcher. */
export interface MaintenanceOptions {
  readonly replicaId: string;
  /** How often to read the marker while no collection runs (default 1 s). */
  readonly pollMs?: number;
  /** How often to read it while a collection marks or holds its window, so the window opens and closes promptly (default 100 ms). */
  readonly activePollMs?: number;
  readonly heartbeatMs?: number;
  readonly drainTimeoutMs?: number;
  /** Refuse writes when the marker could not be read or the heartbeat stored for this long (default 6 s). */
  readonly fenceAfterMs?: number;
  /** A monotonic clock in milliseconds; injected by tests. */
  readonly monotonicNow?: () => number;
  readonly onChange?: (state: { readOnly: boolean; epoch?: string; reason: string }) => void;
}

/** Follows the maintenance marker, journals and guards writes accordingly; wraps the configured write guard. */
export class MaintenanceWatcher implements WriteGuard {
  /** The write journal the storage services record into. */
  readonly journal: ReplicaJournal;
  private active: { epoch: string; seenAt: number; ttlMs: number } | undefined;
  private marking: { epoch: string; renewal: number; seenAt: number; ttlMs: number } | undefined;
  private readonly expired = new Set<string>();
  private acked: { epoch: string; journal: JournalState | undefined } | undefined;
  /** The epoch whose journaling has been reported: every write from before it had ended. */
  private journalReported: string | undefined;
  private readonly inFlight = new Set<AbortController>();
  /** Writes in flight by their request's signal, and those that recorded while nothing was journaled. */
  private readonly byRequest = new Map<AbortSignal, AbortController>();
  private readonly unjournaled = new Set<AbortController>();
  private timer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private lastPoll: number;
  private lastBeat: number;
  private stopped = false;
  private readonly since = Date.now();

  constructor(
    private readonly driver: StorageDriver,
    private readonly base: WriteGuard,
    private readonly options: MaintenanceOptions,
  ) {
    this.now = options.monotonicNow ?? (() => performance.now());
    this.journal = new ReplicaJournal(driver, options.replicaId, (signal) => {
      const write = this.byRequest.get(signal);
      if (write !== undefined) this.unjournaled.add(write);
    });
    this.lastPoll = this.lastBeat = this.now();
  }

  /** Reads the marker and stores a heartbeat once, then keeps polling and heartbeating. */
  async start(): Promise<void> {
    await Promise.allSettled([this.poll(), this.heartbeat()]);
    const poll = () => {
      const busy = this.marking !== undefined || this.active !== undefined;
      this.timer = setTimeout(
        () => {
          this.poll().catch(() => undefined).finally(() => this.stopped || poll());
        },
        busy ? (this.options.activePollMs ?? 100) : (this.options.pollMs ?? 1000),
      );
      this.timer.unref();
    };
    const beat = () => {
      this.heartbeatTimer = setTimeout(() => {
        this.heartbeat().catch(() => undefined).finally(() => this.stopped || beat());
      }, this.options.heartbeatMs ?? 2000);
      this.heartbeatTimer.unref();
    };
    poll();
    beat();
  }

  /** Stops polling and heartbeating, and removes the heartbeat so no collector waits for this replica. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.heartbeatTimer !== undefined) clearTimeout(this.heartbeatTimer);
    await this.driver.delete(replicaHeartbeatPath(this.options.replicaId)).catch(() => undefined);
  }

  /** True while a window is open for this replica. */
  get inMaintenance(): boolean {
    this.expireIfDue();
    return this.active !== undefined;
  }

  assertWritable(): void {
    this.base.assertWritable();
    if (this.inMaintenance && this.active !== undefined) {
      const left = Math.max(1, Math.ceil((this.active.ttlMs - (this.now() - this.active.seenAt)) / 1000));
      throw new UnavailableError('the registry is in maintenance (garbage collection); retry shortly', {
        retryAfterSeconds: Math.min(left, 30),
        detail: { epoch: this.active.epoch },
      });
    }
    const fenceAfter = this.options.fenceAfterMs ?? 6000;
    const silent = this.now() - Math.min(this.lastPoll, this.lastBeat);
    if (silent > fenceAfter) {
      throw new UnavailableError('the registry cannot reach its storage to coordinate with garbage collection; retry shortly', {
        retryAfterSeconds: 5,
      });
    }
  }

  /** Registers a write in flight; returns its abort signal and the function that ends it. */
  beginWrite(requestSignal?: AbortSignal): { signal: AbortSignal; end(): void } {
    const controller = new AbortController();
    this.inFlight.add(controller);
    if (requestSignal !== undefined) this.byRequest.set(requestSignal, controller);
    return {
      signal: controller.signal,
      end: () => {
        this.inFlight.delete(controller);
        this.unjournaled.delete(controller);
        if (requestSignal !== undefined) this.byRequest.delete(requestSignal);
      },
    };
  }

  /** Reads the marker once and acts on it. */
  async poll(): Promise<void> {
    let marker: MaintenanceMarker | undefined;
    try {
      // Bounded, like the heartbeat: a hung request must not stop the watcher's loop.
      marker = JSON.parse((await this.driver.getContent(maintenanceMarkerPath(), AbortSignal.timeout(STORE_TIMEOUT_MS))).toString('utf8')) as MaintenanceMarker;
    } catch (error) {
      if (!(error instanceof PathNotFoundError) && !(error instanceof SyntaxError)) throw error;
    }
    this.lastPoll = this.now();
    if (marker === undefined) {
      this.endMarking();
      if (this.active !== undefined) {
        this.active = undefined;
        this.acked = undefined;
        this.options.onChange?.({ readOnly: false, reason: 'MaintenanceEnded' });
        await this.heartbeat();
      }
      return;
    }
    if (this.active !== undefined && this.active.epoch !== marker.epoch) {
      // A marker of another collection: the window this replica holds is over (one collection at a time),
      // even if it never saw the marker go (collections can follow each other within one poll).
      this.active = undefined;
      this.acked = undefined;
      this.options.onChange?.({ readOnly: false, reason: 'MaintenanceEnded' });
    }
    if (marker.phase === 'mark') {
      await this.followMark(marker);
      return;
    }
    if (this.expired.has(marker.epoch)) return;
    if (this.active?.epoch === marker.epoch) {
      this.expireIfDue();
      // Still refusing writes but not acknowledged (its journal could not be stored): try again.
      if (this.active !== undefined && this.acked?.epoch !== marker.epoch) await this.acknowledge(marker.epoch);
      return;
    }
    this.active = { epoch: marker.epoch, seenAt: this.now(), ttlMs: marker.ttlSeconds * 1000 };
    this.options.onChange?.({ readOnly: true, epoch: marker.epoch, reason: marker.reason });
    await this.finish([...this.inFlight]);
    await this.acknowledge(marker.epoch);
  }

  /**
   * Stores the rest of the journal and acknowledges the window in the heartbeat. Without its whole journal,
   * or while a stopped write has not ended, the replica does not acknowledge; it keeps refusing writes and
   * the next poll tries again.
   */
  private async acknowledge(epoch: string): Promise<void> {
    // A write stopped for the window that has not ended yet could still make content reachable.
    if (this.inFlight.size > 0) return;
    const journaled = this.marking?.epoch === epoch;
    if (journaled) {
      try {
        await this.journal.flush();
      } catch {
        return;
      }
    }
    this.acked = { epoch, journal: journaled ? this.journal.state : undefined };
    this.endMarking();
    await this.heartbeat();
  }

  /** Journals for a collection that marks; stops when the marker's renewal lapses. */
  private async followMark(marker: MaintenanceMarker): Promise<void> {
    const renewal = marker.renewal ?? 0;
    if (this.expired.has(marker.epoch)) return;
    if (this.marking?.epoch === marker.epoch && this.marking.renewal === renewal) {
      if (this.now() - this.marking.seenAt > this.marking.ttlMs) {
        this.expired.add(marker.epoch);
        this.endMarking();
        await this.heartbeat();
      }
      return;
    }
    const starting = this.marking?.epoch !== marker.epoch;
    this.marking = { epoch: marker.epoch, renewal, seenAt: this.now(), ttlMs: marker.ttlSeconds * 1000 };
    // Writes that recorded something before this point did so for no collection, and may still write it;
    // writes that have recorded nothing yet will record for this one (an upload's bytes never do).
    const earlier = starting ? [...this.inFlight].filter((write) => this.unjournaled.has(write)) : [];
    this.journal.begin(marker.epoch);
    if (starting) void this.reportJournaling(marker.epoch, earlier);
  }

  /**
   * Reports journaling for `epoch` once the writes that began before it have ended: the collection marks as
   * soon as every replica reports, and such a write could otherwise land behind its mark, unjournaled. Not
   * awaited by the poll, which keeps following the marker meanwhile.
   */
  private async reportJournaling(epoch: string, earlier: readonly AbortController[]): Promise<void> {
    await this.finish(earlier);
    while (this.stillRunning(earlier) && this.marking?.epoch === epoch && !this.stopped) await new Promise((resolve) => setTimeout(resolve, 100));
    if (this.marking?.epoch !== epoch || this.stopped) return;
    this.journalReported = epoch;
    await this.heartbeat().catch(() => undefined);
  }

  private endMarking(): void {
    if (this.marking === undefined) return;
    this.marking = undefined;
    this.journal.end();
  }

  /**
   * Waits for `writes` to end, aborting those still running after the drain timeout, then gives the aborted
   * ones a moment to unwind. Bounded either way: the caller checks `stillRunning` and keeps its promise
   * (journaling reported, a window acknowledged) until they have ended; it does not stop following the marker.
   */
  private async finish(writes: readonly AbortController[]): Promise<void> {
    // Real time, not the TTL clock: this is a wait of this process, however the TTL is measured.
    const settle = async (ms: number) => {
      const deadline = performance.now() + ms;
      while (this.stillRunning(writes) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    };
    await settle(this.options.drainTimeoutMs ?? 10_000);
    for (const controller of writes) {
      if (this.inFlight.has(controller)) controller.abort(new UnavailableError('the write was stopped for maintenance; retry it', { retryAfterSeconds: 5 }));
    }
    await settle(ABORT_GRACE_MS);
  }

  private stillRunning(writes: readonly AbortController[]): boolean {
    return writes.some((controller) => this.inFlight.has(controller));
  }

  private expireIfDue(): void {
    if (this.active !== undefined && this.now() - this.active.seenAt > this.active.ttlMs) {
      this.expired.add(this.active.epoch);
      this.options.onChange?.({ readOnly: false, epoch: this.active.epoch, reason: 'MaintenanceExpired' });
      this.active = undefined;
      this.acked = undefined;
    }
  }

  private async heartbeat(): Promise<void> {
    // Journaling is reported once the writes from before it have ended; after acknowledging a window, the
    // journal it stored is reported with the acknowledgement.
    const journaling = this.journal.state;
    const journal = (journaling !== undefined && journaling.epoch === this.journalReported ? journaling : undefined) ?? this.acked?.journal;
    const beat: Heartbeat = {
      id: this.options.replicaId,
      at: Date.now(),
      since: this.since,
      ...(this.acked !== undefined ? { ackEpoch: this.acked.epoch } : {}),
      ...(journal !== undefined ? { journal } : {}),
    };
    await this.driver.putContent(replicaHeartbeatPath(this.options.replicaId), Buffer.from(JSON.stringify(beat)), AbortSignal.timeout(STORE_TIMEOUT_MS));
    this.lastBeat = this.now();
  }
}
