/**
 * Starts CNCF Distribution, the reference registry for interop tests and benchmarks: 2.8 (Debian `docker-registry`)
 * on the filesystem, and 3 (built by install.sh as `distribution-v3`) on S3.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { stopProcess, tailFile, waitUntil } from './processes.js';
import { freePort, toolPath } from './tools.js';
import type { RunningMinio } from './minio.js';

/** Options for `startDistribution`. */
export interface DistributionOptions {
  /** Filesystem storage root (created if missing); Distribution writes `docker/registry/v2/…` under it. */
  rootDir: string;
  /** Port on 127.0.0.1; a free one is picked when absent. */
  port?: number;
  /** Enable DELETE of manifests and blobs (`storage.delete.enabled`); default false, as in Distribution. */
  deleteEnabled?: boolean;
  /** Directory for config.yml and registry.log (kept); when absent, a temporary directory that stop() removes. */
  workDir?: string;
}

/** A running Distribution: its base URL (`http://127.0.0.1:PORT`, no trailing slash), port, files, and a stop function. */
export interface RunningDistribution {
  url: string;
  port: number;
  configFile: string;
  logFile: string;
  /** Stops the registry (SIGTERM, then SIGKILL after a grace period); safe to call twice. */
  stop(): Promise<void>;
}

/** Builds Distribution's config.yml: filesystem storage at `rootDir`, plain HTTP on 127.0.0.1:`port`, no auth, no upload purging. */
export function distributionConfig(rootDir: string, port: number, deleteEnabled: boolean): string {
  return [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: text',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(rootDir)}`,
    '  delete:',
    `    enabled: ${String(deleteEnabled)}`,
    // A test must never see its uploads vanish because the registry's purger ran.
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${String(port)}`,
    '  headers:',
    '    X-Content-Type-Options: [nosniff]',
    '',
  ].join('\n');
}

/**
 * Starts `/usr/bin/docker-registry serve config.yml` and resolves once `GET /v2/` answers 200;
 * rejects (with the log's tail) if it exits or is not ready within 30 s.
 */
export async function startDistribution(opts: DistributionOptions): Promise<RunningDistribution> {
  const binary = toolPath('docker-registry');
  const rootDir = resolve(opts.rootDir);
  await mkdir(rootDir, { recursive: true });
  const deleteEnabled = opts.deleteEnabled ?? false;
  return await startWithConfig(binary, 'Distribution', opts, (port) => distributionConfig(rootDir, port, deleteEnabled));
}

/** The S3 server Distribution 3 stores into: a `RunningMinio`, or anything else with the same fields. */
export type S3Peer = Pick<RunningMinio, 'endpoint' | 'accessKey' | 'secretKey' | 'region'>;

/** Options for `startDistributionV3S3`. */
export interface DistributionV3S3Options {
  /** The S3 server; its `endpoint` is `http://HOST:PORT` (Distribution talks plain HTTP, path-style, to it). */
  minio: S3Peer;
  /** Bucket (must exist already, e.g. made with `createBucket`). */
  bucket: string;
  /** Key prefix inside the bucket (`rootdirectory`); Distribution writes `docker/registry/v2/…` under it. Default: the bucket's root. */
  rootDirectory?: string;
  /** Port on 127.0.0.1; a free one is picked when absent. */
  port?: number;
  /** Answer blob GETs with 307 redirects to presigned S3 URLs, as Distribution does by default; default false (blobs stream through the registry). */
  redirect?: boolean;
  /** Enable DELETE of manifests and blobs (`storage.delete.enabled`); default false, as in Distribution. */
  deleteEnabled?: boolean;
  /** Directory for config.yml and registry.log (kept); when absent, a temporary directory that stop() removes. */
  workDir?: string;
}

/**
 * Builds Distribution 3's config.yml: `storage.s3` on `opts.minio` (regionendpoint, forcepathstyle, secure only for an https endpoint,
 * the peer's keys and region), redirects disabled unless `opts.redirect`, plain HTTP on 127.0.0.1:`port`, no auth,
 * no upload purging.
 */
export function distributionV3S3Config(opts: Omit<DistributionV3S3Options, 'port' | 'workDir'>, port: number): string {
  const endpoint = new URL(opts.minio.endpoint);
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: text',
    'storage:',
    '  s3:',
    `    regionendpoint: ${JSON.stringify(endpoint.origin)}`,
    '    forcepathstyle: true',
    `    secure: ${String(endpoint.protocol === 'https:')}`,
    `    region: ${JSON.stringify(opts.minio.region)}`,
    `    accesskey: ${JSON.stringify(opts.minio.accessKey)}`,
    `    secretkey: ${JSON.stringify(opts.minio.secretKey)}`,
    `    bucket: ${JSON.stringify(opts.bucket)}`,
  ];
  if (opts.rootDirectory !== undefined) lines.push(`    rootdirectory: ${JSON.stringify(opts.rootDirectory)}`);
  lines.push(
    '  redirect:',
    `    disable: ${String(!(opts.redirect ?? false))}`,
    '  delete:',
    `    enabled: ${String(opts.deleteEnabled ?? false)}`,
    // A test must never see its uploads vanish because the registry's purger ran.
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${String(port)}`,
    '  headers:',
    '    X-Content-Type-Options: [nosniff]',
    '',
  );
  return lines.join('\n');
}

/**
 * Starts CNCF Distribution 3 (`distribution-v3 serve config.yml`, config from `distributionV3S3Config`) on an S3
 * bucket and resolves once `GET /v2/` answers 200; rejects (with the log's tail) if it exits or is not ready within 30 s.
 * Distribution does not touch the bucket until a request needs it, and it runs no storage health check (its S3
 * requests would show in `s3RequestCounts`), so a wrong bucket shows only on the first push or pull.
 */
export async function startDistributionV3S3(opts: DistributionV3S3Options): Promise<RunningDistribution> {
  const binary = toolPath('distribution-v3');
  return await startWithConfig(binary, 'Distribution 3', opts, (port) => distributionV3S3Config(opts, port));
}

/** Starts `binary serve config.yml` with the config `configFor(port)`, on `opts.port` or on a free port (retried if taken meanwhile). */
async function startWithConfig(
  binary: string,
  what: string,
  opts: { port?: number; workDir?: string },
  configFor: (port: number) => string,
): Promise<RunningDistribution> {
  const ownWorkDir = opts.workDir === undefined;
  const workDir = opts.workDir ?? (await mkdtemp(join(tmpdir(), 'berth-distribution-')));
  await mkdir(workDir, { recursive: true });
  // A port we picked may be taken between freePort() and bind: then try another one.
  const attempts = opts.port === undefined ? 3 : 1;
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = opts.port ?? (await freePort());
    try {
      const running = await startOnce(binary, what, workDir, port, configFor(port));
      if (!ownWorkDir) return running;
      return {
        ...running,
        stop: async () => {
          await running.stop();
          await rm(workDir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      lastError = err as Error;
      if (!/address already in use/i.test(lastError.message)) break;
    }
  }
  // Keep the work dir: its log says why the registry did not start.
  throw lastError ?? new Error(`${what} did not start`);
}

async function startOnce(binary: string, what: string, workDir: string, port: number, config: string): Promise<RunningDistribution> {
  const configFile = join(workDir, 'config.yml');
  const logFile = join(workDir, 'registry.log');
  await writeFile(configFile, config);
  const log = createWriteStream(logFile, { flags: 'a' });
  await once(log, 'open');
  // REGISTRY_* variables override config.yml in Distribution, and AWS_* ones would redirect its S3 client: keep the
  // caller's out. No OpenTelemetry exporter: Distribution 3 would otherwise try to send traces to localhost:4318.
  const inherited = Object.entries(process.env).filter(([key]) => !key.startsWith('REGISTRY_') && !key.startsWith('AWS_') && !key.startsWith('OTEL_'));
  const env = { ...Object.fromEntries(inherited), OTEL_TRACES_EXPORTER: 'none' };
  const child = spawn(binary, ['serve', configFile], { env, stdio: ['ignore', log, log] });
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  const url = `http://127.0.0.1:${String(port)}`;
  let stopped: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    stopped ??= stopProcess(child, 10_000).finally(() => {
      log.close();
    });
    await stopped;
  };
  try {
    await waitUntil(
      async () => {
        if (spawnError) throw spawnError;
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`${what} exited (${String(child.exitCode ?? child.signalCode)}) before it was ready:\n${await tailFile(logFile)}`);
        }
        try {
          const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2_000) });
          await res.body?.cancel();
          return res.status === 200;
        } catch {
          return false;
        }
      },
      { timeoutMs: 30_000, what: `${what} on ${url}`, describe: () => tailFile(logFile) },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, port, configFile, logFile, stop };
}
