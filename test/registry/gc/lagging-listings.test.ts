import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BaseDriver } from '../../../registry/driver/base.js';
import { InMemoryDriver } from '../../../registry/driver/inmemory/inmemory-driver.js';
import { runCollection } from '../../../registry/gc/collector.js';
import { createRegistryMetrics } from '../../../registry/metrics.js';
import { buildServer } from '../../../registry/server.js';
import { RegistryStorage } from '../../../registry/storage/registry-storage.js';
import { OBJECT_STORE } from '../../../registry/storage/visibility.js';
import { SwitchableWriteGuard } from '../../../registry/write-guard.js';
import { EventuallyConsistentDriver } from '../../support/eventually-consistent-driver.js';
import { imageManifest, pushBlob, randomBlob, sha256 } from '../../support/test-registry.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe('a collection on a store whose listings lag its writes', () => {
  let driver: EventuallyConsistentDriver;
  let app: FastifyInstance;
  beforeEach(async () => {
    // Listings show a new object 300 ms late; reads are current.
    driver = new EventuallyConsistentDriver(new BaseDriver(new InMemoryDriver()), { seed: 5, minLagMs: 0, maxLagMs: 0, listLagMs: 300 });
    app = await buildServer({ storage: new RegistryStorage(driver), metrics: createRegistryMetrics(), writeGuard: new SwitchableWriteGuard(false), deleteEnabled: true, redirect: false, accessLog: false });
  });
  afterEach(async () => {
    await app.close();
  });

  const putManifest = (tag: string, manifest: Buffer) => app.inject({ method: 'PUT', url: `/v2/lag/app/manifests/${tag}`, headers: { 'content-type': OCI_MANIFEST }, payload: manifest });
  const collect = () => runCollection(driver, { deleteUntagged: true, dryRun: false, gracePeriodMs: 0, readOnlyTimeoutMs: 30_000, pollMs: 20, lockSettleMs: 0, visibility: OBJECT_STORE });
  const pull = (tag: string) => app.inject({ method: 'GET', url: `/v2/lag/app/manifests/${tag}`, headers: { accept: OCI_MANIFEST } });

  it('does not mark before a write finished just before it shows in listings (a manifest pushed a moment earlier keeps its layers)', async () => {
    // Layers pushed a while ago (listed by now), then a manifest naming them, just before the collection.
    const config = randomBlob(300);
    const layer = randomBlob(3000);
    for (const blob of [config, layer]) await pushBlob(app, 'lag/app', blob);
    await sleep(400);
    const manifest = imageManifest(config, [layer]);
    expect((await putManifest('v1', manifest)).statusCode).toBe(201);
    const result = await collect();
    expect(result.manifestsDeleted).toEqual([]);
    expect(result.blobsDeleted).toEqual([]);
    const pulled = await pull('v1');
    expect(pulled.statusCode).toBe(200);
    expect(pulled.headers['docker-content-digest']).toBe(sha256(manifest));
    for (const blob of [config, layer]) expect((await app.inject({ method: 'GET', url: `/v2/lag/app/blobs/${sha256(blob)}` })).statusCode).toBe(200);
  });

  it('keeps a manifest re-tagged a moment earlier under a new tag, with --delete-untagged (the tag does not dangle)', async () => {
    const config = randomBlob(300);
    const layer = randomBlob(3000);
    for (const blob of [config, layer]) await pushBlob(app, 'lag/app', blob);
    const manifest = imageManifest(config, [layer]);
    // Pushed under one tag, untagged, listed by now; then the same content is pushed under a new tag.
    expect((await putManifest('old', manifest)).statusCode).toBe(201);
    expect((await app.inject({ method: 'DELETE', url: '/v2/lag/app/manifests/old' })).statusCode).toBe(202);
    await sleep(400);
    expect((await putManifest('new', manifest)).statusCode).toBe(201);
    const result = await collect();
    expect(result.manifestsDeleted).toEqual([]);
    expect((await pull('new')).statusCode).toBe(200);
  });
});
