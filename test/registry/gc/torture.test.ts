/**
 * The invariant of DESIGN.md §2 under fire: three replicas over one store (filesystem, S3 on MinIO, and S3
 * behind the eventual-consistency wrapper), clients pushing, tagging, deleting, pushing indexes and
 * referrers, while garbage collection runs again and again. Every tag, and everything a tag or an index
 * references, must pull completely afterwards. The collector pauses after its mark and after its re-mark,
 * standing for the slow steps of a large store, so that writes really do land in the dangerous places; with
 * the window or the re-mark switched off, the same workload must break images.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaseDriver } from '../../../registry/driver/base.js';
import type { StorageDriver } from '../../../registry/driver/driver.js';
import { FilesystemDriver } from '../../../registry/driver/filesystem/filesystem-driver.js';
import { S3Driver } from '../../../registry/driver/s3/s3-driver.js';
import { runCollection, type WindowOptions } from '../../../registry/gc/collector.js';
import { OBJECT_STORE } from '../../../registry/storage/visibility.js';
import { EventuallyConsistentDriver, seededRandom } from '../../support/eventually-consistent-driver.js';
import { auditTags, checkInvariant, runClients, type TortureModel, type TortureOptions } from '../../support/torture.js';
import { COLLECTOR_TIMINGS, startWindowReplicas } from '../../support/window-replicas.js';
import { createBucket, startMinio, type RunningMinio } from '../../tools/minio.js';

const REPOSITORIES = ['torture/a', 'torture/b', 'torture/c'];
const BUCKET = 'torture';

let minio: RunningMinio;
let work: string;
beforeAll(async () => {
  minio = await startMinio();
  await createBucket(minio, BUCKET);
  work = await mkdtemp(join(tmpdir(), 'berth-torture-'));
}, 120_000);
afterAll(async () => {
  await minio?.stop();
  await rm(work, { recursive: true, force: true });
});

type StoreKind = 'filesystem' | 's3' | 's3-eventual';

function createStore(kind: StoreKind, seed: number): StorageDriver {
  if (kind === 'filesystem') return new BaseDriver(new FilesystemDriver({ rootDirectory: join(work, randomUUID()) }));
  const s3 = new BaseDriver(
    new S3Driver({
      bucket: BUCKET,
      region: minio.region,
      endpoint: minio.endpoint,
      forcePathStyle: true,
      rootDirectory: `/${randomUUID()}`,
      credentials: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey },
    }),
  );
  return kind === 's3' ? s3 : new EventuallyConsistentDriver(s3, { seed, maxLagMs: 60, listLagMs: 60 });
}

interface Outcome {
  readonly violations: string[];
  readonly runs: number;
  readonly deletedBlobs: number;
  readonly operations: Record<string, number>;
}

/** Runs the workload with collections looping beside it, then checks the invariant. */
/** With BERTH_TORTURE_VERBOSE, reports every storage call that takes over two seconds (hunting stalls). */
function reportSlowCalls(driver: StorageDriver, kind: StoreKind): StorageDriver {
  if (process.env['BERTH_TORTURE_VERBOSE'] === undefined) return driver;
  return new Proxy(driver, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const started = performance.now();
        const result: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (result instanceof Promise) {
          const timer = setTimeout(() => console.error(`slow ${kind} ${String(property)}(${String(args[0])}) still running after 2 s`), 2000);
          void result.finally(() => {
            clearTimeout(timer);
            const seconds = (performance.now() - started) / 1000;
            if (seconds > 2) console.error(`slow ${kind} ${String(property)}(${String(args[0])}) took ${seconds.toFixed(1)} s`);
          }).catch(() => undefined);
        }
        return result;
      };
    },
  });
}

async function torture(kind: StoreKind, seed: number, workload: Partial<TortureOptions>, unsafe?: WindowOptions['unsafe']): Promise<Outcome> {
  const driver = reportSlowCalls(createStore(kind, seed), kind);
  const random = seededRandom(seed);
  const replicas = await startWindowReplicas(driver, 3, random, kind !== 'filesystem');
  let clientsDone = false;
  let runs = 0;
  let deletedBlobs = 0;
  const audits: string[] = [];
  const model: TortureModel = { tags: new Map(), referrers: [], operations: {}, deleted: new Set() };
  try {
    // A collection that fails is part of the outcome, not an unhandled rejection while the clients still run.
    const collections = (async (): Promise<unknown> => {
      while (!clientsDone) {
        const result = await runCollection(driver, {
          deleteUntagged: runs % 2 === 0,
          dryRun: false,
          gracePeriodMs: 0,
          readOnlyTimeoutMs: 30_000,
          ...COLLECTOR_TIMINGS,
          ...(kind === 'filesystem' ? {} : { visibility: OBJECT_STORE }),
          pace: () => sleep(120),
          ...(process.env['BERTH_TORTURE_VERBOSE'] !== undefined ? { progress: (line: string) => console.error(`gc ${kind}: ${line}`) } : {}),
          ...(unsafe !== undefined ? { unsafe } : {}),
        });
        runs++;
        deletedBlobs += result.blobsDeleted.length;
        audits.push(...(await auditTags(replicas, model, REPOSITORIES)));
        await sleep(20);
      }
      return undefined;
    })().catch((error: unknown) => error);
    const options: TortureOptions = { seed, clients: 4, operationsPerClient: 40, repositories: REPOSITORIES, layerPool: 30, tagsPerClient: 2, ...workload };
    // Clients keep going until collections have run at least three times beside them.
    await runClients(replicas, options, model, () => runs < 3).finally(() => (clientsDone = true));
    const failure = await collections;
    if (failure !== undefined) throw failure;
    const violations = [...audits, ...(await checkInvariant(replicas, model, REPOSITORIES))];
    return { violations, runs, deletedBlobs, operations: model.operations };
  } finally {
    await replicas.close();
  }
}

describe('garbage collection racing with pushes, tag moves and deletes on three replicas', () => {
  const seed = Number(process.env['BERTH_TORTURE_SEED'] ?? 20261204);

  it.each<[StoreKind, Partial<TortureOptions>]>([
    ['filesystem', { operationsPerClient: 150 }],
    ['s3', {}],
    ['s3-eventual', {}],
  ])('keeps every tagged image whole on %s', async (kind, workload) => {
    const outcome = await torture(kind, seed, workload);
    const context = `seed ${seed} (replay with BERTH_TORTURE_SEED=${seed}), ${outcome.runs} collections, ${outcome.deletedBlobs} blobs deleted, operations ${JSON.stringify(outcome.operations)}`;
    expect(outcome.violations, context).toEqual([]);
    // The run must have exercised what it claims to: collections that deleted things while clients wrote.
    expect(outcome.runs, context).toBeGreaterThanOrEqual(3);
    expect(outcome.deletedBlobs, context).toBeGreaterThan(0);
    expect(outcome.operations['push'] ?? 0, context).toBeGreaterThan(20);
    expect((outcome.operations['untag'] ?? 0) + (outcome.operations['delete'] ?? 0), context).toBeGreaterThan(5);
    // Liveness: windows come back to back here, and still every write gets through or gets its real answer.
    expect(outcome.operations['gave up'] ?? 0, context).toBe(0);
  }, 240_000);

  it.each<[string, NonNullable<WindowOptions['unsafe']>]>([
    ['the read-only window', { noWindow: true }],
    ['the re-mark from the journal', { noRemark: true }],
  ])('breaks images when %s is switched off (the test can fail)', async (_what, unsafe) => {
    // The races are timing-dependent: up to three seeds, and each run so far broke on the first.
    const tried: string[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const outcome = await torture('filesystem', seed + attempt, { operationsPerClient: 150 }, unsafe);
      tried.push(`seed ${seed + attempt}: ${outcome.runs} collections, ${outcome.violations.length} violations${outcome.violations.length > 0 ? `, first: ${outcome.violations[0]}` : ''}`);
      if (outcome.violations.length > 0) break;
    }
    console.info(`unsafe ${JSON.stringify(unsafe)}: ${tried.join('; ')}`);
    expect(tried.at(-1), tried.join('\n')).not.toMatch(/ 0 violations/);
  }, 240_000);
});
