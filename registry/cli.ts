#!/usr/bin/env node
/**
 * `berth-registry`: the registry's command line. `serve [config.yml]` runs the registry until SIGTERM or
 * SIGINT, then drains in-flight requests and exits; `gc [config.yml]` collects garbage.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, parseDuration } from './config.js';
import { CollectionAbortedError, CollectionBusyError, runCollection } from './gc/collector.js';
import { createDriver, startRegistry } from './main.js';
import { OBJECT_STORE, STRONGLY_CONSISTENT } from './storage/visibility.js';

const USAGE = `usage: berth-registry serve [config.yml]
       berth-registry gc [config.yml] [--dry-run] [--delete-untagged] [--grace-period 1h]
                         [--read-only-timeout 5m] [--ack-timeout 60s] [--json result.json]

  serve   run the registry; without a file, the embedded default (filesystem storage
          under ./data, API on :5000, metrics on :5001). REGISTRY_… environment
          variables override any setting, as in CNCF Distribution.
  gc      collect garbage in the configured store: delete blobs nothing references
          (older than the grace period) and, with --delete-untagged, manifests no tag
          or index references. Runs while the registry's replicas serve: it marks
          online, then makes them read-only only for a short window (at most
          --read-only-timeout if gc dies in it). Prints progress on stderr and a JSON
          summary on stdout (and into --json, for a Kubernetes termination message).
          --unsafe-no-window and --unsafe-no-remark break the protocol on purpose,
          for tests that must see the damage; never use them.`;

async function serve(configPath: string | undefined): Promise<void> {
  const { config, ignored } = await loadConfig(configPath);
  const registry = await startRegistry(config, configPath !== undefined ? { configPath } : {});
  if (ignored.length > 0) registry.logger.warn({ keys: ignored }, 'Ignored configuration keys that Berth does not implement');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    registry.logger.info({ signal }, 'Received signal, draining');
    registry.close().then(
      () => process.exit(0),
      (error: unknown) => {
        registry.logger.error({ err: error }, 'Failed to stop cleanly');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function gc(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      'dry-run': { type: 'boolean', default: false },
      'delete-untagged': { type: 'boolean', default: false },
      'grace-period': { type: 'string', default: '1h' },
      'read-only-timeout': { type: 'string', default: '5m' },
      'ack-timeout': { type: 'string', default: '60s' },
      'unsafe-no-window': { type: 'boolean', default: false },
      'unsafe-no-remark': { type: 'boolean', default: false },
      json: { type: 'string' },
    },
  });
  if (positionals.length > 1) throw new UsageError();
  const duration = (flag: 'grace-period' | 'read-only-timeout' | 'ack-timeout'): number => {
    try {
      return parseDuration(values[flag]);
    } catch (error) {
      throw new ConfigError(`--${flag}: ${(error as Error).message}`);
    }
  };
  const gracePeriodMs = duration('grace-period');
  const readOnlyTimeoutMs = duration('read-only-timeout');
  const ackTimeoutMs = duration('ack-timeout');
  const { config } = await loadConfig(positionals[0]);
  const driver = createDriver(config);
  const started = performance.now();
  const progress = (message: string) => process.stderr.write(`gc: [${((performance.now() - started) / 1000).toFixed(1)}s] ${message}\n`);
  const purging = config.storage.maintenance.uploadpurging;
  const result = await runCollection(driver, {
    deleteUntagged: values['delete-untagged'],
    dryRun: values['dry-run'],
    gracePeriodMs,
    readOnlyTimeoutMs,
    ackTimeoutMs,
    visibility: config.storage.s3 ? OBJECT_STORE : STRONGLY_CONSISTENT,
    unsafe: { noWindow: values['unsafe-no-window'], noRemark: values['unsafe-no-remark'] },
    ...(purging.enabled ? { uploadMaxAgeMs: purging.age } : {}),
    progress,
  });
  // Small enough for a Kubernetes termination message (4 KiB): counts and times, not lists.
  const summary = {
    dryRun: values['dry-run'],
    manifestsDeleted: result.manifestsDeleted.length,
    blobsDeleted: result.blobsDeleted.length,
    uploadsPurged: result.uploadsPurged.length,
    bytesFreed: result.bytesFreed,
    markSeconds: result.markSeconds,
    readOnlyWindowSeconds: result.readOnlyWindowSeconds,
    sweepSeconds: result.sweepSeconds,
    remarked: result.remarked,
    replicas: result.replicas,
  };
  if (values['dry-run']) {
    for (const item of [...result.uploadsPurged, ...result.manifestsDeleted, ...result.blobsDeleted]) console.log(`would delete ${item}`);
  }
  console.log(JSON.stringify(summary));
  if (values.json !== undefined) await writeFile(values.json, JSON.stringify(summary));
}

async function run(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'gc':
      return gc(rest);
    case 'serve':
      if (rest.length > 1) throw new UsageError();
      return serve(rest[0]);
    case '-h':
    case '--help':
    case 'help':
      console.log(USAGE);
      return;
    default:
      throw new UsageError();
  }
}

class UsageError extends Error {}

run(process.argv.slice(2)).catch((error: unknown) => {
  const parseCode = (error as { code?: unknown } | undefined)?.code;
  if (error instanceof UsageError || (typeof parseCode === 'string' && parseCode.startsWith('ERR_PARSE_ARGS'))) {
    if (!(error instanceof UsageError)) console.error(`berth-registry: ${(error as Error).message}`);
    console.error(USAGE);
    process.exit(2);
  }
  if (error instanceof ConfigError || error instanceof CollectionBusyError || error instanceof CollectionAbortedError) {
    console.error(`berth-registry: ${error.message}`);
    process.exit(1);
  }
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    const { address, port } = error as { address?: string; port?: number };
    console.error(`berth-registry: cannot listen on ${address ?? ''}:${port ?? ''} (${code}); set http.addr or http.debug.addr to a free address`);
    process.exit(1);
  }
  console.error('berth-registry: failed to start:', error);
  process.exit(1);
});
