/**
 * In-process replicas that take part in garbage collection's protocol: each has its own server, caches,
 * maintenance watcher (polling the marker, heartbeating, journaling) and write guard, over one shared driver.
 * Timings are shortened so a test sees a window open and close in well under a second.
 */
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import type { StorageDriver } from '../../registry/driver/driver.js';
import { MaintenanceWatcher } from '../../registry/gc/maintenance.js';
import { createRegistryMetrics } from '../../registry/metrics.js';
import { buildServer } from '../../registry/server.js';
import { RegistryStorage } from '../../registry/storage/registry-storage.js';
import { OBJECT_STORE, STRONGLY_CONSISTENT } from '../../registry/storage/visibility.js';
import { SwitchableWriteGuard } from '../../registry/write-guard.js';

/**
 * The fast timings the replicas use; a collector in the same test should use `COLLECTOR_TIMINGS`. The drain
 * timeout stays above the longest wait for read-after-write lag (OBJECT_STORE, about 3.2 s), as the
 * production default (10 s) does: a manifest push naming a blob a collection just deleted waits that long
 * for it before it is refused, and a drain shorter than that aborts it at every window, so with collections
 * back to back its retries would never get an answer.
 */
export const REPLICA_TIMINGS = { pollMs: 50, heartbeatMs: 200, drainTimeoutMs: 5000, fenceAfterMs: 3000 } as const;

/** Collector settings that match REPLICA_TIMINGS. */
export const COLLECTOR_TIMINGS = { pollMs: 20, liveAfterMs: 5000, ackTimeoutMs: 20_000, lockSettleMs: 50, markTtlMs: 10_000 } as const;

/** Replicas over one store, each watching for collections. */
export interface WindowReplicas {
  readonly replicas: readonly FastifyInstance[];
  readonly watchers: readonly MaintenanceWatcher[];
  /** Sends a request to the replica `random` picks. */
  request(options: InjectOptions & { url: string }): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

/** Starts `count` replicas over `driver`; `eventual` selects the object-store visibility policy. */
export async function startWindowReplicas(driver: StorageDriver, count: number, random: () => number, eventual = false): Promise<WindowReplicas> {
  const replicas: FastifyInstance[] = [];
  const watchers: MaintenanceWatcher[] = [];
  for (let i = 0; i < count; i++) {
    const watcher = new MaintenanceWatcher(driver, new SwitchableWriteGuard(false), { replicaId: `replica-${i}`, ...REPLICA_TIMINGS });
    await watcher.start();
    const app = await buildServer({
      storage: new RegistryStorage(driver, { visibility: eventual ? OBJECT_STORE : STRONGLY_CONSISTENT, journal: watcher.journal }),
      metrics: createRegistryMetrics(),
      writeGuard: watcher,
      deleteEnabled: true,
      redirect: false,
      accessLog: false,
    });
    await app.ready();
    replicas.push(app);
    watchers.push(watcher);
  }
  return {
    replicas,
    watchers,
    request: (options) => (replicas[Math.floor(random() * count)] as FastifyInstance).inject(options),
    close: async () => {
      await Promise.all(replicas.map((app) => app.close()));
      await Promise.all(watchers.map((watcher) => watcher.stop()));
    },
  };
}
