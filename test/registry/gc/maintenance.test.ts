import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BaseDriver } from '../../../registry/driver/base.js';
import { InMemoryDriver } from '../../../registry/driver/inmemory/inmemory-driver.js';
import { runCollection } from '../../../registry/gc/collector.js';
import { MaintenanceWatcher, type Heartbeat } from '../../../registry/gc/maintenance.js';
import { createRegistryMetrics } from '../../../registry/metrics.js';
import { buildServer } from '../../../registry/server.js';
import type { Digest } from '../../../registry/storage/digest.js';
import { blobDataPath, maintenanceMarkerPath, replicaHeartbeatPath } from '../../../registry/storage/paths.js';
import { RegistryStorage } from '../../../registry/storage/registry-storage.js';
import { SwitchableWriteGuard } from '../../../registry/write-guard.js';
import { errorCode, imageManifest, pushImage, randomBlob, sha256 } from '../../support/test-registry.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe('a replica during a garbage-collection window', () => {
  let driver: BaseDriver;
  let watcher: MaintenanceWatcher;
  let app: FastifyInstance;
  let clock = 0;

  beforeEach(async () => {
    clock = 0;
    driver = new BaseDriver(new InMemoryDriver());
    watcher = new MaintenanceWatcher(driver, new SwitchableWriteGuard(false), { replicaId: 'r1', drainTimeoutMs: 300, fenceAfterMs: Number.POSITIVE_INFINITY, monotonicNow: () => clock });
    app = await buildServer({ storage: new RegistryStorage(driver), metrics: createRegistryMetrics(), writeGuard: watcher, deleteEnabled: true, redirect: false, accessLog: false });
    await app.ready();
  });
  afterEach(async () => {
    await watcher.stop();
    await app.close();
  });

  const openWindow = (epoch: string, ttlSeconds = 60) =>
    driver.putContent(maintenanceMarkerPath(), Buffer.from(JSON.stringify({ epoch, ttlSeconds, reason: 'GarbageCollection' })));
  const heartbeat = async () => JSON.parse((await driver.getContent(replicaHeartbeatPath('r1'))).toString()) as Heartbeat;

  it('refuses writes with a retryable 503, keeps serving pulls, and acknowledges the epoch', async () => {
    const { digest } = await pushImage(app, 'app', 'v1');
    await openWindow('e1');
    await watcher.poll();
    const refused = await app.inject({ method: 'POST', url: '/v2/app/blobs/uploads/' });
    expect(refused.statusCode).toBe(503);
    expect(errorCode(refused.body)).toBe('UNAVAILABLE');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(JSON.parse(refused.body).errors[0].message).toMatch(/maintenance/);
    for (const url of ['/v2/app/manifests/v1', `/v2/app/manifests/${digest}`, '/v2/app/tags/list', '/v2/_catalog', `/v2/app/referrers/${digest}`]) {
      expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    }
    expect((await heartbeat()).ackEpoch).toBe('e1');
    await driver.delete(maintenanceMarkerPath());
    await watcher.poll();
    expect((await app.inject({ method: 'POST', url: '/v2/app/blobs/uploads/' })).statusCode).toBe(202);
    expect((await heartbeat()).ackEpoch).toBeUndefined();
  });

  it('writes again once the time-to-live has passed on its own clock, even if the marker stays', async () => {
    await openWindow('e2', 30);
    await watcher.poll();
    expect(watcher.inMaintenance).toBe(true);
    clock += 29_000;
    expect(watcher.inMaintenance).toBe(true);
    clock += 2_000;
    expect(watcher.inMaintenance).toBe(false);
    await watcher.poll();
    expect(watcher.inMaintenance).toBe(false);
    expect((await app.inject({ method: 'POST', url: '/v2/app/blobs/uploads/' })).statusCode).toBe(202);
  });

  it('lets a write in flight finish before acknowledging, and stops one that outlasts the drain timeout', async () => {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const start = await app.inject({ method: 'POST', url: '/v2/app/blobs/uploads/' });
    // A PATCH whose body never ends: the drain must stop it.
    let patch: ReturnType<typeof request> | undefined;
    const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = (patch = request({ host: '127.0.0.1', port, method: 'PATCH', path: start.headers['location'] as string, headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      }));
      req.on('error', reject);
      req.write(Buffer.alloc(1000, 1));
    });
    await sleep(100);
    await openWindow('e3');
    let acknowledged = false;
    const polled = watcher.poll().then(() => (acknowledged = true));
    await sleep(100);
    expect(acknowledged).toBe(false);
    const answer = await response;
    // The client never ends its body: close the connection, or the server waits for it at close.
    patch?.destroy();
    await polled;
    expect(acknowledged).toBe(true);
    expect(answer.status).toBe(503);
    expect(errorCode(answer.body)).toBe('UNAVAILABLE');
    expect((await heartbeat()).ackEpoch).toBe('e3');
  });

  it('keeps following the marker when a stopped write does not end, and acknowledges only once it has', async () => {
    const stuck = watcher.beginWrite();
    await openWindow('e4');
    // Bounded: a write that ignores its abort must not stop the replica from polling.
    await watcher.poll();
    expect(stuck.signal.aborted).toBe(true);
    expect(watcher.inMaintenance).toBe(true);
    // Not acknowledged: no heartbeat was stored, or one without the epoch.
    expect((await heartbeat().catch(() => undefined))?.ackEpoch).toBeUndefined();
    stuck.end();
    await watcher.poll();
    expect((await heartbeat()).ackEpoch).toBe('e4');
  });
});

describe('a replica whose journal cannot be stored when the window opens', () => {
  it('keeps refusing writes without acknowledging, and acknowledges once the journal is stored', async () => {
    let failJournal = false;
    class FlakyJournalDriver extends BaseDriver {
      override putContent(path: string, content: Uint8Array, signal?: AbortSignal): Promise<void> {
        if (failJournal && path.includes('/_berth/journal/')) return Promise.reject(new Error('journal write failed'));
        return super.putContent(path, content, signal);
      }
    }
    const driver = new FlakyJournalDriver(new InMemoryDriver());
    const watcher = new MaintenanceWatcher(driver, new SwitchableWriteGuard(false), { replicaId: 'r9', fenceAfterMs: Number.POSITIVE_INFINITY });
    const app = await buildServer({ storage: new RegistryStorage(driver, { journal: watcher.journal }), metrics: createRegistryMetrics(), writeGuard: watcher, deleteEnabled: true, redirect: false, accessLog: false });
    const marker = (phase: 'mark' | 'window') => driver.putContent(maintenanceMarkerPath(), Buffer.from(JSON.stringify({ epoch: 'e9', phase, ttlSeconds: 60, reason: 'GarbageCollection' })));
    const beat = async () => JSON.parse((await driver.getContent(replicaHeartbeatPath('r9'))).toString()) as Heartbeat;
    try {
      await marker('mark');
      await watcher.poll();
      const blob = randomBlob(100);
      expect((await app.inject({ method: 'POST', url: `/v2/app/blobs/uploads/?digest=${sha256(blob)}`, payload: blob, headers: { 'content-type': 'application/octet-stream' } })).statusCode).toBe(201);
      failJournal = true;
      // A client sees the blob exist: noted for the journal, stored with the next batch.
      expect((await app.inject({ method: 'HEAD', url: `/v2/app/blobs/${sha256(blob)}` })).statusCode).toBe(200);
      await marker('window');
      await watcher.poll();
      expect((await app.inject({ method: 'POST', url: '/v2/app/blobs/uploads/' })).statusCode).toBe(503);
      expect((await beat()).ackEpoch).toBeUndefined();
      await watcher.poll();
      expect((await beat()).ackEpoch).toBeUndefined();
      expect((await app.inject({ method: 'POST', url: '/v2/app/blobs/uploads/' })).statusCode).toBe(503);
      failJournal = false;
      await watcher.poll();
      const acknowledged = await beat();
      expect(acknowledged.ackEpoch).toBe('e9');
      expect(acknowledged.journal).toEqual({ epoch: 'e9', batches: 2 });
    } finally {
      await watcher.stop();
      await app.close();
    }
  });
});

describe('a write that began before its replica started journaling for a collection', () => {
  it('is finished or stopped before the replica reports journaling, so the collection cannot mark around it', async () => {
    // The manifest's first write waits at this gate, after the push recorded it (unjournaled: no collection yet).
    let hit: () => void = () => undefined;
    const reached = new Promise<void>((resolve) => (hit = resolve));
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    let gated: string | undefined;
    class GatedDriver extends BaseDriver {
      override async putContent(path: string, content: Uint8Array, signal?: AbortSignal): Promise<void> {
        if (path === gated) {
          gated = undefined;
          hit();
          await new Promise<void>((resolve, reject) => {
            void released.then(resolve);
            signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
          });
        }
        return super.putContent(path, content, signal);
      }
    }
    const driver = new GatedDriver(new InMemoryDriver());
    const watcher = new MaintenanceWatcher(driver, new SwitchableWriteGuard(false), { replicaId: 'r5', pollMs: 20, activePollMs: 20, heartbeatMs: 100, drainTimeoutMs: 300, fenceAfterMs: Number.POSITIVE_INFINITY });
    await watcher.start();
    const app = await buildServer({ storage: new RegistryStorage(driver, { journal: watcher.journal }), metrics: createRegistryMetrics(), writeGuard: watcher, deleteEnabled: true, redirect: false, accessLog: false });
    try {
      const config = randomBlob(100);
      const layer = randomBlob(2000);
      for (const blob of [config, layer]) {
        expect((await app.inject({ method: 'POST', url: `/v2/app/blobs/uploads/?digest=${sha256(blob)}`, payload: blob, headers: { 'content-type': 'application/octet-stream' } })).statusCode).toBe(201);
      }
      const manifest = imageManifest(config, [layer]);
      gated = blobDataPath(sha256(manifest) as Digest);
      const push = app.inject({ method: 'PUT', url: '/v2/app/manifests/v1', payload: manifest, headers: { 'content-type': OCI_MANIFEST } });
      await reached;
      // The collection marks while the push is held; right after its mark the push may go on.
      const result = await runCollection(driver, {
        deleteUntagged: false,
        dryRun: false,
        gracePeriodMs: 0,
        readOnlyTimeoutMs: 30_000,
        pollMs: 20,
        lockSettleMs: 0,
        ackTimeoutMs: 10_000,
        pace: async (step) => {
          if (step !== 'marked') return;
          release();
          await push;
        },
      });
      const pushed = await push;
      if (pushed.statusCode === 201) {
        // Had it been let through unjournaled, the collection would have deleted its blobs.
        for (const blob of [config, layer]) expect((await app.inject({ method: 'GET', url: `/v2/app/blobs/${sha256(blob)}` })).statusCode, sha256(blob)).toBe(200);
      }
      // Held past the drain timeout, it is stopped with a retryable error, and the collection goes ahead.
      expect(pushed.statusCode, pushed.body).toBe(503);
      expect(errorCode(pushed.body)).toBe('UNAVAILABLE');
      expect(result.blobsDeleted.length).toBe(2);
    } finally {
      release();
      await watcher.stop();
      await app.close();
    }
  });

  it('neither waits for nor stops an upload in flight, which records nothing for the collection', async () => {
    const driver = new BaseDriver(new InMemoryDriver());
    const watcher = new MaintenanceWatcher(driver, new SwitchableWriteGuard(false), { replicaId: 'r6', pollMs: 20, activePollMs: 20, heartbeatMs: 100, drainTimeoutMs: 5000, fenceAfterMs: Number.POSITIVE_INFINITY });
    await watcher.start();
    const app = await buildServer({ storage: new RegistryStorage(driver, { journal: watcher.journal }), metrics: createRegistryMetrics(), writeGuard: watcher, deleteEnabled: true, redirect: false, accessLog: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    let patch: ReturnType<typeof request> | undefined;
    try {
      const start = await app.inject({ method: 'POST', url: '/v2/app/blobs/uploads/' });
      // A PATCH still sending its body when the collection begins.
      let ended = false;
      patch = request({ host: '127.0.0.1', port, method: 'PATCH', path: start.headers['location'] as string, headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        res.on('end', () => (ended = true));
      });
      patch.on('error', () => undefined);
      patch.write(Buffer.alloc(1000, 1));
      await sleep(100);
      await driver.putContent(maintenanceMarkerPath(), Buffer.from(JSON.stringify({ epoch: 'e6', phase: 'mark', ttlSeconds: 60, reason: 'GarbageCollection' })));
      const reported = performance.now();
      for (;;) {
        const beat = await driver.getContent(replicaHeartbeatPath('r6')).then((bytes) => JSON.parse(bytes.toString()) as Heartbeat, () => undefined);
        if (beat?.journal?.epoch === 'e6') break;
        expect(performance.now() - reported, 'journaling reported well inside the 5 s drain timeout').toBeLessThan(2000);
        await sleep(20);
      }
      // The upload goes on, and finishes.
      expect(ended).toBe(false);
      patch.end(Buffer.alloc(1000, 2));
      await new Promise<void>((resolve) => patch?.once('response', () => resolve()).once('close', () => resolve()));
      const status = await app.inject({ method: 'GET', url: start.headers['location'] as string });
      expect(status.statusCode).toBe(204);
      expect(status.headers['range']).toBe('0-1999');
    } finally {
      patch?.destroy();
      await watcher.stop();
      await app.close();
    }
  });
});
