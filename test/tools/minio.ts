/**
 * Starts MinIO (built from its Go module by install.sh), the real S3 server the S3 tests run against,
 * and reads how many S3 requests of each kind it has served.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { ManagedProcess } from './processes.js';
import { freePort, toolPath } from './tools.js';

/** Root credentials of every test MinIO; they only ever guard a loopback port. */
const ACCESS_KEY = 'berth-minio';
const SECRET_KEY = 'berth-minio-secret';

/** Options for `startMinio`. */
export interface MinioOptions {
  /** Data directory (created if missing, kept by stop()); when absent, a temporary one that stop() removes. */
  dataDir?: string;
  /** S3 API port on 127.0.0.1; a free one is picked when absent. */
  port?: number;
}

/** A running single-drive MinIO on loopback. */
export interface RunningMinio {
  /** `http://127.0.0.1:PORT`, no trailing slash: the S3 endpoint (use path-style addressing). */
  endpoint: string;
  port: number;
  accessKey: string;
  secretKey: string;
  region: 'us-east-1';
  dataDir: string;
  /** MinIO's stdout and stderr, across restarts (removed by stop()). */
  logFile: string;
  /** Stops MinIO (SIGTERM, then SIGKILL after a grace period) and removes its temporary files; safe to call twice. */
  stop(): Promise<void>;
  /** Stops MinIO if it runs, then starts it again on the same port and data dir and waits until it serves; for fault tests. */
  restart(): Promise<void>;
  /** Kills MinIO with SIGKILL (no clean shutdown) and resolves once it has exited; restart() brings it back. */
  kill(): Promise<void>;
}

/** The environment MinIO runs with: the caller's, minus any MINIO_* (they would reconfigure it), plus ours. */
function minioEnv(): NodeJS.ProcessEnv {
  const inherited = Object.entries(process.env).filter(([key]) => !key.startsWith('MINIO_'));
  return {
    ...Object.fromEntries(inherited),
    MINIO_ROOT_USER: ACCESS_KEY,
    MINIO_ROOT_PASSWORD: SECRET_KEY,
    MINIO_BROWSER: 'off',
    MINIO_UPDATE: 'off',
    // s3RequestCounts reads the metrics endpoint without a bearer token.
    MINIO_PROMETHEUS_AUTH_TYPE: 'public',
  };
}

/**
 * Starts `minio server DATA_DIR --address 127.0.0.1:PORT` (root user and password fixed, console off,
 * public metrics, certs dir private) and resolves once `/minio/health/live` answers 200 with its object
 * layer up; rejects (with the log's tail) if it exits or is not ready within 60 s.
 */
export async function startMinio(opts: MinioOptions = {}): Promise<RunningMinio> {
  const binary = toolPath('minio');
  const workDir = await mkdtemp(join(tmpdir(), 'berth-minio-'));
  const dataDir = opts.dataDir === undefined ? join(workDir, 'data') : resolve(opts.dataDir);
  await mkdir(dataDir, { recursive: true });
  const logFile = join(workDir, 'minio.log');
  const log = createWriteStream(logFile, { flags: 'a' });
  await once(log, 'open');
  // A port we picked may be taken between freePort() and bind: then try another one.
  const attempts = opts.port === undefined ? 3 : 1;
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = opts.port ?? (await freePort());
    const endpoint = `http://127.0.0.1:${String(port)}`;
    const server = minioProcess(binary, dataDir, join(workDir, 'certs'), endpoint, port, log, logFile);
    try {
      await server.start();
    } catch (err) {
      lastError = err as Error;
      // MinIO says "Specified port is already in use".
      if (!/(address|port) (is )?already in use/i.test(lastError.message)) break;
      continue;
    }
    let stopped: Promise<void> | undefined;
    return {
      endpoint,
      port,
      accessKey: ACCESS_KEY,
      secretKey: SECRET_KEY,
      region: 'us-east-1',
      dataDir,
      logFile,
      stop: async () => {
        stopped ??= (async () => {
          await server.stop();
          log.close();
          await rm(workDir, { recursive: true, force: true });
        })();
        await stopped;
      },
      restart: async () => {
        if (stopped) throw new Error(`MinIO on ${endpoint} was stopped; start a new one`);
        await server.stop();
        await server.start();
      },
      kill: async () => {
        await server.kill();
      },
    };
  }
  log.close();
  // The error carries the log's tail; nothing else in the work dir explains a failed start.
  await rm(workDir, { recursive: true, force: true });
  throw lastError ?? new Error('MinIO did not start');
}

/** One MinIO server on a fixed port and data dir that can be started again after it stops. */
function minioProcess(binary: string, dataDir: string, certsDir: string, endpoint: string, port: number, log: WriteStream, logFile: string): ManagedProcess {
  return new ManagedProcess({
    what: `MinIO on ${endpoint}`,
    binary,
    args: async () => [
      'server',
      dataDir,
      '--address',
      `127.0.0.1:${String(port)}`,
      // The console is off (MINIO_BROWSER), but MinIO still takes a console address: keep it on loopback too.
      '--console-address',
      `127.0.0.1:${String(await freePort())}`,
      // Otherwise MinIO creates ~/.minio/certs.
      '--certs-dir',
      certsDir,
    ],
    env: minioEnv(),
    log,
    logFile,
    ready: async () => {
      try {
        const res = await fetch(`${endpoint}/minio/health/live`, { signal: AbortSignal.timeout(2_000) });
        await res.body?.cancel();
        // Live answers 200 before the object layer is up, saying so in this header.
        return res.status === 200 && res.headers.get('x-minio-server-status') !== 'offline';
      } catch {
        return false;
      }
    },
    timeoutMs: 60_000,
    stopGraceMs: 15_000,
  });
}

/** An S3 client for `minio` (path-style, its root credentials); the caller destroys it. */
export function minioClient(minio: RunningMinio): S3Client {
  return new S3Client({
    endpoint: minio.endpoint,
    region: minio.region,
    forcePathStyle: true,
    credentials: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey },
  });
}

/** Creates `bucket` on `minio`; rejects if it exists already or the name is invalid (3 to 63 characters, lower case). */
export async function createBucket(minio: RunningMinio, bucket: string): Promise<void> {
  const client = minioClient(minio);
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}

/**
 * MinIO's handler names that differ from the S3 operation names (as in the API reference and the AWS SDK's
 * `…Command` classes); other handler names already are the operation's name.
 */
const S3_OPERATION_BY_MINIO_API: Readonly<Record<string, string>> = {
  PutBucket: 'CreateBucket',
  NewMultipartUpload: 'CreateMultipartUpload',
  PutObjectPart: 'UploadPart',
  CopyObjectPart: 'UploadPartCopy',
  ListObjectParts: 'ListParts',
  DeleteMultipleObjects: 'DeleteObjects',
  ListObjectsV1: 'ListObjects',
  // The M variants are MinIO's metadata extension of the same request.
  ListObjectsV2M: 'ListObjectsV2',
  ListObjectVersionsM: 'ListObjectVersions',
  PostRestoreObject: 'RestoreObject',
  GetBucketACL: 'GetBucketAcl',
  PutBucketACL: 'PutBucketAcl',
  GetObjectACL: 'GetObjectAcl',
  PutObjectACL: 'PutObjectAcl',
};

/** `minio_api_requests_total{name="PutObject",server="…",type="s3"} 3` → name and value. */
const REQUESTS_TOTAL_LINE = /^minio_api_requests_total\{(?<labels>[^}]*)\}\s+(?<value>\S+)/;
const INFLIGHT_LINE = /^minio_api_requests_inflight_total\{[^}]*\}\s+(?<value>\S+)/;

function labelValue(labels: string, name: string): string | undefined {
  return new RegExp(`(?:^|,)${name}="(?<value>[^"]*)"`).exec(labels)?.groups?.['value'];
}

/** Parses MinIO's `/minio/metrics/v3/api/requests` text: S3 request counts by operation, and requests in flight. */
export function parseS3RequestMetrics(text: string): { counts: Record<string, number>; inflight: number } {
  const counts: Record<string, number> = {};
  let inflight = 0;
  for (const line of text.split('\n')) {
    const total = REQUESTS_TOTAL_LINE.exec(line);
    if (total?.groups) {
      const labels = total.groups['labels'] ?? '';
      const name = labelValue(labels, 'name');
      if (name === undefined || labelValue(labels, 'type') !== 's3') continue;
      const operation = S3_OPERATION_BY_MINIO_API[name] ?? name;
      counts[operation] = (counts[operation] ?? 0) + Number(total.groups['value']);
      continue;
    }
    const current = INFLIGHT_LINE.exec(line);
    if (current?.groups) inflight += Number(current.groups['value']);
  }
  return { counts, inflight };
}

function sameCounts(a: Record<string, number>, b: Record<string, number>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}

/**
 * S3 requests `minio` has served since it started, by S3 operation name (`PutObject`, `GetObject`, `HeadObject`,
 * `CopyObject`, `ListObjectsV2`, `CreateMultipartUpload`, `UploadPart`, …), failed ones included; operations never
 * called are absent. Read from MinIO's uncached metrics v3 (`minio_api_requests_total{type="s3"}`) once nothing is
 * in flight and two reads agree (MinIO counts a request just after its response, and v2's metrics are 10 s stale).
 * Diff two snapshots with `diffCounts` to count the requests of one operation of the code under test.
 */
export async function s3RequestCounts(minio: RunningMinio, opts: { signal?: AbortSignal } = {}): Promise<Record<string, number>> {
  const read = async (): Promise<{ counts: Record<string, number>; inflight: number }> => {
    const res = await fetch(`${minio.endpoint}/minio/metrics/v3/api/requests`, { signal: opts.signal ?? AbortSignal.timeout(10_000) });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`MinIO metrics on ${minio.endpoint} answered ${String(res.status)}: ${text.slice(0, 500)}`);
    return parseS3RequestMetrics(text);
  };
  const deadline = Date.now() + 2_000;
  let previous = await read();
  for (;;) {
    await sleep(20, undefined, { signal: opts.signal });
    const current = await read();
    if ((current.inflight === 0 && sameCounts(previous.counts, current.counts)) || Date.now() > deadline) return current.counts;
    previous = current;
  }
}

/** `after - before` per key, leaving out zeros: the requests made between two `s3RequestCounts` snapshots. */
export function diffCounts(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const diff: Record<string, number> = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const delta = (after[key] ?? 0) - (before[key] ?? 0);
    if (delta !== 0) diff[key] = delta;
  }
  return diff;
}
