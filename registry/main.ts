/**
 * The composition root: turns a validated configuration into a running registry (driver, storage,
 * API server, debug server) and stops it cleanly.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import pino from 'pino';
import { loadConfig, parseAddress, type RegistryConfig } from './config.js';
import { BaseDriver } from './driver/base.js';
import type { StorageDriver } from './driver/driver.js';
import { FilesystemDriver } from './driver/filesystem/filesystem-driver.js';
import { InMemoryDriver } from './driver/inmemory/inmemory-driver.js';
import { S3Driver } from './driver/s3/s3-driver.js';
import { MaintenanceWatcher } from './gc/maintenance.js';
import { createRegistryMetrics, type RegistryMetrics } from './metrics.js';
import { buildDebugServer, buildServer } from './server.js';
import { RegistryStorage } from './storage/registry-storage.js';
import { OBJECT_STORE, OBJECT_STORE_PULL, STRONGLY_CONSISTENT } from './storage/visibility.js';
import { SwitchableWriteGuard } from './write-guard.js';

/** A registry that is listening. */
export interface RunningRegistry {
  /** The API's base URL, such as `http://127.0.0.1:5000`. */
  readonly url: string;
  readonly port: number;
  /** The debug server's base URL, when one is configured. */
  readonly debugUrl: string | undefined;
  readonly metrics: RegistryMetrics;
  readonly writeGuard: SwitchableWriteGuard;
  readonly logger: FastifyBaseLogger;
  /** Stops accepting connections, lets in-flight requests finish (up to the drain timeout), then closes. */
  close(): Promise<void>;
}

/** Creates the configured storage driver, wrapped in the base driver. */
export function createDriver(config: RegistryConfig, metrics?: RegistryMetrics): StorageDriver {
  const { storage } = config;
  let inner: StorageDriver;
  if (storage.filesystem) {
    inner = new FilesystemDriver({ rootDirectory: resolve(storage.filesystem.rootdirectory) });
  } else if (storage.s3) {
    const s3 = storage.s3;
    inner = new S3Driver({
      bucket: s3.bucket,
      region: s3.region,
      ...(s3.regionendpoint !== undefined ? { endpoint: s3.regionendpoint } : {}),
      forcePathStyle: s3.forcepathstyle,
      rootDirectory: s3.rootdirectory,
      ...(s3.accesskey !== undefined && s3.secretkey !== undefined
        ? { credentials: { accessKeyId: s3.accesskey, secretAccessKey: s3.secretkey } }
        : {}),
      chunkSize: s3.chunksize,
      secure: s3.secure,
      skipVerify: s3.skipverify,
    });
  } else {
    inner = new InMemoryDriver();
  }
  return new BaseDriver(inner, metrics);
}

/** Creates the process logger from `log`: JSON lines on stdout, with the configured static fields. */
export function createLogger(config: RegistryConfig): FastifyBaseLogger {
  return pino({ level: config.log.level, base: { service: 'berth-registry', ...config.log.fields } }) as FastifyBaseLogger;
}

function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** Starts a registry from a validated configuration. */
export async function startRegistry(
  config: RegistryConfig,
  options: { logger?: FastifyBaseLogger; configPath?: string; reloadIntervalMs?: number } = {},
): Promise<RunningRegistry> {
  const logger = options.logger ?? createLogger(config);
  const metrics = createRegistryMetrics();
  const driver = createDriver(config, metrics);
  const writeGuard = new SwitchableWriteGuard(config.storage.maintenance.readonly.enabled);
  const replicaId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const maintenance = new MaintenanceWatcher(driver, writeGuard, {
    replicaId,
    onChange: (state) => {
      logger.info(state, state.readOnly ? 'Entered a maintenance window' : 'Left a maintenance window');
      metrics.maintenanceWindow.set(state.readOnly ? 1 : 0);
      if (!state.readOnly) metrics.maintenanceWindows.inc({ outcome: state.reason === 'MaintenanceExpired' ? 'expired' : 'ended' });
    },
  });
  const storage = new RegistryStorage(driver, {
    ...(config.storage.s3 ? { visibility: OBJECT_STORE, pullVisibility: OBJECT_STORE_PULL } : { visibility: STRONGLY_CONSISTENT }),
    journal: maintenance.journal,
    observer: {
      hashRebuilt(bytes, seconds) {
        metrics.hashRebuildBytes.inc(bytes);
        metrics.hashRebuildDuration.observe(seconds);
      },
    },
  });
  // The first look at the marker comes before the first request: a replica starting mid-collection journals or refuses.
  await maintenance.start();
  const app = await buildServer({
    storage,
    metrics,
    writeGuard: maintenance,
    deleteEnabled: config.storage.delete.enabled,
    redirect: !config.storage.redirect.disable,
    logger,
    accessLog: !config.log.accesslog.disabled,
    ...(config.http.secret !== undefined ? { uploadStateSecret: Buffer.from(config.http.secret) } : {}),
  });
  const address = parseAddress(config.http.addr);
  if (address === undefined) throw new Error(`http.addr ${config.http.addr} is not an address`);
  await app.listen({ host: address.host, port: address.port });
  const port = (app.server.address() as { port: number }).port;

  let debug: FastifyInstance | undefined;
  let debugUrl: string | undefined;
  const debugAddress = config.http.debug.addr === undefined ? undefined : parseAddress(config.http.debug.addr);
  if (debugAddress !== undefined) {
    debug = await buildDebugServer({
      metrics,
      driver,
      metricsEnabled: config.http.debug.prometheus.enabled,
      metricsPath: config.http.debug.prometheus.path,
      logger,
    });
    await debug.listen({ host: debugAddress.host, port: debugAddress.port });
    debugUrl = `http://${hostForUrl(debugAddress.host)}:${(debug.server.address() as { port: number }).port}`;
  }
  const url = `http://${hostForUrl(address.host)}:${port}`;
  logger.info({ url, debugUrl, driver: driver.name, readOnly: writeGuard.isReadOnly }, 'Started registry');
  if (config.http.secret === undefined) {
    logger.warn('No http.secret configured: using a random one; replicas behind one load balancer must share a secret (REGISTRY_HTTP_SECRET)');
  }

  // Read-only mode switches at run time: the config file (a mounted ConfigMap in Kubernetes) is read
  // again now and then, and only storage.maintenance.readonly.enabled is taken from it.
  let reload: NodeJS.Timeout | undefined;
  if (options.configPath !== undefined) {
    const path = options.configPath;
    reload = setInterval(() => {
      loadConfig(path).then(
        ({ config: fresh }) => {
          const readOnly = fresh.storage.maintenance.readonly.enabled;
          if (readOnly !== writeGuard.isReadOnly) {
            writeGuard.setReadOnly(readOnly);
            logger.info({ readOnly }, 'Switched read-only mode from the configuration file');
          }
        },
        (error: unknown) => logger.error({ err: error, path }, 'Failed to reload the configuration file; keeping the current mode'),
      );
    }, options.reloadIntervalMs ?? 2_000);
    reload.unref();
  }

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    debugUrl,
    metrics,
    writeGuard,
    logger,
    close() {
      closing ??= (async () => {
        if (reload !== undefined) clearInterval(reload);
        const timer = setTimeout(() => {
          logger.warn({ drainTimeoutMs: config.http.draintimeout }, 'Closed connections still busy after the drain timeout');
          app.server.closeAllConnections();
        }, config.http.draintimeout);
        timer.unref();
        await app.close();
        clearTimeout(timer);
        await maintenance.stop();
        await debug?.close();
        logger.info('Stopped registry');
      })();
      return closing;
    },
  };
}
