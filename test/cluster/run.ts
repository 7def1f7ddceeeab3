/**
 * `npm run cluster [replicas]`: starts MinIO, N registry replicas on one bucket (default 3) and nginx in
 * front of them, prints the address to push to, and runs until Ctrl-C.
 */
import { startCluster } from '../support/cluster.js';

async function main(): Promise<void> {
  const replicas = Number(process.argv[2] ?? 3);
  if (!Number.isInteger(replicas) || replicas < 1) {
    console.error('usage: npm run cluster [replicas]');
    process.exitCode = 2;
    return;
  }
  process.stderr.write(`cluster: starting MinIO, ${replicas} registries and nginx\n`);
  const cluster = await startCluster({ replicas });
  const host = new URL(cluster.url).host;
  console.log(`registry:   ${cluster.url}   (docker push ${host}/hello:1)`);
  console.log(`replicas:   ${cluster.replicas.map((replica) => replica.url).join('  ')}`);
  console.log(`metrics:    ${cluster.replicas.map((replica) => `${replica.debugUrl}/metrics`).join('  ')}`);
  console.log(`S3 (MinIO): ${cluster.minio.endpoint}  bucket ${cluster.bucket}  key ${cluster.minio.accessKey}  secret ${cluster.minio.secretKey}`);
  console.log('Ctrl-C stops everything.');
  // Keep the process alive until a signal stops the cluster; the children's pipes end with them.
  const keepAlive = setInterval(() => undefined, 60_000);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    cluster.stop().then(
      () => clearInterval(keepAlive),
      (error: unknown) => {
        console.error('cluster: failed to stop cleanly:', error);
        process.exitCode = 1;
        clearInterval(keepAlive);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

await main();
