#!/usr/bin/env node
/**
 * `berth-operator`: the composition root. Campaigns for the leader Lease; while leading, watches Registry
 * objects and the Deployments they own, and GarbageCollection objects and the Jobs they start, and
 * reconciles them; serves /healthz, /readyz and /metrics; on SIGTERM stops, releases the Lease and exits.
 *
 * Settings (flags or environment): --kubeconfig / KUBECONFIG, --metrics-addr / BERTH_METRICS_ADDR
 * (default 127.0.0.1:8080), --lease-namespace / POD_NAMESPACE (default berth-system),
 * --no-leader-elect, --identity / POD_NAME.
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import pino from 'pino';
import { GARBAGE_COLLECTION_LABEL, REGISTRY_LABEL } from './controllers/garbage-collection-builders.js';
import { GarbageCollectionController, RegistryReferences } from './controllers/garbage-collection-controller.js';
import { RegistryController } from './controllers/registry-controller.js';
import { KubeClient, type KubeObject } from './kube/client.js';
import { createOperatorMetrics } from './metrics.js';
import { runControllerLoop } from './runtime/controller-loop.js';
import { LeaderElection } from './runtime/leader-election.js';
import { WorkQueue } from './runtime/work-queue.js';

/** The field manager every apply uses. */
export const FIELD_MANAGER = 'berth-operator';

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    'metrics-addr': { type: 'string' },
    'lease-namespace': { type: 'string' },
    identity: { type: 'string' },
    'no-leader-elect': { type: 'boolean', default: false },
  },
});

const log = pino({ base: { service: 'berth-operator' } });
const metrics = createOperatorMetrics();
const kube = KubeClient.fromKubeconfig(values.kubeconfig ?? process.env['KUBECONFIG'], FIELD_MANAGER);
const controller = new RegistryController(kube, log);
const gcController = new GarbageCollectionController(kube, log, metrics.gc);
const identity = values.identity ?? process.env['POD_NAME'] ?? `${hostname()}-${process.pid}`;
let ready = false;
let election: LeaderElection | undefined;
/** Stops the controllers started by the current leadership term. */
let stopControllers: (() => Promise<void>) | undefined;

/** How long the server keeps one watch open before the operator resumes it (BERTH_WATCH_TIMEOUT_SECONDS). */
const watchTimeoutSeconds = Number(process.env['BERTH_WATCH_TIMEOUT_SECONDS'] ?? 300);

const keyOf = (object: KubeObject) => `${object.metadata.namespace ?? ''}/${object.metadata.name}`;

/** Starts watching and reconciling for one leadership term; returns how to stop it. */
async function startControllers(): Promise<() => Promise<void>> {
  log.info({ identity }, 'Started leading');
  metrics.leader.set(1);
  const queue = new WorkQueue();
  const gcQueue = new WorkQueue();
  const references = new RegistryReferences();
  const wakeCollectionsOf = (namespace: string | undefined, registry: string | undefined) => {
    if (namespace !== undefined && registry !== undefined) for (const key of references.keysFor(namespace, registry)) gcQueue.add(key);
  };
  const registries = await kube.watch(
    'berth.dev/v1alpha1',
    'Registry',
    (_event, object) => {
      queue.add(keyOf(object));
      wakeCollectionsOf(object.metadata.namespace, object.metadata.name);
    },
    (error) => log.error({ err: error }, 'Lost the Registry watch; restarting it'),
    1000,
    watchTimeoutSeconds,
  );
  const deployments = await kube.watch<KubeObject & { metadata: { ownerReferences?: { kind: string; name: string }[] } }>(
    'apps/v1',
    'Deployment',
    (_event, object) => {
      const owner = object.metadata.ownerReferences?.find((reference) => reference.kind === 'Registry');
      if (owner !== undefined) queue.add(`${object.metadata.namespace ?? ''}/${owner.name}`);
    },
    (error) => log.error({ err: error }, 'Lost the Deployment watch; restarting it'),
    1000,
    watchTimeoutSeconds,
  );
  const collections = await kube.watch<KubeObject & { spec?: { registryRef?: { name?: string } } }>(
    'berth.dev/v1alpha1',
    'GarbageCollection',
    (event, object) => {
      const key = keyOf(object);
      if (event === 'delete') references.delete(key);
      else references.set(key, object.metadata.namespace ?? '', object.spec?.registryRef?.name ?? '');
      gcQueue.add(key);
    },
    (error) => log.error({ err: error }, 'Lost the GarbageCollection watch; restarting it'),
    1000,
    watchTimeoutSeconds,
  );
  // A Job event wakes its own collection and every other collection of the same Registry, which may wait for it.
  const jobs = await kube.watch<KubeObject & { metadata: { labels?: Record<string, string>; ownerReferences?: { kind: string; name: string }[] } }>(
    'batch/v1',
    'Job',
    (_event, object) => {
      const owner = object.metadata.ownerReferences?.find((reference) => reference.kind === 'GarbageCollection');
      if (owner !== undefined) gcQueue.add(`${object.metadata.namespace ?? ''}/${owner.name}`);
      wakeCollectionsOf(object.metadata.namespace, object.metadata.labels?.[REGISTRY_LABEL]);
    },
    (error) => log.error({ err: error }, 'Lost the Job watch; restarting it'),
    1000,
    watchTimeoutSeconds,
    GARBAGE_COLLECTION_LABEL,
  );
  ready = true;
  const loop = runControllerLoop({
    name: 'registry',
    queue,
    workers: 2,
    reconcile: (key) => controller.reconcile(key),
    metrics,
    onError: (key, error) => log.error({ registry: key, err: error }, 'Failed to reconcile Registry'),
  });
  const gcLoop = runControllerLoop({
    name: 'garbage-collection',
    queue: gcQueue,
    // One worker: checking that no run is active against a Registry and starting the next one must not
    // interleave between two collections of that Registry.
    workers: 1,
    reconcile: (key) => gcController.reconcile(key),
    metrics,
    onError: (key, error) => log.error({ garbageCollection: key, err: error }, 'Failed to reconcile GarbageCollection'),
  });
  return async () => {
    ready = false;
    metrics.leader.set(0);
    queue.shutDown();
    gcQueue.shutDown();
    await Promise.all([registries.stop(), deployments.stop(), collections.stop(), jobs.stop()]);
    await Promise.all([loop, gcLoop]);
  };
}

const server = Fastify({ logger: false });
server.get('/healthz', async () => ({ status: 'ok' }));
server.get('/readyz', async (_request, reply) => reply.code(ready || !election?.isLeader ? 200 : 503).send({ ready, leader: election?.isLeader ?? true }));
server.get('/metrics', async (_request, reply) => reply.header('content-type', metrics.register.contentType).send(await metrics.register.metrics()));
const [host, port] = (values['metrics-addr'] ?? process.env['BERTH_METRICS_ADDR'] ?? '127.0.0.1:8080').split(/:(?=\d+$)/);
await server.listen({ host: host === '' || host === undefined ? '0.0.0.0' : host, port: Number(port) });
log.info({ address: server.server.address(), identity }, 'Started operator');

if (values['no-leader-elect']) {
  stopControllers = await startControllers();
} else {
  election = new LeaderElection(
    kube,
    { namespace: values['lease-namespace'] ?? process.env['POD_NAMESPACE'] ?? 'berth-system', name: 'berth-operator', identity },
    {
      onStarted: () => {
        startControllers().then(
          (stop) => {
            stopControllers = stop;
          },
          (error: unknown) => {
            log.error({ err: error }, 'Failed to start controllers');
            process.exit(1);
          },
        );
      },
      onStopped: () => {
        // Stop at once (another candidate may lead now), then campaign again: an API server outage longer
        // than the lease must not leave the operator dead until something restarts it.
        log.error({ identity }, 'Lost the leader Lease; stopped reconciling and campaigning again');
        const stop = stopControllers;
        stopControllers = undefined;
        void stop?.();
      },
    },
  );
  election.start();
}

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'Received signal, stopping');
  await stopControllers?.().catch(() => undefined);
  await election?.stop().catch(() => undefined);
  metrics.leader.set(0);
  await server.close();
  log.info('Stopped operator');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
