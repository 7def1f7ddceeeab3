/**
 * `npm run cluster [replicas]`: starts MinIO, N registry replicas on one bucket (default 3) and nginx in
 * front of them, prints the address to push to, and runs until Ctrl-C.
 */
import { startCluster } from '../support/cluster.js';

const replicas = Number(process.argv[2] ?? 3);
if (!Number.isInteger(replicas) || replicas < 1) {
  console.error('usage: npm run cluster [replicas]');
  process.exit(2);
}
process.stderr.write(`cluster: starting MinIO, ${replicas} registries and nginx\n`);
const cluster = await startCluster({ replicas });
const host = new URL(cluster.url).host;
console.log(`registry:   ${cluster.url}   (docker push ${host}/hello:1)`);
console.log(`replicas:   ${cluster.replicas.map((replica) => replica.url).join('  ')}`);
console.log(`metrics:    ${cluster.replicas.map((replica) => `${replica.debugUrl}/metrics`).join('  ')}`);
console.log(`S3 (MinIO): ${cluster.minio.endpoint}  bucket ${cluster.bucket}  key ${cluster.minio.accessKey}  secret ${cluster.minio.secretKey}`);
console.log('Ctrl-C stops everything.');
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  cluster.stop().then(() => process.exit(0), () => process.exit(1));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
