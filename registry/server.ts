/**
 * Builds the registry's HTTP servers from its dependencies; never listens, so tests can `inject`.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { WriteGuard } from './api/context.js';
import { ociApi } from './api/oci-api.js';
import { PROCESS_SECRET } from './api/upload-state.js';
import type { StorageDriver } from './driver/driver.js';
import { PathNotFoundError } from './driver/errors.js';
import type { RegistryMetrics } from './metrics.js';
import type { RegistryStorage } from './storage/registry-storage.js';

/** The largest manifest accepted, as in Distribution (4 MiB). */
export const MANIFEST_SIZE_LIMIT = 4 << 20;

/** What the servers are built from. */
export interface ServerDependencies {
  readonly storage: RegistryStorage;
  readonly metrics: RegistryMetrics;
  readonly writeGuard: WriteGuard;
  readonly deleteEnabled: boolean;
  readonly redirect: boolean;
  /** The pino logger to log through; none when absent. */
  readonly logger?: FastifyBaseLogger;
  /** Log one line per request (Distribution's access log). */
  readonly accessLog?: boolean;
  readonly manifestSizeLimit?: number;
  /** `http.secret`: signs upload state; replicas behind one load balancer must share it (default: this process's own). */
  readonly uploadStateSecret?: Uint8Array;
}

function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

/** Builds the API server: the `/v2` API with request metrics and an access log. */
export async function buildServer(deps: ServerDependencies): Promise<FastifyInstance> {
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    requestTimeout: 0,
    connectionTimeout: 0,
    keepAliveTimeout: 75_000,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    requestIdHeader: 'x-request-id',
  });
  const { metrics } = deps;
  app.addHook('onResponse', async (request, reply) => {
    const route = request.endpoint ?? 'unknown';
    const labels = { method: request.method, route, status_class: statusClass(reply.statusCode) };
    metrics.httpRequests.inc(labels);
    metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
    if (request.method !== 'HEAD') {
      const sent = Number(reply.getHeader('content-length') ?? 0);
      if (sent > 0) metrics.bytesSent.inc({ route }, sent);
    }
    if (deps.accessLog !== false) {
      request.log.info(
        { method: request.method, url: request.url, status: reply.statusCode, route, durationMs: Math.round(reply.elapsedTime * 10) / 10 },
        'Served request',
      );
    }
  });
  await app.register(ociApi, {
    storage: deps.storage,
    deleteEnabled: deps.deleteEnabled,
    redirect: deps.redirect,
    writeGuard: deps.writeGuard,
    manifestSizeLimit: deps.manifestSizeLimit ?? MANIFEST_SIZE_LIMIT,
    uploadStateSecret: deps.uploadStateSecret ?? PROCESS_SECRET,
    onBytesReceived: (route, bytes) => metrics.bytesReceived.inc({ route }, bytes),
    onUploadActive: (delta) => metrics.uploadsInProgress.inc(delta),
  });
  return app;
}

/** Checks that the storage driver answers; a missing root is healthy (a new, empty store). */
export async function checkStorage(driver: StorageDriver): Promise<void> {
  try {
    await driver.stat('/docker/registry/v2');
  } catch (error) {
    if (!(error instanceof PathNotFoundError)) throw error;
  }
}

/** Builds the debug server: `/metrics`, and health at `/debug/health`, `/healthz` and `/readyz`. */
export async function buildDebugServer(deps: {
  readonly metrics: RegistryMetrics;
  readonly driver: StorageDriver;
  readonly metricsPath?: string;
  readonly metricsEnabled?: boolean;
  readonly logger?: FastifyBaseLogger;
}): Promise<FastifyInstance> {
  const app = Fastify({ ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }), logController: new LogController({ disableRequestLogging: true }), forceCloseConnections: true });
  if (deps.metricsEnabled !== false) {
    app.get(deps.metricsPath ?? '/metrics', async (_request, reply) => {
      reply.header('content-type', deps.metrics.register.contentType);
      return deps.metrics.register.metrics();
    });
  }
  const health = async (_request: unknown, reply: FastifyReply) => {
    try {
      await checkStorage(deps.driver);
      return reply.code(200).send({ status: 'ok' });
    } catch (error) {
      return reply.code(503).send({ status: 'unavailable', storage: (error as Error).message });
    }
  };
  app.get('/debug/health', health);
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', health);
  return app;
}
