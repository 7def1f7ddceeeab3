/**
 * The registry's Prometheus metrics, all on one prom-client Registry per app instance (never the global
 * default), named in base units, with no unbounded labels.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Every metric the registry records. */
export interface RegistryMetrics {
  /** The prom-client registry the metrics live on; `/metrics` renders it. */
  readonly register: Registry;
  readonly httpRequests: Counter<'method' | 'route' | 'status_class'>;
  readonly httpDuration: Histogram<'method' | 'route' | 'status_class'>;
  readonly bytesReceived: Counter<'route'>;
  readonly bytesSent: Counter<'route'>;
  readonly storageDuration: Histogram<'driver' | 'operation'>;
  readonly storageErrors: Counter<'driver' | 'operation'>;
  readonly uploadsInProgress: Gauge;
  readonly hashRebuildBytes: Counter;
  readonly hashRebuildDuration: Histogram;
  readonly maintenanceWindow: Gauge;
  readonly maintenanceWindows: Counter<'outcome'>;
}

/** Creates the registry's metrics on a new prom-client Registry, with Node's default process metrics. */
export function createRegistryMetrics(): RegistryMetrics {
  const register = new Registry();
  collectDefaultMetrics({ register, prefix: 'registry_' });
  const registers = [register];
  return {
    register,
    httpRequests: new Counter({
      name: 'registry_http_requests_total',
      help: 'HTTP requests answered, by method, route and status class.',
      labelNames: ['method', 'route', 'status_class'],
      registers,
    }),
    httpDuration: new Histogram({
      name: 'registry_http_request_duration_seconds',
      help: 'Time from receiving a request to finishing its response, by method, route and status class.',
      labelNames: ['method', 'route', 'status_class'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    bytesReceived: new Counter({
      name: 'registry_http_received_bytes_total',
      help: 'Request body bytes received, by route.',
      labelNames: ['route'],
      registers,
    }),
    bytesSent: new Counter({
      name: 'registry_http_sent_bytes_total',
      help: 'Response body bytes sent, by route.',
      labelNames: ['route'],
      registers,
    }),
    storageDuration: new Histogram({
      name: 'registry_storage_operation_duration_seconds',
      help: 'Storage driver operation latency, by driver and operation.',
      labelNames: ['driver', 'operation'],
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
    }),
    storageErrors: new Counter({
      name: 'registry_storage_errors_total',
      help: 'Storage driver operations that failed for a reason other than a missing path, by driver and operation.',
      labelNames: ['driver', 'operation'],
      registers,
    }),
    uploadsInProgress: new Gauge({
      name: 'registry_uploads_in_progress',
      help: 'Blob upload requests (POST, PATCH, PUT with data) being received by this process.',
      registers,
    }),
    hashRebuildBytes: new Counter({
      name: 'registry_upload_hash_rebuild_bytes_total',
      help: 'Upload bytes read back from storage to hash them, because the chunks arrived at other processes.',
      registers,
    }),
    hashRebuildDuration: new Histogram({
      name: 'registry_upload_hash_rebuild_duration_seconds',
      help: 'Time spent reading an upload back from storage to hash it at commit.',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 120],
      registers,
    }),
    maintenanceWindow: new Gauge({
      name: 'registry_maintenance_window',
      help: "1 while this replica refuses writes for a garbage collection's read-only window.",
      registers,
    }),
    maintenanceWindows: new Counter({
      name: 'registry_maintenance_windows_total',
      help: 'Read-only windows this replica has left, by outcome: ended (the collector closed it) or expired (its time-to-live passed: the collector died).',
      labelNames: ['outcome'],
      registers,
    }),
  };
}
