#!/usr/bin/env node
/**
 * `berth-registry`: the registry's command line. `serve [config.yml]` runs the registry until SIGTERM or
 * SIGINT, then drains in-flight requests and exits; `gc [config.yml]` collects garbage.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, parseDuration } from './config.js';
import { collect } from './gc/mark-sweep.js';
import { createDriver, startRegistry } from './main.js';

const USAGE = `usage: berth-registry serve [config.yml]
       berth-registry gc [config.yml] [--dry-run] [--delete-untagged] [--grace-period 1h] [--json result.json]

  serve   run the registry; without a file, the embedded default (filesystem storage
          under ./data, API on :5000, metrics on :5001). REGISTRY_… environment
          variables override any setting, as in CNCF Distribution.
  gc      collect garbage in the configured store: delete blobs nothing references
          (older than the grace period) and, with --delete-untagged, manifests no tag
          or index references. Run it while the registry is read-only or stopped.`;

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
      json: { type: 'string' },
    },
  });
  if (positionals.length > 1) throw new UsageError();
  let gracePeriodMs: number;
  try {
    gracePeriodMs = parseDuration(values['grace-period']);
  } catch (error) {
    throw new ConfigError(`--grace-period: ${(error as Error).message}`);
  }
  const { config } = await loadConfig(positionals[0]);
  const driver = createDriver(config);
  const progress = (message: string) => process.stderr.write(`gc: ${message}\n`);
  const purging = config.storage.maintenance.uploadpurging;
  const result = await collect(driver, {
    deleteUntagged: values['delete-untagged'],
    dryRun: values['dry-run'],
    gracePeriodMs,
    ...(purging.enabled ? { uploadMaxAgeMs: purging.age } : {}),
    progress,
  });
  const summary = {
    dryRun: values['dry-run'],
    uploadsPurged: result.uploadsPurged.length,
    manifestsDeleted: result.manifestsDeleted.length,
    blobsDeleted: result.blobsDeleted.length,
    bytesFreed: result.bytesFreed,
    markSeconds: result.markSeconds,
    sweepSeconds: result.sweepSeconds,
  };
  if (values['dry-run']) {
    for (const item of [...result.uploadsPurged, ...result.manifestsDeleted, ...result.blobsDeleted]) console.log(`would delete ${item}`);
  }
  console.log(JSON.stringify(summary));
  if (values.json !== undefined) await writeFile(values.json, JSON.stringify({ ...summary, manifests: result.manifestsDeleted, blobs: result.blobsDeleted }, null, 2));
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
  if (error instanceof ConfigError) {
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
