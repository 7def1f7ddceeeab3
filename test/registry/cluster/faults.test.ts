import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { minioClient } from '../../tools/minio.js';
import { startCluster, type Cluster } from '../../support/cluster.js';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/**
 * Sends a monolithic blob push whose body trickles in, calling `midway` once half of it is sent; resolves
 * with the status, or with 0 when the connection breaks.
 */
function slowPush(url: string, blob: Buffer, midway: () => Promise<void>): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.length) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
    void (async () => {
      const piece = 256 * 1024;
      for (let offset = 0; offset < blob.length; offset += piece) {
        if (offset >= blob.length / 2 && offset < blob.length / 2 + piece) await midway();
        if (req.destroyed) return;
        req.write(blob.subarray(offset, offset + piece));
        await sleep(20);
      }
      req.end();
    })();
  });
}

/** Every key in the cluster's bucket that mentions a digest's hex. */
async function keysFor(cluster: Cluster, digest: string): Promise<string[]> {
  const client = minioClient(cluster.minio);
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: cluster.bucket, ContinuationToken: token }));
    for (const object of page.Contents ?? []) if (object.Key?.includes(digest.slice(7))) keys.push(object.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  client.destroy();
  return keys;
}

describe('faults in a three-replica cluster on S3', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster({ replicas: 3 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('leaves no partial blob or link when a replica is killed mid-push, and the retry through nginx succeeds', async () => {
    const blob = randomBytes(8 * 1024 * 1024);
    const digest = sha256(blob);
    const victim = cluster.replicas[0];
    if (victim === undefined) throw new Error('no replica');
    const status = await slowPush(`${victim.url}/v2/faults/killed/blobs/uploads/?digest=${digest}`, blob, async () => {
      victim.child.kill('SIGKILL');
      await sleep(100);
    });
    expect(status).not.toBe(201);
    const absent = await fetch(`${cluster.url}/v2/faults/killed/blobs/${digest}`);
    expect(absent.status).toBe(404);
    expect((await keysFor(cluster, digest)).filter((key) => !key.includes('/_uploads/'))).toEqual([]);

    const retry = await fetch(`${cluster.url}/v2/faults/killed/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: blob,
    });
    expect(retry.status).toBe(201);
    const pulled = await fetch(`${cluster.url}/v2/faults/killed/blobs/${digest}`);
    expect(sha256(Buffer.from(await pulled.arrayBuffer()))).toBe(digest);
  }, 120_000);

  it('answers a clear retryable error when the S3 server restarts mid-push, and stores the blob intact on retry', async () => {
    const blob = randomBytes(8 * 1024 * 1024);
    const digest = sha256(blob);
    const target = cluster.replicas[1];
    if (target === undefined) throw new Error('no replica');
    let body = '';
    const status = await new Promise<number>((resolve) => {
      const req = request(`${target.url}/v2/faults/restart/blobs/uploads/?digest=${digest}`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.length) },
      }, (res) => {
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve(0));
      void (async () => {
        const piece = 512 * 1024;
        for (let offset = 0; offset < blob.length; offset += piece) {
          if (offset === 4 * piece) await cluster.minio.kill();
          req.write(blob.subarray(offset, offset + piece));
          await sleep(20);
        }
        req.end();
      })();
    });
    await cluster.minio.restart();
    expect(status).toBe(503);
    expect((JSON.parse(body) as { errors: { code: string }[] }).errors[0]?.code).toBe('UNAVAILABLE');
    expect((await fetch(`${target.url}/v2/faults/restart/blobs/${digest}`)).status).toBe(404);

    const retry = await fetch(`${target.url}/v2/faults/restart/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: blob,
    });
    expect(retry.status, await retry.clone().text()).toBe(201);
    const pulled = await fetch(`${cluster.url}/v2/faults/restart/blobs/${digest}`);
    expect(sha256(Buffer.from(await pulled.arrayBuffer()))).toBe(digest);
  }, 180_000);
});
