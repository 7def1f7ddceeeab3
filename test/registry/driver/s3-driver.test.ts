import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Driver } from '../../../registry/driver/s3/s3-driver.js';
import { createBucket, startMinio, type RunningMinio } from '../../tools/minio.js';
import { runDriverSuite } from './driver-suite.js';

let minio: RunningMinio;
const BUCKET = 'driver-suite';

beforeAll(async () => {
  minio = await startMinio();
  await createBucket(minio, BUCKET);
});
afterAll(async () => {
  await minio?.stop();
});

/** A driver on a fresh root directory of the shared bucket, so every test starts empty. */
function createDriver(options: { chunkSize?: number; rootDirectory?: string } = {}): S3Driver {
  return new S3Driver({
    bucket: BUCKET,
    region: minio.region,
    endpoint: minio.endpoint,
    forcePathStyle: true,
    rootDirectory: options.rootDirectory ?? `/suite-${randomUUID()}`,
    credentials: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey },
    ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
  });
}

runDriverSuite('s3 (MinIO)', async () => {
  const driver = createDriver();
  return { driver, cleanup: async () => driver.destroy() };
});

describe('s3 storage driver specifics', () => {
  it('appends across the 5 MiB part minimum: small + small, then large + small, stays byte-exact', async () => {
    const { Readable } = await import('node:stream');
    const driver = createDriver({ chunkSize: 5 * 1024 * 1024 });
    const pieces = [Buffer.alloc(1000, 1), Buffer.alloc(6 * 1024 * 1024, 2), Buffer.alloc(123, 3), Buffer.alloc(5 * 1024 * 1024 + 7, 4)];
    for (const piece of pieces) await driver.writeStream('/grow', Readable.from([piece]), { append: true });
    const content = await driver.getContent('/grow');
    expect(content.equals(Buffer.concat(pieces))).toBe(true);
    driver.destroy();
  }, 120_000);

  it('aborts multipart uploads left incomplete before a cutoff, and only those under its root', async () => {
    const { CreateMultipartUploadCommand, ListMultipartUploadsCommand, S3Client } = await import('@aws-sdk/client-s3');
    const [root, otherRoot] = [`suite-${randomUUID()}`, `suite-${randomUUID()}`];
    const driver = createDriver({ rootDirectory: `/${root}` });
    const client = new S3Client({ region: minio.region, endpoint: minio.endpoint, forcePathStyle: true, credentials: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey } });
    const mine = `${root}/docker/registry/v2/blobs/sha256/ab/abandoned/data`;
    const theirs = `${otherRoot}/docker/registry/v2/blobs/sha256/cd/running/data`;
    for (const Key of [mine, theirs]) await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key }));
    const pending = async () => ((await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads ?? []).map((upload) => upload.Key);
    // Nothing started before an hour ago: nothing to purge.
    expect(await driver.purgeOrphans(new Date(Date.now() - 3_600_000), false)).toEqual([]);
    // A dry run only reports.
    expect(await driver.purgeOrphans(new Date(Date.now() + 60_000), true)).toHaveLength(1);
    expect(await pending()).toContain(mine);
    const purged = await driver.purgeOrphans(new Date(Date.now() + 60_000), false);
    expect(purged).toHaveLength(1);
    expect(purged[0]).toContain('abandoned');
    expect(await pending()).not.toContain(mine);
    expect(await pending()).toContain(theirs);
    client.destroy();
    driver.destroy();
  });

  it('offers presigned URLs that fetch the object directly from the store', async () => {
    const driver = createDriver();
    await driver.putContent('/presigned/object', Buffer.from('straight from S3'));
    const url = await driver.redirectURL('GET', '/presigned/object');
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/driver-suite\/.*X-Amz-Signature=/);
    expect(await (await fetch(url as string)).text()).toBe('straight from S3');
    driver.destroy();
  });
});
