/**
 * The operator's Prometheus metrics, on one prom-client Registry of its own.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ControllerMetrics } from './runtime/controller-loop.js';

/** The operator's metrics and the registry they live on. */
export interface OperatorMetrics extends ControllerMetrics {
  readonly register: Registry;
  readonly leader: Gauge;
}

/** Creates the operator's metrics. */
export function createOperatorMetrics(): OperatorMetrics {
  const register = new Registry();
  collectDefaultMetrics({ register, prefix: 'berth_operator_' });
  const registers = [register];
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
  };
}
