import { mkdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collect } from '../../../registry/gc/mark-sweep.js';
import { blobDataPath, uploadStartedAtPath } from '../../../registry/storage/paths.js';
import type { Digest } from '../../../registry/storage/digest.js';
import { TEST_DRIVERS, createTestRegistry, imageManifest, pushBlob, pushImage, randomBlob, sha256, type TestRegistry } from '../../support/test-registry.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const quiet = { gracePeriodMs: 0 };

describe.each(TEST_DRIVERS)('garbage collection on the %s driver', (kind) => {
  let registry: TestRegistry;
  beforeEach(async () => {
    registry = await createTestRegistry(kind);
  });
  afterEach(async () => {
    await registry.close();
  });

  async function pullsCompletely(name: string, reference: string): Promise<void> {
    const manifest = await registry.app.inject({ method: 'GET', url: `/v2/${name}/manifests/${reference}` });
    expect(manifest.statusCode, `${name}:${reference}`).toBe(200);
    const parsed = JSON.parse(manifest.body) as { config?: { digest: string }; layers?: { digest: string }[]; manifests?: { digest: string }[] };
    for (const child of parsed.manifests ?? []) await pullsCompletely(name, child.digest);
    for (const blob of [parsed.config, ...(parsed.layers ?? [])].filter((b) => b !== undefined)) {
      const response = await registry.app.inject({ method: 'GET', url: `/v2/${name}/blobs/${blob.digest}` });
      expect(response.statusCode, blob.digest).toBe(200);
      expect(sha256(response.rawPayload)).toBe(blob.digest);
    }
  }

  it('deletes unreferenced blobs, keeps every tagged image whole, and deletes nothing in a dry run', async () => {
    const kept = await pushImage(registry.app, 'app', 'v1');
    const orphan = await pushBlob(registry.app, 'app', randomBlob(5000));
    const dry = await collect(registry.driver, { ...quiet, deleteUntagged: false, dryRun: true });
    expect(dry.blobsDeleted).toEqual([orphan]);
    expect((await registry.driver.stat(blobDataPath(orphan as Digest))).size).toBe(5000);
    const result = await collect(registry.driver, { ...quiet, deleteUntagged: false, dryRun: false });
    expect(result.blobsDeleted).toEqual([orphan]);
    expect(result.bytesFreed).toBe(5000);
    await pullsCompletely('app', 'v1');
    expect((await registry.app.inject({ method: 'HEAD', url: `/v2/app/blobs/${orphan}` })).statusCode).toBe(404);
    expect(kept.digest).toMatch(/^sha256:/);
  });

  it('with deleteUntagged deletes a moved tag\'s old image but keeps images inside a tagged index and referrers of kept manifests', async () => {
    const old = await pushImage(registry.app, 'multi', 'latest');
    await pushImage(registry.app, 'multi', 'latest');
    const childA = await pushImage(registry.app, 'multi', 'tmp-a');
    const childB = await pushImage(registry.app, 'multi', 'tmp-b');
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [childA, childB].map((c) => ({ mediaType: OCI_MANIFEST, digest: c.digest, size: c.manifest.length })),
      }),
    );
    await registry.app.inject({ method: 'PUT', url: '/v2/multi/manifests/index', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, payload: index });
    for (const tag of ['tmp-a', 'tmp-b']) await registry.app.inject({ method: 'DELETE', url: `/v2/multi/manifests/${tag}` });
    const config = Buffer.from('{}');
    await pushBlob(registry.app, 'multi', config);
    const signature = imageManifest(config, [], { subject: { mediaType: OCI_MANIFEST, digest: childA.digest, size: childA.manifest.length } });
    await registry.app.inject({ method: 'PUT', url: `/v2/multi/manifests/${sha256(signature)}`, headers: { 'content-type': OCI_MANIFEST }, payload: signature });

    const result = await collect(registry.driver, { ...quiet, deleteUntagged: true, dryRun: false });
    expect(result.manifestsDeleted).toEqual([`multi@${old.digest}`]);
    expect(result.blobsDeleted).toEqual(expect.arrayContaining([old.digest, sha256(old.config), ...old.layers.map(sha256)]));
    await pullsCompletely('multi', 'latest');
    await pullsCompletely('multi', 'index');
    await pullsCompletely('multi', sha256(signature));
    const referrers = await registry.app.inject({ method: 'GET', url: `/v2/multi/referrers/${childA.digest}` });
    expect(JSON.parse(referrers.body).manifests).toHaveLength(1);
  });

  it('keeps unreferenced blobs younger than the grace period (a push in progress)', async () => {
    const fresh = await pushBlob(registry.app, 'app', randomBlob(100));
    const result = await collect(registry.driver, { gracePeriodMs: 60 * 60 * 1000, deleteUntagged: false, dryRun: false });
    expect(result.blobsDeleted).toEqual([]);
    expect((await registry.app.inject({ method: 'HEAD', url: `/v2/app/blobs/${fresh}` })).statusCode).toBe(200);
  });

  it('purges uploads abandoned for longer than the upload age, and keeps recent ones', async () => {
    await pushImage(registry.app, 'up', 'v1');
    const old = await registry.app.inject({ method: 'POST', url: '/v2/up/blobs/uploads/' });
    const recent = await registry.app.inject({ method: 'POST', url: '/v2/up/blobs/uploads/' });
    const oldId = old.headers['docker-upload-uuid'] as string;
    await registry.driver.putContent(uploadStartedAtPath('up', oldId), Buffer.from(new Date(Date.now() - 10 * 24 * 3600 * 1000).toISOString()));
    const result = await collect(registry.driver, { ...quiet, deleteUntagged: false, dryRun: false, uploadMaxAgeMs: 7 * 24 * 3600 * 1000 });
    expect(result.uploadsPurged).toEqual([`up/${oldId}`]);
    expect((await registry.app.inject({ method: 'GET', url: old.headers['location'] as string })).statusCode).toBe(404);
    expect((await registry.app.inject({ method: 'GET', url: recent.headers['location'] as string })).statusCode).toBe(204);
  });
});

describe('garbage collection of what interrupted writes left on the filesystem', () => {
  it('removes temporary files older than the upload purging age and leaves younger ones', async () => {
    const registry = await createTestRegistry('filesystem');
    try {
      const root = registry.root as string;
      const dir = join(root, 'docker/registry/v2/blobs/sha256/ab');
      await mkdir(dir, { recursive: true });
      const old = join(dir, 'abandoned.0b1c.tmp');
      const young = join(dir, 'writing.9f8e.tmp');
      await writeFile(old, Buffer.alloc(700));
      await writeFile(young, Buffer.alloc(300));
      const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
      await utimes(old, twoDaysAgo, twoDaysAgo);
      const result = await collect(registry.driver, { gracePeriodMs: 0, deleteUntagged: false, dryRun: false, uploadMaxAgeMs: 86_400_000 });
      expect(result.uploadsPurged).toEqual(['/docker/registry/v2/blobs/sha256/ab/abandoned.0b1c.tmp (700 bytes)']);
      await expect(stat(old)).rejects.toThrow();
      expect((await stat(young)).size).toBe(300);
    } finally {
      await registry.close();
    }
  });
});
