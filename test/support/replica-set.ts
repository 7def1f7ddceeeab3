/**
 * In-process replicas for consistency tests: several registries, each with its own caches and server,
 * over one shared driver (typically wrapped in EventuallyConsistentDriver), with requests spread over them
 * round-robin or at random as a load balancer without stickiness would.
 */
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import type { StorageDriver } from '../../registry/driver/driver.js';
import { createRegistryMetrics } from '../../registry/metrics.js';
import { buildServer } from '../../registry/server.js';
import { RegistryStorage } from '../../registry/storage/registry-storage.js';
import { OBJECT_STORE } from '../../registry/storage/visibility.js';
import { SwitchableWriteGuard } from '../../registry/write-guard.js';

/** Replicas over one store. */
export interface ReplicaSet {
  readonly replicas: readonly FastifyInstance[];
  /** Sends a request to the replica a random draw picks. */
  request(options: InjectOptions & { url: string }): Promise<LightMyRequestResponse>;
  /** Sends a request to one replica. */
  on(index: number, options: InjectOptions & { url: string }): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

/** Starts `count` replicas over `driver`, choosing replicas with `random`. */
export async function createReplicaSet(driver: StorageDriver, count: number, random: () => number): Promise<ReplicaSet> {
  const replicas: FastifyInstance[] = [];
  for (let i = 0; i < count; i++) {
    const app = await buildServer({
      storage: new RegistryStorage(driver, { visibility: OBJECT_STORE }),
      metrics: createRegistryMetrics(),
      writeGuard: new SwitchableWriteGuard(false),
      deleteEnabled: true,
      redirect: false,
      accessLog: false,
    });
    await app.ready();
    replicas.push(app);
  }
  return {
    replicas,
    request: (options) => (replicas[Math.floor(random() * count)] as FastifyInstance).inject(options),
    on: (index, options) => (replicas[index] as FastifyInstance).inject(options),
    close: async () => {
      await Promise.all(replicas.map((app) => app.close()));
    },
  };
}
