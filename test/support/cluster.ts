/**
 * The replicated topology users run in production, on one machine: MinIO as the shared bucket, N Berth
 * registry processes on it, and nginx doing round-robin without stickiness in front of them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBalancer, type RunningBalancer } from '../tools/nginx.js';
import { createBucket, startMinio, type RunningMinio } from '../tools/minio.js';
import { startBerth, type BerthProcess } from './berth-process.js';

/** A running cluster. */
export interface Cluster {
  /** The load balancer's URL: what clients use. */
  readonly url: string;
  readonly minio: RunningMinio;
  readonly bucket: string;
  readonly replicas: BerthProcess[];
  readonly balancer: RunningBalancer;
  stop(): Promise<void>;
}

/** Starts MinIO, `replicas` registries on one bucket, and nginx in front of them. */
export async function startCluster(options: { replicas: number; redirect?: boolean; minio?: RunningMinio }): Promise<Cluster> {
  const work = await mkdtemp(join(tmpdir(), 'berth-cluster-'));
  const minio = options.minio ?? (await startMinio());
  const bucket = `registry-${Date.now().toString(36)}`;
  await createBucket(minio, bucket);
  const storage = {
    s3: {
      endpoint: minio.endpoint,
      bucket,
      region: minio.region,
      accessKey: minio.accessKey,
      secretKey: minio.secretKey,
      ...(options.redirect ? { redirect: true } : {}),
    },
  };
  const replicas = await Promise.all(
    Array.from({ length: options.replicas }, (_, i) => startBerth({ storage, workDir: join(work, `replica-${i}`) })),
  );
  const balancer = await startBalancer({ upstreams: replicas.map((replica) => replica.url) });
  return {
    url: balancer.url,
    minio,
    bucket,
    replicas,
    balancer,
    async stop() {
      await balancer.stop();
      await Promise.all(replicas.map((replica) => replica.stop()));
      if (options.minio === undefined) await minio.stop();
      await rm(work, { recursive: true, force: true });
    },
  };
}
