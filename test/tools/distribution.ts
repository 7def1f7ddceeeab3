/**
 * Starts CNCF Distribution 2.8 (Debian `docker-registry`), the reference registry for interop tests and benchmarks.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { stopProcess, tailFile, waitUntil } from './processes.js';
import { freePort, toolPath } from './tools.js';

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
  const ownWorkDir = opts.workDir === undefined;
  const workDir = opts.workDir ?? (await mkdtemp(join(tmpdir(), 'berth-distribution-')));
  await mkdir(workDir, { recursive: true });
  // A port we picked may be taken between freePort() and bind: then try another one.
  const attempts = opts.port === undefined ? 3 : 1;
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = opts.port ?? (await freePort());
    try {
      const running = await startOnce(binary, rootDir, workDir, port, opts.deleteEnabled ?? false);
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
  throw lastError ?? new Error('Distribution did not start');
}

async function startOnce(binary: string, rootDir: string, workDir: string, port: number, deleteEnabled: boolean): Promise<RunningDistribution> {
  const configFile = join(workDir, 'config.yml');
  const logFile = join(workDir, 'registry.log');
  await writeFile(configFile, distributionConfig(rootDir, port, deleteEnabled));
  const log = createWriteStream(logFile, { flags: 'a' });
  await once(log, 'open');
  // REGISTRY_* variables override config.yml in Distribution: keep the caller's out.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('REGISTRY_')));
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
          throw new Error(`Distribution exited (${String(child.exitCode ?? child.signalCode)}) before it was ready:\n${await tailFile(logFile)}`);
        }
        try {
          const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2_000) });
          await res.body?.cancel();
          return res.status === 200;
        } catch {
          return false;
        }
      },
      { timeoutMs: 30_000, what: `Distribution on ${url}`, describe: () => tailFile(logFile) },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, port, configFile, logFile, stop };
}
