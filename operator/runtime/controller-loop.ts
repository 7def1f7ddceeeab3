/**
 * Runs a controller: workers take keys from the queue and reconcile them, one key at a time; failures go
 * back with backoff, successes may ask to be requeued after a delay. Records the operator's metrics.
 */
import type { Counter, Gauge, Histogram } from 'prom-client';
import type { WorkQueue } from './work-queue.js';

/** The metrics a controller loop records. */
export interface ControllerMetrics {
  readonly reconcileTotal: Counter<'controller' | 'result'>;
  readonly reconcileErrors: Counter<'controller'>;
  readonly reconcileDuration: Histogram<'controller'>;
  readonly queueDepth: Gauge<'controller'>;
  readonly queueRetries: Gauge<'controller'>;
}

/** Runs `workers` workers until the queue shuts down. */
export async function runControllerLoop(options: {
  readonly name: string;
  readonly queue: WorkQueue;
  readonly workers: number;
  readonly reconcile: (key: string) => Promise<{ requeueAfterMs?: number }>;
  readonly metrics: ControllerMetrics;
  readonly onError: (key: string, error: unknown) => void;
}): Promise<void> {
  const { name, queue, metrics } = options;
  const worker = async () => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      const end = metrics.reconcileDuration.startTimer({ controller: name });
      try {
        const result = await options.reconcile(key);
        queue.forget(key);
        metrics.reconcileTotal.inc({ controller: name, result: result.requeueAfterMs !== undefined ? 'requeue_after' : 'success' });
        if (result.requeueAfterMs !== undefined) queue.addAfter(key, result.requeueAfterMs);
      } catch (error) {
        metrics.reconcileTotal.inc({ controller: name, result: 'error' });
        metrics.reconcileErrors.inc({ controller: name });
        options.onError(key, error);
        queue.addRateLimited(key);
      } finally {
        end();
        queue.done(key);
        metrics.queueDepth.set({ controller: name }, queue.length);
        metrics.queueRetries.set({ controller: name }, queue.retries);
      }
    }
  };
  await Promise.all(Array.from({ length: options.workers }, worker));
}
