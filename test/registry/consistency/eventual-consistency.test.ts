import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { afterAll, beforeAll } from 'vitest';
import type { StorageDriver } from '../../../registry/driver/driver.js';
import { FilesystemDriver } from '../../../registry/driver/filesystem/filesystem-driver.js';
import { S3Driver } from '../../../registry/driver/s3/s3-driver.js';
import { createBucket, startMinio, type RunningMinio } from '../../tools/minio.js';
import { EventuallyConsistentDriver, seededRandom } from '../../support/eventually-consistent-driver.js';
import { createReplicaSet, type ReplicaSet } from '../../support/replica-set.js';
import { withQuery } from '../../support/test-registry.js';

const SEED = Number(process.env['BERTH_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

let minio: RunningMinio;
beforeAll(async () => {
  minio = await startMinio();
  await createBucket(minio, 'consistency');
});
afterAll(async () => {
  await minio?.stop();
});

/** The real stores the lagging wrapper goes around. */
const STORES: Record<string, (root: string) => StorageDriver> = {
  filesystem: (root) => new FilesystemDriver({ rootDirectory: root }),
  's3 (MinIO)': (root) =>
    new S3Driver({
      bucket: 'consistency',
      region: minio.region,
      endpoint: minio.endpoint,
      forcePathStyle: true,
      rootDirectory: root,
      credentials: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey },
    }),
};

describe.each(Object.keys(STORES))(`three replicas on an eventually consistent %s store (seed ${SEED}; rerun with BERTH_SEED=${SEED})`, (store) => {
  let root: string;
  let cluster: ReplicaSet;
  let random: () => number;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'berth-ec-'));
    random = seededRandom(SEED);
    const driver = new EventuallyConsistentDriver((STORES[store] as (root: string) => StorageDriver)(root), {
      seed: SEED,
      minLagMs: 0,
      maxLagMs: 120,
      listLagMs: 200,
    });
    cluster = await createReplicaSet(driver, 3, random);
  });
  afterEach(async () => {
    await cluster.close();
    await rm(root, { recursive: true, force: true });
  });

  /** Pushes a blob through randomly chosen replicas: monolithic, or in 1-4 chunks that land anywhere. */
  async function pushBlob(name: string, blob: Buffer): Promise<void> {
    const digest = sha256(blob);
    if (random() < 0.3) {
      const response = await cluster.request({ method: 'POST', url: `/v2/${name}/blobs/uploads/?digest=${digest}`, payload: blob, headers: { 'content-type': 'application/octet-stream' } });
      expect(response.statusCode, `seed ${SEED}: monolithic push ${response.body}`).toBe(201);
      return;
    }
    const start = await cluster.request({ method: 'POST', url: `/v2/${name}/blobs/uploads/` });
    expect(start.statusCode, `seed ${SEED}`).toBe(202);
    let location = start.headers['location'] as string;
    const chunks = 1 + Math.floor(random() * 4);
    const size = Math.ceil(blob.length / chunks);
    for (let offset = 0; offset < blob.length; offset += size) {
      const chunk = blob.subarray(offset, offset + size);
      const patch = await cluster.request({
        method: 'PATCH',
        url: location,
        payload: chunk,
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.length - 1}` },
      });
      expect(patch.statusCode, `seed ${SEED}: PATCH ${offset} ${patch.body}`).toBe(202);
      location = patch.headers['location'] as string;
    }
    const put = await cluster.request({ method: 'PUT', url: withQuery(location, { digest }) });
    expect(put.statusCode, `seed ${SEED}: commit ${put.body}`).toBe(201);
  }

  async function pullBlob(name: string, digest: string): Promise<Buffer> {
    const response = await cluster.request({ method: 'GET', url: `/v2/${name}/blobs/${digest}` });
    expect(response.statusCode, `seed ${SEED}: pull ${digest} ${response.body}`).toBe(200);
    return response.rawPayload;
  }

  it('completes many concurrent pushes of the same blob, and every replica serves it whole', async () => {
    const blob = randomBytes(200_000);
    await Promise.all(Array.from({ length: 12 }, () => pushBlob('same/blob', blob)));
    for (let i = 0; i < 3; i++) {
      const response = await cluster.on(i, { method: 'GET', url: `/v2/same/blob/blobs/${sha256(blob)}` });
      expect(sha256(response.rawPayload), `seed ${SEED}`).toBe(sha256(blob));
    }
  });

  it('finishes chunked uploads whose chunks and commit land on replicas that have not seen the last chunk', async () => {
    for (let round = 0; round < 8; round++) {
      const blob = randomBytes(50_000 + Math.floor(random() * 100_000));
      await pushBlob(`chunked/${round}`, blob);
      expect(sha256(await pullBlob(`chunked/${round}`, sha256(blob))), `seed ${SEED}`).toBe(sha256(blob));
    }
  });

  it('accepts a manifest pushed right after its blobs were committed through other replicas', async () => {
    for (let round = 0; round < 6; round++) {
      const config = Buffer.from(JSON.stringify({ round, nonce: randomBytes(4).toString('hex') }));
      const layer = randomBytes(30_000);
      await pushBlob('fresh', config);
      await pushBlob('fresh', layer);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
        }),
      );
      const put = await cluster.request({ method: 'PUT', url: `/v2/fresh/manifests/r${round}`, payload: manifest, headers: { 'content-type': OCI_MANIFEST } });
      expect(put.statusCode, `seed ${SEED}: ${put.body}`).toBe(201);
      const get = await cluster.request({ method: 'GET', url: `/v2/fresh/manifests/r${round}` });
      expect(get.statusCode, `seed ${SEED}: pull right after push ${get.body}`).toBe(200);
      expect(get.rawPayload.equals(manifest), `seed ${SEED}`).toBe(true);
    }
  });

  it('ends a tag moved by many clients at once on one of the written manifests, never missing or corrupt', async () => {
    const config = Buffer.from('{}');
    await pushBlob('moving', config);
    const manifests = Array.from({ length: 10 }, (_, i) =>
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
          layers: [],
          annotations: { writer: String(i) },
        }),
      ),
    );
    const responses = await Promise.all(
      manifests.map((manifest) => cluster.request({ method: 'PUT', url: '/v2/moving/manifests/latest', payload: manifest, headers: { 'content-type': OCI_MANIFEST } })),
    );
    for (const response of responses) expect(response.statusCode, `seed ${SEED}: ${response.body}`).toBe(201);
    await sleep(250);
    const written = new Set(manifests.map(sha256));
    let seen: string | undefined;
    for (let i = 0; i < 3; i++) {
      const get = await cluster.on(i, { method: 'GET', url: '/v2/moving/manifests/latest' });
      expect(get.statusCode, `seed ${SEED}`).toBe(200);
      const digest = sha256(get.rawPayload);
      expect(written.has(digest), `seed ${SEED}: tag points at ${digest}`).toBe(true);
      expect(get.headers['docker-content-digest'], `seed ${SEED}`).toBe(digest);
      seen ??= digest;
      expect(digest, `seed ${SEED}: replicas disagree after the lag`).toBe(seen);
    }
  });
});
