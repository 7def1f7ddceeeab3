#!/usr/bin/env node
/**
 * `berth-registry`: the registry's command line. `serve [config.yml]` runs the registry until SIGTERM or
 * SIGINT, then drains in-flight requests and exits.
 */
import { ConfigError, loadConfig } from './config.js';
import { startRegistry } from './main.js';

const USAGE = `usage: berth-registry serve [config.yml]

  serve   run the registry; without a file, the embedded default (filesystem storage
          under ./data, API on :5000, metrics on :5001). REGISTRY_… environment
          variables override any setting, as in CNCF Distribution.`;

async function serve(configPath: string | undefined): Promise<void> {
  const { config, ignored } = await loadConfig(configPath);
  const registry = await startRegistry(config);
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

async function run(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
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
  if (error instanceof UsageError) {
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
