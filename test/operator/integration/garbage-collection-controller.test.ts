import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { access, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { playJobRun, type PlayedRun } from '../../support/gc-kubelet.js';
import { createTestRegistry, pushBlob, pushImage, randomBlob, sha256, type TestRegistry } from '../../support/test-registry.js';
import { kubeProbes, type Json } from '../../support/kube-probes.js';
import { prepareForOperator } from '../../support/operator-setup.js';
import { startKubeApiServer, type RunningKube } from '../../tools/kube.js';
import { stopProcess, tailFile, waitUntil } from '../../tools/processes.js';
import { freePort } from '../../tools/tools.js';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const NS = 'apps';
const ORPHAN_SIZE = 5000;


/** Where a blob's bytes live in a filesystem store (Distribution's layout). */
function blobFile(root: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
}

describe('the GarbageCollection controller against a real API server, with the chart\'s RBAC; the test plays the kubelet', () => {
  let kube: RunningKube;
  let work: string;
  let operator: { child: ChildProcess; metricsUrl: string; logFile: string };
  let store: TestRegistry;
  let orphan: string;
  let kept: { config: Buffer; layers: Buffer[] };

  const { getJson, eventually } = kubeProbes(() => kube, NS, () => tailFile(operator.logFile, 20));

  const apply = (object: object) => kube.kubectl(['apply', '-f', '-'], { input: JSON.stringify(object) });
  const registry = (name: string, spec: object) => apply({ apiVersion: 'berth.dev/v1alpha1', kind: 'Registry', metadata: { name, namespace: NS }, spec });
  const collection = (name: string, spec: object) => apply({ apiVersion: 'berth.dev/v1alpha1', kind: 'GarbageCollection', metadata: { name, namespace: NS }, spec });
  const condition = (object: Json | undefined, type: string) => (object?.status?.conditions as Json[] | undefined)?.find((c) => c.type === type);

  /** The Jobs of a GarbageCollection, oldest first. */
  async function jobsOf(gc: string): Promise<Json[]> {
    const list = JSON.parse(await kube.kubectl(['get', 'jobs', '-n', NS, '-l', `berth.dev/garbage-collection=${gc}`, '-o', 'json'])) as Json;
    return (list.items as Json[]).sort((a, b) => String(a.metadata.name).localeCompare(String(b.metadata.name)));
  }

  async function eventsOf(name: string): Promise<Json[]> {
    const list = JSON.parse(await kube.kubectl(['get', 'events', '-n', NS, '--field-selector', `involvedObject.name=${name}`, '-o', 'json'])) as Json;
    return list.items as Json[];
  }

  /** The value of one series on the operator's /metrics, or undefined. */
  async function metric(name: string, labels: Record<string, string>): Promise<number | undefined> {
    const text = await (await fetch(`${operator.metricsUrl}/metrics`)).text();
    for (const line of text.split('\n')) {
      const match = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
      if (match?.[1] !== name) continue;
      const seen = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
      if (Object.entries(labels).every(([k, v]) => seen[k] === v)) return Number(match[3]);
    }
    return undefined;
  }

  /** Waits for the one Job of a GarbageCollection to appear. */
  const theJobOf = (gc: string) => eventually(`a Job of ${gc}`, async () => (await jobsOf(gc))[0]);

  /** Plays the kubelet for a Job, with the registry's volume at the test store. */
  const play = (job: string): Promise<PlayedRun> => playJobRun(kube, NS, job, { volumes: { data: store.root as string }, work, root: ROOT });

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-gc-operator-'));
    kube = await startKubeApiServer();
    const kubeconfig = await prepareForOperator(kube, [NS]);

    const port = await freePort();
    const logFile = join(work, 'operator.log');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'operator/main.ts'), '--kubeconfig', kubeconfig, '--metrics-addr', `127.0.0.1:${port}`, '--no-leader-elect'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BERTH_WATCH_TIMEOUT_SECONDS: '5' } },
    );
    const log = createWriteStream(logFile);
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    operator = { child, metricsUrl: `http://127.0.0.1:${port}`, logFile };
    await waitUntil(async () => (await fetch(`${operator.metricsUrl}/healthz`).catch(() => undefined))?.ok === true, {
      timeoutMs: 30_000,
      what: 'the operator to answer /healthz',
      describe: () => tailFile(logFile),
    });

    // A scheduled collection starts first: its first run comes at the next minute, while the other tests run.
    await registry('ticking', { replicas: 1, storage: { filesystem: {} } });
    await collection('minutely', { registryRef: { name: 'ticking' }, schedule: '* * * * *', gracePeriod: '0s' });

    // The store the runs collect: a tagged image, and a blob nothing references.
    store = await createTestRegistry('filesystem');
    const image = await pushImage(store.app, 'app', 'v1');
    kept = image;
    orphan = await pushBlob(store.app, 'app', randomBlob(ORPHAN_SIZE));
    await registry('fs', { replicas: 1, storage: { filesystem: { size: '1Gi' } } });
    await eventually('the ConfigMap of Registry fs', () => getJson('configmap', 'fs-registry'));
  }, 300_000);

  afterAll(async () => {
    if (operator !== undefined) await stopProcess(operator.child);
    await store?.close();
    await kube?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('runs a collection without a schedule exactly once: one Job, and after the run its real results in status, Events and metrics', async () => {
    await collection('once', { registryRef: { name: 'fs' }, gracePeriod: '0s' });
    const job = await theJobOf('once');
    expect(job.metadata.ownerReferences[0]).toMatchObject({ kind: 'GarbageCollection', name: 'once', controller: true });
    expect(job.metadata.labels).toMatchObject({ 'berth.dev/garbage-collection': 'once', 'berth.dev/registry': 'fs' });
    const container = job.spec.template.spec.containers[0];
    expect(container.image).toBe('ghcr.io/berth-dev/berth:0.1.0');
    expect(container.args).toEqual(['gc', '/etc/berth/config.yml', '--grace-period', '0s', '--read-only-timeout', '5m', '--json', '/dev/termination-log']);
    const running = await eventually('status.active', async () => {
      const gc = await getJson('garbagecollection', 'once');
      return gc?.status?.active?.name === job.metadata.name ? gc : undefined;
    });
    expect(condition(running, 'Progressing')).toMatchObject({ status: 'True', reason: 'JobRunning' });
    expect(Date.parse(running.status.lastScheduleTime as string)).toBe(Date.parse(running.metadata.creationTimestamp as string));

    expect((await stat(blobFile(store.root as string, orphan))).size).toBe(ORPHAN_SIZE);
    const run = await play(job.metadata.name);
    expect(run.exitCode, run.stderr).toBe(0);

    const done = await eventually('lastRun', async () => {
      const gc = await getJson('garbagecollection', 'once');
      return gc?.status?.lastRun?.result !== undefined && gc.status.active === undefined ? gc : undefined;
    });
    expect(done.status.lastRun).toMatchObject({ job: job.metadata.name, result: 'Succeeded', dryRun: false, blobsDeleted: 1, manifestsDeleted: 0, bytesFreed: ORPHAN_SIZE });
    expect(done.status.lastRun.markSeconds).toBeGreaterThanOrEqual(0);
    expect(done.status.lastRun.readOnlyWindowSeconds).toBeGreaterThan(0);
    expect(done.status.lastSuccessfulTime).toBeDefined();
    expect(done.status.nextScheduleTime).toBeUndefined();
    expect(condition(done, 'Available')).toMatchObject({ status: 'True', reason: 'RanOnce' });
    expect(condition(done, 'Progressing')).toMatchObject({ status: 'False', reason: 'Idle' });
    expect(condition(done, 'Degraded')).toMatchObject({ status: 'False', reason: 'AsExpected' });
    // The blob really is gone; the tagged image is whole.
    await expect(access(blobFile(store.root as string, orphan))).rejects.toThrow();
    for (const blob of [kept.config, ...kept.layers]) await access(blobFile(store.root as string, sha256(blob)));

    const reasons = (await eventsOf('once')).map((e) => `${e.type}/${e.reason}`);
    expect(reasons).toEqual(expect.arrayContaining(['Normal/RunStarted', 'Normal/RunSucceeded']));
    expect(await metric('berth_gc_runs_total', { namespace: NS, name: 'once', result: 'Succeeded' })).toBe(1);
    expect(await metric('berth_gc_last_bytes_freed', { namespace: NS, name: 'once' })).toBe(ORPHAN_SIZE);
    expect(await metric('berth_gc_last_blobs_deleted', { namespace: NS, name: 'once' })).toBe(1);
    expect(await metric('berth_gc_last_read_only_window_seconds', { namespace: NS, name: 'once' })).toBeGreaterThan(0);
    expect(await metric('berth_gc_active', { namespace: NS, name: 'once' })).toBe(0);

    // Never again: a spec change is reconciled (observedGeneration follows) and starts no second run.
    await kube.kubectl(['patch', 'garbagecollection', 'once', '-n', NS, '--type=merge', '-p', '{"spec":{"dryRun":true}}']);
    await eventually('the spec change observed', async () => {
      const gc = await getJson('garbagecollection', 'once');
      return gc !== undefined && gc.status?.observedGeneration === gc.metadata.generation;
    });
    expect((await jobsOf('once')).map((j) => j.metadata.name)).toEqual([job.metadata.name]);
  }, 120_000);

  it('never runs two collections of one Registry at once: the second waits for the first\'s Job, then runs', async () => {
    await collection('first', { registryRef: { name: 'fs' }, gracePeriod: '0s' });
    const first = await theJobOf('first');
    await collection('second', { registryRef: { name: 'fs' }, gracePeriod: '0s', deleteUntagged: true });
    const waiting = await eventually('the second to wait', async () => {
      const gc = await getJson('garbagecollection', 'second');
      return condition(gc, 'Progressing')?.reason === 'WaitingForRegistry' ? gc : undefined;
    });
    expect(condition(waiting, 'Progressing')?.message).toContain(`Job ${first.metadata.name} of GarbageCollection first`);
    expect(waiting.status.lastScheduleTime).toBeUndefined();
    expect(await jobsOf('second')).toEqual([]);
    expect((await eventsOf('second')).map((e) => e.reason)).toContain('WaitingForRegistry');

    expect((await play(first.metadata.name)).exitCode).toBe(0);
    const second = await theJobOf('second');
    // When the second Job was created, the first had finished.
    expect((await getJson('job', first.metadata.name))?.status.conditions.some((c: Json) => c.type === 'Complete' && c.status === 'True')).toBe(true);
    expect(second.spec.template.spec.containers[0].args).toContain('--delete-untagged');
    expect((await play(second.metadata.name)).exitCode).toBe(0);
    const done = await eventually('the second run recorded', async () => {
      const gc = await getJson('garbagecollection', 'second');
      return gc?.status?.lastRun?.result === 'Succeeded' ? gc : undefined;
    });
    expect(done.status.lastRun.blobsDeleted).toBe(0);
    expect(condition(done, 'Progressing')?.reason).toBe('Idle');
  }, 120_000);

  it('starts no run while suspended, and the due run once resumed', async () => {
    await collection('held', { registryRef: { name: 'fs' }, suspend: true, gracePeriod: '0s' });
    const suspended = await eventually('Suspended reported', async () => {
      const gc = await getJson('garbagecollection', 'held');
      return condition(gc, 'Available')?.reason === 'Suspended' && gc?.status.observedGeneration === gc?.metadata.generation ? gc : undefined;
    });
    expect(condition(suspended, 'Available')?.status).toBe('False');
    expect(suspended.status.nextScheduleTime).toBeUndefined();
    expect(await jobsOf('held')).toEqual([]);

    await kube.kubectl(['patch', 'garbagecollection', 'held', '-n', NS, '--type=merge', '-p', '{"spec":{"suspend":false}}']);
    const job = await theJobOf('held');
    expect((await play(job.metadata.name)).exitCode).toBe(0);
    await eventually('the resumed run recorded', async () => (await getJson('garbagecollection', 'held'))?.status?.lastRun?.result === 'Succeeded');
  }, 120_000);

  it('records a failed run: lastRun Failed with the collector\'s error, Degraded, a Warning Event and the failure metric', async () => {
    await kube.kubectl(['create', 'secret', 'generic', 'broken-creds', '-n', NS, '--from-literal=accessKey=a', '--from-literal=secretKey=b']);
    // Nothing listens on port 1: the collector cannot reach its store.
    await registry('broken', { storage: { s3: { bucket: 'images', region: 'us-east-1', endpoint: 'http://127.0.0.1:1', forcePathStyle: true, credentialsSecret: { name: 'broken-creds' } } } });
    await eventually('the ConfigMap of Registry broken', () => getJson('configmap', 'broken-registry'));
    await collection('doomed', { registryRef: { name: 'broken' } });
    const job = await theJobOf('doomed');
    expect(job.spec.template.spec.containers[0].env.map((e: Json) => e.name)).toEqual(['REGISTRY_STORAGE_S3_ACCESSKEY', 'REGISTRY_STORAGE_S3_SECRETKEY']);
    const run = await play(job.metadata.name);
    expect(run.exitCode).toBe(1);
    expect(run.message).toContain('ECONNREFUSED');

    const failed = await eventually('the failure recorded', async () => {
      const gc = await getJson('garbagecollection', 'doomed');
      return gc?.status?.lastRun?.result === 'Failed' ? gc : undefined;
    });
    expect(failed.status.lastRun.job).toBe(job.metadata.name);
    expect(failed.status.lastRun.message).toContain('BackoffLimitExceeded');
    expect(failed.status.lastRun.message).toContain('exited with code 1');
    expect(failed.status.lastRun.message).toContain('ECONNREFUSED');
    expect(failed.status.lastRun.blobsDeleted).toBeUndefined();
    expect(failed.status.lastSuccessfulTime).toBeUndefined();
    expect(condition(failed, 'Degraded')).toMatchObject({ status: 'True', reason: 'LastRunFailed' });
    const warning = (await eventsOf('doomed')).find((e) => e.reason === 'RunFailed');
    expect(warning?.type).toBe('Warning');
    expect(warning?.message).toContain('ECONNREFUSED');
    expect(await metric('berth_gc_runs_total', { namespace: NS, name: 'doomed', result: 'Failed' })).toBe(1);
  }, 120_000);

  it('skips a run that could not start within startingDeadlineSeconds, and says so', async () => {
    // The one run is due at creation (whole seconds), which is always more than 0 s before the operator sees it.
    await collection('late', { registryRef: { name: 'fs' }, startingDeadlineSeconds: 0 });
    const late = await eventually('the skipped run reported', async () => {
      const gc = await getJson('garbagecollection', 'late');
      return condition(gc, 'Degraded')?.reason === 'MissedStartingDeadline' ? gc : undefined;
    });
    expect(condition(late, 'Degraded')?.message).toContain(`The run due at ${new Date(late.metadata.creationTimestamp).toISOString()}`);
    expect(late.status.lastScheduleTime).toBeUndefined();
    expect(await jobsOf('late')).toEqual([]);
    expect((await eventsOf('late')).find((e) => e.reason === 'MissedStartingDeadline')?.type).toBe('Warning');
  });

  it('reports a missing Registry as Degraded, and runs once it appears', async () => {
    await collection('orphaned', { registryRef: { name: 'later' }, gracePeriod: '0s' });
    const missing = await eventually('RegistryNotFound', async () => {
      const gc = await getJson('garbagecollection', 'orphaned');
      return condition(gc, 'Degraded')?.reason === 'RegistryNotFound' ? gc : undefined;
    });
    expect(condition(missing, 'Degraded')?.status).toBe('True');
    expect(condition(missing, 'Available')).toMatchObject({ status: 'False', reason: 'RegistryNotFound' });
    expect(await jobsOf('orphaned')).toEqual([]);
    expect((await eventsOf('orphaned')).find((e) => e.reason === 'RegistryNotFound')?.type).toBe('Warning');

    await registry('later', { replicas: 1, storage: { filesystem: {} } });
    const job = await theJobOf('orphaned');
    expect(job.metadata.labels['berth.dev/registry']).toBe('later');
    await eventually('the ConfigMap of Registry later', () => getJson('configmap', 'later-registry'));
    expect((await play(job.metadata.name)).exitCode).toBe(0);
    const recovered = await eventually('recovered', async () => {
      const gc = await getJson('garbagecollection', 'orphaned');
      return gc?.status?.lastRun?.result === 'Succeeded' ? gc : undefined;
    });
    expect(condition(recovered, 'Degraded')).toMatchObject({ status: 'False', reason: 'AsExpected' });
  }, 120_000);

  it('keeps the newest finished Jobs within the history limits and deletes the rest', async () => {
    await registry('archive', { replicas: 1, storage: { filesystem: {} } });
    // Due only on 29 February: no run of its own starts while the test adds finished Jobs.
    await collection('history', { registryRef: { name: 'archive' }, schedule: '0 0 29 2 *', successfulJobsHistoryLimit: 2, failedJobsHistoryLimit: 1 });
    const gc = await eventually('the collection reconciled', async () => {
      const object = await getJson('garbagecollection', 'history');
      return object?.status?.nextScheduleTime !== undefined ? object : undefined;
    });
    expect(new Date(gc.status.nextScheduleTime as string).toISOString()).toMatch(/^\d{4}-02-29T00:00:00\.000Z$/);
    expect(condition(gc, 'Available')).toMatchObject({ status: 'True', reason: 'Scheduled' });

    const base = Math.floor(Date.now() / 1000) * 1000;
    const hoursAgo = (h: number) => new Date(base - h * 3_600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const runs: [string, boolean, number][] = [
      ['history-1', true, 10],
      ['history-2', false, 9],
      ['history-3', true, 8],
      ['history-4', false, 7],
      ['history-5', true, 6],
      ['history-6', true, 5],
    ];
    for (const [name, succeeded, age] of runs) {
      await apply({
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: {
          name,
          namespace: NS,
          labels: { 'berth.dev/garbage-collection': 'history', 'berth.dev/registry': 'archive' },
          annotations: { 'berth.dev/scheduled-time': hoursAgo(age) },
          ownerReferences: [{ apiVersion: 'berth.dev/v1alpha1', kind: 'GarbageCollection', name: 'history', uid: gc.metadata.uid, controller: true }],
        },
        spec: { backoffLimit: 0, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'gc', image: 'ghcr.io/berth-dev/berth:0.1.0' }] } } },
      });
      const time = hoursAgo(age - 0.5);
      const conditions = succeeded
        ? [
            { type: 'SuccessCriteriaMet', status: 'True', reason: 'CompletionsReached', lastTransitionTime: time },
            { type: 'Complete', status: 'True', reason: 'CompletionsReached', lastTransitionTime: time },
          ]
        : [
            { type: 'FailureTarget', status: 'True', reason: 'BackoffLimitExceeded', lastTransitionTime: time },
            { type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', lastTransitionTime: time },
          ];
      const status = { startTime: hoursAgo(age), ...(succeeded ? { succeeded: 1, completionTime: time } : { failed: 1 }), conditions };
      await kube.kubectl(['patch', 'job', name, '-n', NS, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
    }
    await eventually(
      'the Jobs beyond the limits deleted',
      async () => (await jobsOf('history')).map((j) => j.metadata.name).join(',') === 'history-4,history-5,history-6',
    );
    const recorded = await eventually('the newest run recorded', async () => {
      const object = await getJson('garbagecollection', 'history');
      return object?.status?.lastRun?.job === 'history-6' ? object : undefined;
    });
    expect(recorded.status.lastRun.result).toBe('Succeeded');
    expect(Date.parse(recorded.status.lastSuccessfulTime as string)).toBe(Date.parse(hoursAgo(4.5)));
  }, 120_000);

  it('runs a scheduled collection at its next time, and reports the times', async () => {
    const gc = await getJson('garbagecollection', 'minutely');
    const created = Date.parse(gc?.metadata.creationTimestamp as string);
    const firstDue = new Date(Math.floor(created / 60_000) * 60_000 + 60_000);
    const job = await eventually('the run of the next minute', async () => (await jobsOf('minutely'))[0], 75_000);
    expect(job.metadata.name).toBe(`minutely-${firstDue.getTime() / 60_000}`);
    expect(job.metadata.annotations['berth.dev/scheduled-time']).toBe(firstDue.toISOString());
    const scheduled = await eventually('the times reported', async () => {
      const object = await getJson('garbagecollection', 'minutely');
      return object?.status?.active?.name === job.metadata.name ? object : undefined;
    });
    expect(new Date(scheduled.status.lastScheduleTime as string).toISOString()).toBe(firstDue.toISOString());
    expect(Date.parse(scheduled.status.nextScheduleTime as string) - firstDue.getTime()).toBe(60_000);
    expect(condition(scheduled, 'Available')?.reason).toBe('Scheduled');
    expect(await metric('berth_gc_active', { namespace: NS, name: 'minutely' })).toBe(1);

    await eventually('the ConfigMap of Registry ticking', () => getJson('configmap', 'ticking-registry'));
    expect((await play(job.metadata.name)).exitCode).toBe(0);
    await eventually('the scheduled run recorded', async () => (await getJson('garbagecollection', 'minutely'))?.status?.lastRun?.job === job.metadata.name);
  }, 120_000);

  it('runs with no more privilege than it needs for runs: Jobs created and deleted, never changed; pods listed, never read, created or deleted', async () => {
    const as = ['--as', 'system:serviceaccount:berth-system:berth-operator'];
    const can = async (...args: string[]) => (await kube.kubectl(['auth', 'can-i', ...args, ...as]).catch((e: Error) => e.message)).trim();
    expect(await can('create', 'jobs.batch', '-n', NS)).toBe('yes');
    expect(await can('delete', 'jobs.batch', '-n', NS)).toBe('yes');
    expect(await can('watch', 'jobs.batch', '-A')).toBe('yes');
    expect(await can('list', 'pods', '-n', NS)).toBe('yes');
    for (const [verb, resource] of [
      ['update', 'jobs.batch'],
      ['patch', 'jobs.batch'],
      ['create', 'cronjobs.batch'],
      ['get', 'pods'],
      ['create', 'pods'],
      ['delete', 'pods'],
      ['get', 'pods/log'],
      ['create', 'pods/exec'],
    ] as const) {
      expect(await can(verb, resource, '-n', NS), `${verb} ${resource}`).toMatch(/no/);
    }
    expect(await can('patch', 'garbagecollections.berth.dev', '--subresource=status', '-n', NS)).toBe('yes');
    expect(await can('patch', 'garbagecollections.berth.dev', '-n', NS)).toMatch(/no/);
  });
});
