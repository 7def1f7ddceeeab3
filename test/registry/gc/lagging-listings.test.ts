import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
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

describe('a collection on a store whose listings lag its writes', () => {
  it('does not mark before a write finished just before it shows in listings (a manifest pushed a moment earlier keeps its layers)', async () => {
    // Listings show a new object 300 ms late; reads are current.
    const driver = new EventuallyConsistentDriver(new BaseDriver(new InMemoryDriver()), { seed: 5, minLagMs: 0, maxLagMs: 0, listLagMs: 300 });
    const app = await buildServer({ storage: new RegistryStorage(driver), metrics: createRegistryMetrics(), writeGuard: new SwitchableWriteGuard(false), deleteEnabled: true, redirect: false, accessLog: false });
    try {
      // Layers pushed a while ago (listed by now), then a manifest naming them, just before the collection.
      const config = randomBlob(300);
      const layer = randomBlob(3000);
      for (const blob of [config, layer]) await pushBlob(app, 'lag/app', blob);
      await sleep(400);
      const manifest = imageManifest(config, [layer]);
      const put = await app.inject({ method: 'PUT', url: '/v2/lag/app/manifests/v1', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, payload: manifest });
      expect(put.statusCode).toBe(201);
      const result = await runCollection(driver, { deleteUntagged: true, dryRun: false, gracePeriodMs: 0, readOnlyTimeoutMs: 30_000, pollMs: 20, lockSettleMs: 0, visibility: OBJECT_STORE });
      expect(result.manifestsDeleted).toEqual([]);
      expect(result.blobsDeleted).toEqual([]);
      const pulled = await app.inject({ method: 'GET', url: '/v2/lag/app/manifests/v1', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      expect(pulled.statusCode).toBe(200);
      expect(pulled.headers['docker-content-digest']).toBe(sha256(manifest));
      for (const blob of [config, layer]) expect((await app.inject({ method: 'GET', url: `/v2/lag/app/blobs/${sha256(blob)}` })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  it('keeps a manifest re-tagged a moment earlier under a new tag, with --delete-untagged (the tag does not dangle)', async () => {
    const driver = new EventuallyConsistentDriver(new BaseDriver(new InMemoryDriver()), { seed: 6, minLagMs: 0, maxLagMs: 0, listLagMs: 300 });
    const app = await buildServer({ storage: new RegistryStorage(driver), metrics: createRegistryMetrics(), writeGuard: new SwitchableWriteGuard(false), deleteEnabled: true, redirect: false, accessLog: false });
    try {
      const config = randomBlob(300);
      const layer = randomBlob(3000);
      for (const blob of [config, layer]) await pushBlob(app, 'lag/app', blob);
      const manifest = imageManifest(config, [layer]);
      const put = (tag: string) => app.inject({ method: 'PUT', url: `/v2/lag/app/manifests/${tag}`, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, payload: manifest });
      // Pushed under one tag, untagged, listed by now; then the same content is pushed under a new tag.
      expect((await put('old')).statusCode).toBe(201);
      expect((await app.inject({ method: 'DELETE', url: '/v2/lag/app/manifests/old' })).statusCode).toBe(202);
      await sleep(400);
      expect((await put('new')).statusCode).toBe(201);
      const result = await runCollection(driver, { deleteUntagged: true, dryRun: false, gracePeriodMs: 0, readOnlyTimeoutMs: 30_000, pollMs: 20, lockSettleMs: 0, visibility: OBJECT_STORE });
      expect(result.manifestsDeleted).toEqual([]);
      const pulled = await app.inject({ method: 'GET', url: '/v2/lag/app/manifests/new', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      expect(pulled.statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});
