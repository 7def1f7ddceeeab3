/**
 * Runs Berth's registry as a separate process, exactly as `berth-registry serve config.yml` runs it, for
 * tests that need real processes: several registries on one store, signals, real clients.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopProcess, tailFile, waitUntil } from '../tools/processes.js';
import { freePort } from '../tools/tools.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** A running Berth registry process. */
export interface BerthProcess {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  readonly url: string;
  readonly port: number;
  readonly debugUrl: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  /** Sends SIGTERM (then SIGKILL after a grace period) and waits for the exit. */
  stop(): Promise<void>;
}

/** Where a test registry stores its content. */
export type TestStorage =
  | { readonly rootDir: string }
  | {
      readonly s3: {
        readonly endpoint: string;
        readonly bucket: string;
        readonly region: string;
        readonly accessKey: string;
        readonly secretKey: string;
        readonly rootDirectory?: string;
        readonly redirect?: boolean;
      };
    };

function storageYaml(storage: TestStorage): string[] {
  if ('rootDir' in storage) return ['  filesystem:', `    rootdirectory: ${JSON.stringify(storage.rootDir)}`];
  const { s3 } = storage;
  return [
    '  s3:',
    `    bucket: ${JSON.stringify(s3.bucket)}`,
    `    region: ${JSON.stringify(s3.region)}`,
    `    regionendpoint: ${JSON.stringify(s3.endpoint)}`,
    '    forcepathstyle: true',
    '    secure: false',
    `    accesskey: ${JSON.stringify(s3.accessKey)}`,
    `    secretkey: ${JSON.stringify(s3.secretKey)}`,
    `    rootdirectory: ${JSON.stringify(s3.rootDirectory ?? '/')}`,
    '  redirect:',
    `    disable: ${String(s3.redirect !== true)}`,
  ];
}

/** Writes a config.yml for a test store and returns its path. */
export async function writeBerthConfig(
  dir: string,
  options: { storage: TestStorage; port: number; debugPort: number; deleteEnabled?: boolean; extra?: string },
): Promise<string> {
  const path = join(dir, 'config.yml');
  await writeFile(
    path,
    [
      'version: 0.1',
      'log:',
      '  level: info',
      'storage:',
      ...storageYaml(options.storage),
      '  delete:',
      `    enabled: ${String(options.deleteEnabled ?? true)}`,
      'http:',
      `  addr: 127.0.0.1:${options.port}`,
      // Every test replica shares it, as replicas behind one load balancer must.
      '  secret: berth-test-upload-state-secret',
      '  draintimeout: 20s',
      '  debug:',
      `    addr: 127.0.0.1:${options.debugPort}`,
      options.extra ?? '',
      '',
    ].join('\n'),
  );
  return path;
}

/** Starts `berth-registry serve` on a test store and waits until `/v2/` answers. */
export async function startBerth(options: {
  /** A filesystem store at this directory (shorthand for `storage: { rootDir }`). */
  rootDir?: string;
  storage?: TestStorage;
  deleteEnabled?: boolean;
  env?: NodeJS.ProcessEnv;
  workDir?: string;
  /** Run the compiled JavaScript in dist/ (benchmarks) instead of the TypeScript sources through tsx. */
  built?: boolean;
}): Promise<BerthProcess> {
  const workDir = options.workDir ?? (await mkdtemp(join(tmpdir(), 'berth-proc-')));
  await mkdir(workDir, { recursive: true });
  const storage: TestStorage | undefined = options.storage ?? (options.rootDir !== undefined ? { rootDir: options.rootDir } : undefined);
  if (storage === undefined) throw new Error('startBerth needs rootDir or storage');
  if ('rootDir' in storage) await mkdir(storage.rootDir, { recursive: true });
  const port = await freePort();
  const debugPort = await freePort();
  const config = await writeBerthConfig(workDir, {
    storage,
    port,
    debugPort,
    ...(options.deleteEnabled !== undefined ? { deleteEnabled: options.deleteEnabled } : {}),
  });
  const logFile = join(workDir, 'berth.log');
  const log = createWriteStream(logFile);
  const entry = options.built ? [join(REPO, 'dist/registry/cli.js')] : ['--import', 'tsx', join(REPO, 'registry/cli.ts')];
  const child = spawn(process.execPath, [...entry, 'serve', config], {
    cwd: REPO,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(
    async () => {
      if (child.exitCode !== null) throw new Error(`berth-registry exited with ${child.exitCode}:\n${await tailFile(logFile)}`);
      try {
        return (await fetch(`${url}/v2/`)).status === 200;
      } catch {
        return false;
      }
    },
    { timeoutMs: 30_000, what: 'berth-registry to answer /v2/', describe: () => tailFile(logFile) },
  );
  return {
    url,
    port,
    debugUrl: `http://127.0.0.1:${debugPort}`,
    logFile,
    child,
    stop: () => stopProcess(child),
  };
}
