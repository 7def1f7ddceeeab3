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
function createDriver(options: { chunkSize?: number } = {}): S3Driver {
  return new S3Driver({
    bucket: BUCKET,
    region: minio.region,
    endpoint: minio.endpoint,
    forcePathStyle: true,
    rootDirectory: `/suite-${randomUUID()}`,
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

  it('offers presigned URLs that fetch the object directly from the store', async () => {
    const driver = createDriver();
    await driver.putContent('/presigned/object', Buffer.from('straight from S3'));
    const url = await driver.redirectURL('GET', '/presigned/object');
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/driver-suite\/.*X-Amz-Signature=/);
    expect(await (await fetch(url as string)).text()).toBe('straight from S3');
    driver.destroy();
  });
});
