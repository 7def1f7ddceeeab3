/**
 * The operator's Prometheus metrics, on one prom-client Registry of its own.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ControllerMetrics } from './runtime/controller-loop.js';

/**
 * What the GarbageCollection controller reports, per GarbageCollection (`namespace`, `name`: one series per
 * object, as kube-state-metrics labels its series); the `last` gauges describe the last finished run.
 */
export interface GarbageCollectionMetrics {
  readonly runsTotal: Counter<'namespace' | 'name' | 'result'>;
  readonly active: Gauge<'namespace' | 'name'>;
  readonly lastSuccessTimestamp: Gauge<'namespace' | 'name'>;
  readonly lastBytesFreed: Gauge<'namespace' | 'name'>;
  readonly lastBlobsDeleted: Gauge<'namespace' | 'name'>;
  readonly lastManifestsDeleted: Gauge<'namespace' | 'name'>;
  readonly lastMarkSeconds: Gauge<'namespace' | 'name'>;
  readonly lastReadOnlyWindowSeconds: Gauge<'namespace' | 'name'>;
}

/** The operator's metrics and the registry they live on. */
export interface OperatorMetrics extends ControllerMetrics {
  readonly register: Registry;
  readonly leader: Gauge;
  readonly gc: GarbageCollectionMetrics;
}

/** Creates the operator's metrics. */
export function createOperatorMetrics(): OperatorMetrics {
  const register = new Registry();
  collectDefaultMetrics({ register, prefix: 'berth_operator_' });
  const registers = [register];
  const gcLabels = ['namespace', 'name'] as const;
  return {
    register,
    reconcileTotal: new Counter({ name: 'berth_operator_reconcile_total', help: 'Reconciles, by controller and result.', labelNames: ['controller', 'result'], registers }),
    reconcileErrors: new Counter({ name: 'berth_operator_reconcile_errors_total', help: 'Reconciles that failed, by controller.', labelNames: ['controller'], registers }),
    reconcileDuration: new Histogram({
      name: 'berth_operator_reconcile_duration_seconds',
      help: 'Time one reconcile took, by controller.',
      labelNames: ['controller'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    queueDepth: new Gauge({ name: 'berth_operator_workqueue_depth', help: 'Keys waiting in the work queue, by controller.', labelNames: ['controller'], registers }),
    queueRetries: new Gauge({ name: 'berth_operator_workqueue_retries', help: 'Keys requeued after a failure since start, by controller.', labelNames: ['controller'], registers }),
    leader: new Gauge({ name: 'berth_operator_leader', help: '1 while this process holds the leader Lease.', registers }),
    gc: {
      runsTotal: new Counter({ name: 'berth_gc_runs_total', help: 'Finished garbage-collection runs, by GarbageCollection and result (Succeeded, Failed).', labelNames: ['namespace', 'name', 'result'], registers }),
      active: new Gauge({ name: 'berth_gc_active', help: '1 while a run of the GarbageCollection is active.', labelNames: gcLabels, registers }),
      lastSuccessTimestamp: new Gauge({ name: 'berth_gc_last_success_timestamp_seconds', help: 'When the last successful run finished (Unix time).', labelNames: gcLabels, registers }),
      lastBytesFreed: new Gauge({ name: 'berth_gc_last_bytes_freed', help: 'Bytes of blob data the last finished run deleted.', labelNames: gcLabels, registers }),
      lastBlobsDeleted: new Gauge({ name: 'berth_gc_last_blobs_deleted', help: 'Blobs the last finished run deleted.', labelNames: gcLabels, registers }),
      lastManifestsDeleted: new Gauge({ name: 'berth_gc_last_manifests_deleted', help: 'Manifests the last finished run deleted.', labelNames: gcLabels, registers }),
      lastMarkSeconds: new Gauge({ name: 'berth_gc_last_mark_seconds', help: 'How long the online mark of the last finished run took.', labelNames: gcLabels, registers }),
      lastReadOnlyWindowSeconds: new Gauge({
        name: 'berth_gc_last_read_only_window_seconds',
        help: 'How long the last finished run kept the registry read-only.',
        labelNames: gcLabels,
        registers,
      }),
    },
  };
}
