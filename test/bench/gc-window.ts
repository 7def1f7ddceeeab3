/**
 * `npm run bench:gc`: does garbage collection's read-only window stay short as the registry grows
 * (DESIGN.md §2)? For 10, 1,000 and 10,000 manifests (BENCH_GC_SIZES), on the filesystem and on S3
 * (MinIO) (BENCH_GC_BACKENDS), it measures Berth's mark and read-only window with three live replicas,
 * against CNCF Distribution's whole garbage collection on the same data, which is read-only from start to
 * end: Distribution 2.8 on the filesystem, Distribution 3 on S3.
 *
 * For each size and backend:
 * 1. Two identical stores are written directly through Berth's storage driver, in Distribution's layout:
 *    one repository per ten images, each image a unique config and two layers from a shared pool, a
 *    manifest, its revision, `_layers` links and a tag. Every store also holds the same garbage: orphan
 *    blobs, and untagged manifests each with a config nothing else uses.
 * 2. Three `berth-registry serve` processes run on the first store, heartbeating and journaling; one image
 *    is pulled from them.
 * 3. `berth-registry gc --delete-untagged --grace-period 0s` runs there; its JSON summary gives the mark and
 *    window times, and the counts it deleted, which must be exactly the garbage made; the replicas' logs
 *    say how long each of them refused writes.
 * 4. Distribution's `garbage-collect --delete-untagged` runs on the second store and is timed whole.
 *
 * The window target (≤ 2 s on the filesystem at every size) is reported, never enforced: the run fails only
 * on errors. Environment: BENCH_GC_SIZES (default 10,1000,10000), BENCH_GC_BACKENDS (default filesystem,s3).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pLimit from 'p-limit';
import { loadConfig } from '../../registry/config.js';
import type { StorageDriver } from '../../registry/driver/driver.js';
import { createDriver } from '../../registry/main.js';
import { digestOf, type Digest } from '../../registry/storage/digest.js';
import { deleteIfPresent, writeLink } from '../../registry/storage/links.js';
import { blobDataPath, layerLinkPath, manifestRevisionLinkPath, tagCurrentLinkPath, tagIndexLinkPath } from '../../registry/storage/paths.js';
import { startBerth, writeBerthConfig, type BerthProcess, type TestStorage } from '../support/berth-process.js';
import { distributionConfig, distributionV3S3Config } from '../tools/distribution.js';
import { createBucket, startMinio, type RunningMinio } from '../tools/minio.js';
import { runCommand, stopProcess, waitUntil } from '../tools/processes.js';
import { freePort, toolPath } from '../tools/tools.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CLI = join(REPO, 'dist/registry/cli.js');

const SIZES = (process.env['BENCH_GC_SIZES'] ?? '10,1000,10000').split(',').map((size) => Number(size.trim()));
const BACKENDS = (process.env['BENCH_GC_BACKENDS'] ?? 'filesystem,s3').split(',').map((backend) => backend.trim());
/** Object writes in flight at once while building a store. */
const WRITE_CONCURRENCY = 32;
/** Repositories built at once (each issues its writes through the shared write limit). */
const REPOSITORY_CONCURRENCY = 4;
const IMAGES_PER_REPOSITORY = 10;
/** Distinct layers the images share (two each). */
const LAYER_POOL = 64;
const LAYER_BYTES = 1024;
/** The garbage every store holds, whatever its size. */
const ORPHAN_BLOBS = 10;
const UNTAGGED_MANIFESTS = 10;
const REPLICAS = 3;
const TARGET_WINDOW_SECONDS = 2;
const BUCKET = 'gc-bench';

const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const CONFIG_TYPE = 'application/vnd.oci.image.config.v1+json';
const LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';

const benchStarted = performance.now();
const elapsed = () => `${((performance.now() - benchStarted) / 1000).toFixed(0)}s`;
const progress = (message: string) => process.stderr.write(`bench:gc: [${elapsed()}] ${message}\n`);

for (const size of SIZES) if (!Number.isInteger(size) || size < 1) throw new Error(`BENCH_GC_SIZES: ${size} is not a positive whole number`);
for (const backend of BACKENDS) if (backend !== 'filesystem' && backend !== 's3') throw new Error(`BENCH_GC_BACKENDS: unknown backend ${backend}`);

/** Cleanups to run on the way out, last registered first: after a failure and on SIGINT/SIGTERM too. */
const cleanups: (() => Promise<void>)[] = [];

let cleaning: Promise<void> | undefined;
let interrupted = false;

/** Runs every cleanup once; a second call (the signal handler and main's finally) waits for the same run. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch((error: unknown) => progress(`cleanup failed: ${(error as Error).message}`));
  })();
  return cleaning;
}

/** Dies of the signal that stopped the run, as a shell expects, once the handler is gone. */
const dieOf = (signal: NodeJS.Signals) => process.kill(process.pid, signal);
let stopSignal: NodeJS.Signals = 'SIGINT';

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    stopSignal = signal;
    progress(`${signal}: stopping processes and removing temporary files`);
    void cleanUp().finally(() => dieOf(signal));
  });
}

// ---------------------------------------------------------------------------------------------------------
// The store: deterministic content, so two stores built from the same size hold the same digests.

interface Blob {
  readonly digest: Digest;
  readonly bytes: Buffer;
}

function blob(bytes: Buffer): Blob {
  return { digest: digestOf(bytes), bytes };
}

/** Layer `k` of the shared pool: LAYER_BYTES of bytes derived from k. */
function poolLayer(k: number): Blob {
  const seed = createHash('sha256').update(`gc-bench layer ${k}`).digest();
  return blob(Buffer.concat(Array.from({ length: LAYER_BYTES / seed.length }, () => seed)));
}

/** The two pool layers image `i` uses: always two different ones. */
function layersOf(i: number): [number, number] {
  const first = i % LAYER_POOL;
  const second = (first + 1 + (Math.floor(i / LAYER_POOL) % (LAYER_POOL - 1))) % LAYER_POOL;
  return [first, second];
}

function config(label: string): Blob {
  return blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { 'gc-bench': label } }, rootfs: { type: 'layers', diff_ids: [] } })));
}

function manifest(configBlob: Blob, layers: readonly Blob[]): Blob {
  return blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST_TYPE,
        config: { mediaType: CONFIG_TYPE, digest: configBlob.digest, size: configBlob.bytes.length },
        layers: layers.map((layer) => ({ mediaType: LAYER_TYPE, digest: layer.digest, size: layer.bytes.length })),
      }),
    ),
  );
}

const repositoryName = (r: number) => `gc-bench/r${String(r).padStart(5, '0')}`;

/** Where image `i` lives and what it is made of. */
function image(i: number, layers: readonly Blob[]): { name: string; tag: string; config: Blob; manifest: Blob; layers: Blob[] } {
  const name = repositoryName(Math.floor(i / IMAGES_PER_REPOSITORY));
  const own = layersOf(i).map((k) => layers[k] as Blob);
  const configBlob = config(`${name} image ${i}`);
  return { name, tag: `v${i % IMAGES_PER_REPOSITORY}`, config: configBlob, manifest: manifest(configBlob, own), layers: own };
}

/** What a built store must give back: an image to pull, and the garbage a collection must find. */
interface BuiltStore {
  readonly sample: ReturnType<typeof image>;
  readonly objects: number;
  readonly expectedManifests: number;
  readonly expectedBlobs: number;
}

/**
 * Writes a store of `size` tagged manifests, plus the fixed garbage, into every driver at once (the same
 * objects, so the stores are copies of each other), with at most WRITE_CONCURRENCY writes in flight.
 */
async function buildStores(drivers: readonly StorageDriver[], size: number, label: string): Promise<BuiltStore> {
  const io = pLimit(WRITE_CONCURRENCY);
  let written = 0;
  const put = (path: string, bytes: Buffer) =>
    Promise.all(
      drivers.map((driver) =>
        io(async () => {
          await driver.putContent(path, bytes);
          written++;
        }),
      ),
    );
  const link = (path: string, digest: Digest) =>
    Promise.all(
      drivers.map((driver) =>
        io(async () => {
          await writeLink(driver, path, digest);
          written++;
        }),
      ),
    );

  const pool = Array.from({ length: LAYER_POOL }, (_, k) => poolLayer(k));
  const used = new Set<number>();
  for (let i = 0; i < size; i++) for (const k of layersOf(i)) used.add(k);
  await Promise.all([...used].map((k) => put(blobDataPath((pool[k] as Blob).digest), (pool[k] as Blob).bytes)));

  const repositories = Math.ceil(size / IMAGES_PER_REPOSITORY);
  const started = performance.now();
  let repositoriesDone = 0;
  let reported = 0;
  const perRepository = pLimit(REPOSITORY_CONCURRENCY);
  await Promise.all(
    Array.from({ length: repositories }, (_, r) =>
      perRepository(async () => {
        // After a signal, stop building: the cleanup is removing the directory being written.
        if (interrupted) throw new Error('interrupted');
        const name = repositoryName(r);
        const writes: Promise<unknown>[] = [];
        const layerLinks = new Set<Digest>();
        const addManifest = (m: Blob, c: Blob, layers: readonly Blob[]) => {
          writes.push(put(blobDataPath(c.digest), c.bytes), put(blobDataPath(m.digest), m.bytes), link(manifestRevisionLinkPath(name, m.digest), m.digest));
          for (const b of [c, ...layers]) layerLinks.add(b.digest);
        };
        for (let i = r * IMAGES_PER_REPOSITORY; i < Math.min(size, (r + 1) * IMAGES_PER_REPOSITORY); i++) {
          const img = image(i, pool);
          addManifest(img.manifest, img.config, img.layers);
          writes.push(link(tagIndexLinkPath(name, img.tag, img.manifest.digest), img.manifest.digest));
          writes.push(link(tagCurrentLinkPath(name, img.tag), img.manifest.digest));
        }
        // Garbage, spread over the repositories: manifests pushed by digest and never tagged (each with a
        // config of its own and the layers of a tagged image), and blobs uploaded but never referenced.
        for (let j = r; j < UNTAGGED_MANIFESTS; j += repositories) {
          const layers = layersOf(j % size).map((k) => pool[k] as Blob);
          const c = config(`${name} untagged ${j}`);
          addManifest(manifest(c, layers), c, layers);
        }
        for (let j = r; j < ORPHAN_BLOBS; j += repositories) {
          const orphan = blob(Buffer.from(`gc-bench orphan blob ${j}\n`.repeat(32)));
          writes.push(put(blobDataPath(orphan.digest), orphan.bytes));
          layerLinks.add(orphan.digest);
        }
        for (const digest of layerLinks) writes.push(link(layerLinkPath(name, digest), digest));
        await Promise.all(writes);
        repositoriesDone++;
        const done = Math.min(size, repositoriesDone * IMAGES_PER_REPOSITORY);
        if (done - reported >= size / 10 || repositoriesDone === repositories) {
          reported = done;
          const seconds = (performance.now() - started) / 1000;
          progress(`${label}: built ${repositoriesDone}/${repositories} repositories (~${done} manifests, ${written} objects) in ${seconds.toFixed(0)} s`);
        }
      }),
    ),
  );
  return {
    sample: image(size - 1, pool),
    objects: written / drivers.length,
    expectedManifests: UNTAGGED_MANIFESTS,
    // Each untagged manifest takes its own blob and its config with it; the layers it shares stay.
    expectedBlobs: ORPHAN_BLOBS + 2 * UNTAGGED_MANIFESTS,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Berth: replicas, a pull, and the collection.

/** Pulls an image from a replica: the manifest by tag, then its config and layers, each checked by digest. */
async function pullImage(url: string, img: BuiltStore['sample']): Promise<void> {
  const res = await fetch(`${url}/v2/${img.name}/manifests/${img.tag}`, { headers: { accept: MANIFEST_TYPE } });
  const body = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200 || digestOf(body) !== img.manifest.digest) {
    throw new Error(`pulling ${img.name}:${img.tag} from ${url} answered ${res.status} with ${digestOf(body)}, expected ${img.manifest.digest}`);
  }
  for (const b of [img.config, ...img.layers]) {
    const got = await fetch(`${url}/v2/${img.name}/blobs/${b.digest}`);
    const bytes = Buffer.from(await got.arrayBuffer());
    if (got.status !== 200 || digestOf(bytes) !== b.digest) throw new Error(`pulling blob ${b.digest} of ${img.name} answered ${got.status}`);
  }
}

/** What `berth-registry gc --json` writes. */
interface GcSummary {
  readonly manifestsDeleted: number;
  readonly blobsDeleted: number;
  readonly markSeconds: number;
  readonly readOnlyWindowSeconds: number;
  readonly sweepSeconds: number;
  readonly remarked: number;
  readonly replicas: number;
}

interface BerthFigures extends GcSummary {
  /** The whole `berth-registry gc` process, start to exit. */
  readonly wholeSeconds: number;
  /** From the end of the mark to "read-only window open" (0.1 s resolution): waiting for acknowledgements. */
  readonly ackSeconds: number | undefined;
}

/** Runs `berth-registry gc`, passing its progress lines on, and returns its summary and timings. */
async function runBerthGc(configPath: string, jsonPath: string, label: string): Promise<BerthFigures> {
  const args = [CLI, 'gc', configPath, '--grace-period', '0s', '--delete-untagged', '--json', jsonPath];
  const started = performance.now();
  const child: ChildProcess = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  const kill = () => stopProcess(child, 5_000);
  cleanups.push(kill);
  const stamps = new Map<string, number>();
  let stdout = '';
  // Other lines (Node's warnings) are kept for an error message, not shown.
  let other = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  const lines = createInterface({ input: child.stderr as NodeJS.ReadableStream });
  lines.on('line', (line) => {
    const at = /^gc: \[([\d.]+)s\] (.*)$/.exec(line);
    if (at === null) {
      other += `${line}\n`;
      return;
    }
    process.stderr.write(`bench:gc: [${elapsed()}]   ${label}: ${line}\n`);
    const [, seconds, message] = at as unknown as [string, string, string];
    if (message.startsWith('marked in ')) stamps.set('marked', Number(seconds));
    if (message.startsWith('read-only window open')) stamps.set('open', Number(seconds));
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done, fail) => {
    child.once('error', fail);
    child.once('exit', (exitCode, exitSignal) => done([exitCode, exitSignal]));
  });
  const wholeSeconds = (performance.now() - started) / 1000;
  await runNow(kill);
  if (code !== 0) throw new Error(`berth-registry gc exited with ${code ?? signal}:\n${other}${stdout}`);
  const summary = JSON.parse(await readFile(jsonPath, 'utf8')) as GcSummary;
  const marked = stamps.get('marked');
  const open = stamps.get('open');
  return { ...summary, wholeSeconds, ackSeconds: marked !== undefined && open !== undefined ? open - marked : undefined };
}

/**
 * How long a replica refused writes, from its own log: "Entered a maintenance window" to "Left a maintenance
 * window"; undefined until it has logged both. The collector's figure ends when it deletes the marker; a
 * replica writes again only at its next poll of the marker, so this can be longer.
 */
async function replicaReadOnlySeconds(logFile: string): Promise<number | undefined> {
  let seconds: number | undefined;
  let entered: number | undefined;
  for (const line of (await readFile(logFile, 'utf8')).split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry: { time?: unknown; msg?: unknown };
    try {
      entry = JSON.parse(line) as { time?: unknown; msg?: unknown };
    } catch {
      continue;
    }
    if (typeof entry.time !== 'number') continue;
    if (entry.msg === 'Entered a maintenance window') entered = entry.time;
    if (entry.msg === 'Left a maintenance window' && entered !== undefined) {
      seconds = (entry.time - entered) / 1000;
      entered = undefined;
    }
  }
  return seconds;
}

/** The longest any replica refused writes, once every replica has logged the window's end (at most 15 s). */
async function longestReplicaReadOnly(logFiles: readonly string[]): Promise<number> {
  let seconds: (number | undefined)[] = [];
  await waitUntil(
    async () => {
      seconds = await Promise.all(logFiles.map((file) => replicaReadOnlySeconds(file)));
      return seconds.every((value) => value !== undefined);
    },
    { timeoutMs: 15_000, intervalMs: 200, what: 'every replica to log the end of the read-only window' },
  );
  return Math.max(...(seconds as number[]));
}

// ---------------------------------------------------------------------------------------------------------
// Distribution's garbage-collect on the copy.

interface DistributionFigures {
  /** The whole run, all of it read-only; undefined when it could not collect. */
  readonly seconds: number | undefined;
  readonly eligible: string | undefined;
  readonly failure: string | undefined;
}

async function runDistributionGc(binary: string, configText: string, dir: string, mustWork: boolean): Promise<DistributionFigures> {
  const configPath = join(dir, 'distribution.yml');
  await writeFile(configPath, configText);
  // REGISTRY_* would override the config, AWS_* redirect its S3 client; no tracing exporter.
  const inherited = Object.entries(process.env).filter(([key]) => !key.startsWith('REGISTRY_') && !key.startsWith('AWS_') && !key.startsWith('OTEL_'));
  const env = { ...Object.fromEntries(inherited), OTEL_TRACES_EXPORTER: 'none' };
  const started = performance.now();
  const result = await runCommand(binary, ['garbage-collect', '--delete-untagged', configPath], { env, timeoutMs: 3_600_000 });
  const seconds = (performance.now() - started) / 1000;
  const output = `${result.stdout}\n${result.stderr}`;
  const eligible = /(\d+ blobs marked, \d+ blobs and \d+ manifests eligible for deletion)/.exec(output)?.[1];
  if (result.code === 0 && eligible !== undefined) return { seconds, eligible, failure: undefined };
  const tail = output.trim().split('\n').slice(-5).join('\n');
  const failure = `${binary} garbage-collect exited with ${result.code} after ${seconds.toFixed(1)} s${eligible === undefined ? ' without its summary line' : ''}:\n${tail}`;
  if (mustWork) throw new Error(failure);
  return { seconds: undefined, eligible, failure };
}

// ---------------------------------------------------------------------------------------------------------

interface Row {
  readonly backend: string;
  readonly size: number;
  readonly objects: number;
  readonly buildSeconds: number;
  readonly berth: BerthFigures;
  /** The longest a replica refused writes, by its own log. */
  readonly replicaSeconds: number;
  readonly distribution: DistributionFigures;
  readonly distributionName: string;
}

/** One size on one backend: build both stores, collect with Berth under live replicas, collect the copy with Distribution. */
async function measure(backend: 'filesystem' | 's3', size: number, work: string, minio: RunningMinio | undefined): Promise<Row> {
  const label = `${backend} ${size}`;
  const dir = join(work, `${backend}-${size}`);
  await mkdir(dir, { recursive: true });
  const storageOf = (role: 'berth' | 'distribution'): TestStorage => {
    if (backend === 'filesystem') return { rootDir: join(dir, `${role}-store`) };
    if (minio === undefined) throw new Error('S3 needs MinIO');
    return {
      s3: { endpoint: minio.endpoint, bucket: BUCKET, region: minio.region, accessKey: minio.accessKey, secretKey: minio.secretKey, rootDirectory: `/${role}-${size}` },
    };
  };
  const stores = (['berth', 'distribution'] as const).map((role) => ({ role, storage: storageOf(role) }));
  const drivers: StorageDriver[] = [];
  const configs: string[] = [];
  for (const { role, storage } of stores) {
    const configDir = join(dir, `${role}-config`);
    await mkdir(configDir, { recursive: true });
    const configPath = await writeBerthConfig(configDir, { storage, port: await freePort(), debugPort: await freePort() });
    configs.push(configPath);
    drivers.push(createDriver((await loadConfig(configPath)).config));
  }
  // Removed after the measurement so disk use stays at one size's stores; on the way out, removing the work
  // directory and MinIO's data is enough.
  const removeStores = async () => {
    if (backend === 'filesystem') await rm(dir, { recursive: true, force: true });
    else for (const driver of drivers) await deleteIfPresent(driver, '/docker');
  };

  progress(`${label}: writing two copies of a store of ${size} tagged manifests (${Math.ceil(size / IMAGES_PER_REPOSITORY)} repositories) plus ${UNTAGGED_MANIFESTS} untagged manifests and ${ORPHAN_BLOBS} orphan blobs${size >= 10_000 ? '; this takes a few minutes' : ''}`);
  const buildStarted = performance.now();
  const built = await buildStores(drivers, size, label);
  const buildSeconds = (performance.now() - buildStarted) / 1000;
  progress(`${label}: built ${built.objects} objects per store in ${buildSeconds.toFixed(1)} s`);

  progress(`${label}: starting ${REPLICAS} Berth replicas on the first store`);
  const replicas: BerthProcess[] = [];
  const stopReplicas = async () => {
    await Promise.all(replicas.splice(0).map((replica) => replica.stop()));
  };
  cleanups.push(stopReplicas);
  const berthStorage = (stores[0] as { storage: TestStorage }).storage;
  for (let i = 0; i < REPLICAS; i++) replicas.push(await startBerth({ storage: berthStorage, built: true, workDir: join(dir, `replica-${i}`) }));
  const first = replicas[0] as BerthProcess;
  await pullImage(first.url, built.sample);
  progress(`${label}: pulled ${built.sample.name}:${built.sample.tag} from a replica; running berth-registry gc`);
  const berth = await runBerthGc(configs[0] as string, join(dir, 'gc.json'), label);
  if (berth.replicas !== REPLICAS) throw new Error(`${label}: berth-registry gc waited for ${berth.replicas} replicas, not ${REPLICAS}`);
  if (berth.manifestsDeleted !== built.expectedManifests || berth.blobsDeleted !== built.expectedBlobs) {
    throw new Error(`${label}: berth-registry gc deleted ${berth.manifestsDeleted} manifests and ${berth.blobsDeleted} blobs; the store holds ${built.expectedManifests} and ${built.expectedBlobs} of garbage`);
  }
  await pullImage((replicas[REPLICAS - 1] as BerthProcess).url, built.sample);
  const replicaSeconds = await longestReplicaReadOnly(replicas.map((replica) => replica.logFile));
  await runNow(stopReplicas);

  let distribution: DistributionFigures;
  let distributionName: string;
  if (backend === 'filesystem') {
    distributionName = 'Distribution 2.8';
    progress(`${label}: running ${distributionName}'s garbage-collect --delete-untagged on the copy`);
    const rootDir = (stores[1]?.storage as { rootDir: string }).rootDir;
    distribution = await runDistributionGc(toolPath('docker-registry'), distributionConfig(rootDir, 0, true), dir, true);
  } else {
    distributionName = 'Distribution 3';
    progress(`${label}: running ${distributionName}'s garbage-collect --delete-untagged on the copy`);
    const s3 = (stores[1]?.storage as Extract<TestStorage, { s3: unknown }>).s3;
    const text = distributionV3S3Config({ minio: minio as RunningMinio, bucket: BUCKET, rootDirectory: s3.rootDirectory as string, deleteEnabled: true }, 0);
    distribution = await runDistributionGc(toolPath('distribution-v3'), text, dir, false);
  }
  progress(
    `${label}: Berth: mark ${berth.markSeconds.toFixed(2)} s, window ${berth.readOnlyWindowSeconds.toFixed(3)} s (replicas read-only up to ${replicaSeconds.toFixed(3)} s), whole run ${berth.wholeSeconds.toFixed(1)} s; ` +
      (distribution.seconds !== undefined ? `${distributionName}: ${distribution.seconds.toFixed(2)} s (${distribution.eligible ?? ''})` : `${distributionName} could not collect: ${distribution.failure ?? ''}`),
  );
  const expected = `${built.expectedBlobs} blobs and ${built.expectedManifests} manifests eligible`;
  if (distribution.eligible !== undefined && !distribution.eligible.includes(expected)) {
    progress(`${label}: note: ${distributionName} found "${distribution.eligible}", where the store holds ${expected}`);
  }
  await removeStores();
  return { backend, size, objects: built.objects, buildSeconds, berth, replicaSeconds, distribution, distributionName };
}

/** Runs a registered cleanup now, and no longer on the way out. */
async function runNow(cleanup: () => Promise<void>): Promise<void> {
  const i = cleanups.indexOf(cleanup);
  if (i >= 0) cleanups.splice(i, 1);
  await cleanup();
}

function table(rows: readonly Row[]): string {
  const fixed = (value: number | undefined, digits: number) => (value === undefined ? 'n/a' : value.toFixed(digits));
  const lines = [
    '',
    '| backend | manifests | Berth mark s | Berth read-only window s | of which waiting for acks s (≈) | longest replica read-only s | Berth whole gc s | Distribution read-only (whole GC) s | ratio (Distribution / Berth window) |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map((row) => {
      const reference = row.distribution.seconds;
      const times = reference === undefined ? undefined : reference / row.berth.readOnlyWindowSeconds;
      const ratio = times === undefined ? 'n/a' : `${times.toFixed(times < 10 ? 2 : 1)}×`;
      const name = reference === undefined ? `n/a (${row.distributionName} failed)` : `${reference.toFixed(2)} (${row.distributionName})`;
      return `| ${row.backend} | ${row.size} | ${fixed(row.berth.markSeconds, 2)} | ${fixed(row.berth.readOnlyWindowSeconds, 3)} | ${fixed(row.berth.ackSeconds, 1)} | ${fixed(row.replicaSeconds, 3)} | ${fixed(row.berth.wholeSeconds, 1)} | ${name} | ${ratio} |`;
    }),
    '',
  ];
  const filesystem = rows.filter((row) => row.backend === 'filesystem');
  if (filesystem.length > 0) {
    const missed = filesystem.filter((row) => row.berth.readOnlyWindowSeconds > TARGET_WINDOW_SECONDS);
    lines.push(
      missed.length === 0
        ? `Filesystem window ≤ ${TARGET_WINDOW_SECONDS} s at every size (${filesystem.map((row) => row.size).join(', ')} manifests): target met.`
        : `Filesystem window over ${TARGET_WINDOW_SECONDS} s at ${missed.map((row) => `${row.size} manifests (${row.berth.readOnlyWindowSeconds.toFixed(3)} s)`).join(', ')}: target missed.`,
    );
  }
  lines.push(
    'Window: from writing the marker to deleting it (berth-registry gc). Waiting for acks: from the end of the mark to every replica acknowledging (0.1 s resolution).',
    'Longest replica read-only: from a replica seeing the window to seeing it end (its log), the longest of the replicas; a replica notices the end at its next poll of the marker.',
  );
  for (const row of rows) {
    if (row.distribution.failure !== undefined) lines.push(`${row.backend} ${row.size}: ${row.distributionName} could not collect: ${row.distribution.failure}`);
  }
  lines.push(
    `Each store: ${IMAGES_PER_REPOSITORY} tagged images per repository (a unique config, 2 of ${LAYER_POOL} shared ${LAYER_BYTES}-byte layers), plus ${UNTAGGED_MANIFESTS} untagged manifests and ${ORPHAN_BLOBS} orphan blobs; ${REPLICAS} idle Berth replicas acknowledged each window.`,
    '',
  );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'berth-bench-gc-'));
  cleanups.push(() => rm(work, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }));
  try {
    let minio: RunningMinio | undefined;
    if (BACKENDS.includes('s3')) {
      progress('starting MinIO');
      minio = await startMinio();
      const running = minio;
      cleanups.push(() => running.stop());
      await createBucket(minio, BUCKET);
    }
    const rows: Row[] = [];
    for (const backend of BACKENDS as ('filesystem' | 's3')[]) {
      for (const size of SIZES) rows.push(await measure(backend, size, work, minio));
    }
    process.stdout.write(table(rows));
    progress(`done in ${elapsed()}`);
  } finally {
    await cleanUp();
  }
}

await main().catch(async (error: unknown) => {
  // After a signal, the failures of work cut short are expected: exit once the cleanup is done.
  if (interrupted) {
    await cleanUp();
    dieOf(stopSignal);
    return;
  }
  throw error;
});
