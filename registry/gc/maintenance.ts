/**
 * The replica's side of garbage collection's read-only window. Every replica polls the maintenance marker
 * in the shared store; when a new epoch appears it refuses new writes (503 with Retry-After), lets the
 * writes in flight finish (aborting those still running after the drain timeout), and acknowledges the
 * epoch in its heartbeat. It writes again when the marker is gone, or when the marker's time-to-live has
 * passed on its own monotonic clock since it first saw it (so a collector that died cannot leave the
 * registry read-only).
 */
import type { WriteGuard } from '../api/context.js';
import type { StorageDriver } from '../driver/driver.js';
import { PathNotFoundError } from '../driver/errors.js';
import { UnavailableError } from '../storage/errors.js';
import { maintenanceMarkerPath, replicaHeartbeatPath } from '../storage/paths.js';

/** The marker a collector writes to open a window. */
export interface MaintenanceMarker {
  /** Unique per window; replicas acknowledge it. */
  readonly epoch: string;
  /** How long replicas honour the marker after they first see it. */
  readonly ttlSeconds: number;
  readonly reason: string;
}

/** A replica's heartbeat object. */
export interface Heartbeat {
  readonly id: string;
  /** Wall-clock milliseconds of the beat, for liveness. */
  readonly at: number;
  /** The epoch this replica has stopped writing for, if any. */
  readonly ackEpoch?: string;
}

/** Settings of a maintenance watcher. */
export interface MaintenanceOptions {
  readonly replicaId: string;
  readonly pollMs?: number;
  readonly heartbeatMs?: number;
  readonly drainTimeoutMs?: number;
  /** A monotonic clock in milliseconds; injected by tests. */
  readonly monotonicNow?: () => number;
  readonly onChange?: (state: { readOnly: boolean; epoch?: string; reason: string }) => void;
}

/** Follows the maintenance marker and guards writes accordingly; wraps the configured write guard. */
export class MaintenanceWatcher implements WriteGuard {
  private active: { epoch: string; seenAt: number; ttlMs: number } | undefined;
  private readonly expired = new Set<string>();
  private acked: string | undefined;
  private readonly inFlight = new Set<AbortController>();
  private timer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(
    private readonly driver: StorageDriver,
    private readonly base: WriteGuard,
    private readonly options: MaintenanceOptions,
  ) {
    this.now = options.monotonicNow ?? (() => performance.now());
  }

  /** Starts polling and heartbeating. */
  start(): void {
    const poll = () => {
      this.poll().catch(() => undefined);
      this.timer = setTimeout(poll, this.options.pollMs ?? 1000);
      this.timer.unref();
    };
    const beat = () => {
      this.heartbeat().catch(() => undefined);
      this.heartbeatTimer = setTimeout(beat, this.options.heartbeatMs ?? 2000);
      this.heartbeatTimer.unref();
    };
    poll();
    beat();
  }

  /** Stops polling and heartbeating. */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.heartbeatTimer !== undefined) clearTimeout(this.heartbeatTimer);
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
  }

  /** Registers a write in flight; returns its abort signal and the function that ends it. */
  beginWrite(): { signal: AbortSignal; end(): void } {
    const controller = new AbortController();
    this.inFlight.add(controller);
    return { signal: controller.signal, end: () => this.inFlight.delete(controller) };
  }

  /** Reads the marker once and acts on it. */
  async poll(): Promise<void> {
    let marker: MaintenanceMarker | undefined;
    try {
      marker = JSON.parse((await this.driver.getContent(maintenanceMarkerPath())).toString('utf8')) as MaintenanceMarker;
    } catch (error) {
      if (!(error instanceof PathNotFoundError) && !(error instanceof SyntaxError)) throw error;
    }
    if (marker === undefined) {
      if (this.active !== undefined) {
        this.active = undefined;
        this.acked = undefined;
        this.options.onChange?.({ readOnly: false, reason: 'MaintenanceEnded' });
        await this.heartbeat();
      }
      return;
    }
    if (this.expired.has(marker.epoch) || this.active?.epoch === marker.epoch) {
      this.expireIfDue();
      return;
    }
    this.active = { epoch: marker.epoch, seenAt: this.now(), ttlMs: marker.ttlSeconds * 1000 };
    this.options.onChange?.({ readOnly: true, epoch: marker.epoch, reason: marker.reason });
    await this.drain();
    this.acked = marker.epoch;
    await this.heartbeat();
  }

  /** Waits for the writes in flight to end, aborting those still running after the drain timeout. */
  private async drain(): Promise<void> {
    // Real time, not the TTL clock: the drain is a wait of this process, however the TTL is measured.
    const deadline = performance.now() + (this.options.drainTimeoutMs ?? 10_000);
    while (this.inFlight.size > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    for (const controller of this.inFlight) controller.abort(new UnavailableError('the write was stopped for maintenance; retry it', { retryAfterSeconds: 5 }));
    while (this.inFlight.size > 0) await new Promise((resolve) => setTimeout(resolve, 20));
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
    const beat: Heartbeat = { id: this.options.replicaId, at: Date.now(), ...(this.acked !== undefined ? { ackEpoch: this.acked } : {}) };
    await this.driver.putContent(replicaHeartbeatPath(this.options.replicaId), Buffer.from(JSON.stringify(beat)));
  }
}
