/**
 * The GarbageCollection controller: starts one Job per scheduled run of `berth-registry gc`, as Kubernetes'
 * CronJob controller starts Jobs (and as kubebuilder's CronJob tutorial reconciles them), never two at once
 * against one Registry; records each finished run, from the summary the collector leaves as its termination
 * message, in status, Events and metrics; keeps the configured history of Jobs. Level-triggered and
 * idempotent: a run's Job has one name, so creating it twice creates it once.
 */
import { API_VERSION, type Registry } from '../api/registry.js';
import type { GarbageCollection } from '../api/garbage-collection.js';
import { KubeApiError, type KubeClient, type KubeObject } from '../kube/client.js';
import type { V1Job, V1Pod } from '../kube/types.js';
import type { GarbageCollectionMetrics } from '../metrics.js';
import { garbageCollectionConditions, mergeConditions, type Condition, type GarbageCollectionState } from './conditions.js';
import { recordEvent, type EventType } from './events.js';
import {
  GARBAGE_COLLECTION_LABEL,
  GC_CONTAINER,
  JobState,
  REGISTRY_LABEL,
  buildGarbageCollectionJob,
  jobState,
  jobsBeyondHistory,
  lastRunFor,
  scheduledTimeOf,
  type ContainerTermination,
  type LastRun,
} from './garbage-collection-builders.js';
import { InvalidScheduleError, decideSchedule, type ScheduleDecision } from './garbage-collection-schedule.js';
import type { Logger, ReconcileResult } from './registry-controller.js';

/** While the Registry is missing, look again this often (Registry events also trigger reconciles). */
const RETRY_MISSING_MS = 30_000;
/** While a due run waits for another run on the same Registry, look again this often (Job events also trigger reconciles). */
const RETRY_WAITING_MS = 10_000;
/** The longest requeue: timers cannot wait longer than 24.8 days, and a far-off next run is looked at again meanwhile. */
const MAX_REQUEUE_MS = 60 * 60 * 1000;
/** A requeue for the next run lands this much after its time, so that the run is due when it lands (as CronJob does). */
const REQUEUE_SLACK_MS = 100;

type JobObject = V1Job & KubeObject;

/**
 * Which GarbageCollections name which Registry, kept from the GarbageCollection watch, so that an event about
 * a Registry, or about any Job run against it, wakes every collection of that Registry.
 */
export class RegistryReferences {
  private readonly registryOf = new Map<string, string>();

  /** Records that the GarbageCollection `key` (namespace/name) collects Registry `registry` in `namespace`. */
  set(key: string, namespace: string, registry: string): void {
    this.registryOf.set(key, `${namespace}/${registry}`);
  }

  /** Forgets the GarbageCollection `key`. */
  delete(key: string): void {
    this.registryOf.delete(key);
  }

  /** The keys of the GarbageCollections that collect Registry `registry` in `namespace`. */
  keysFor(namespace: string, registry: string): string[] {
    const wanted = `${namespace}/${registry}`;
    return [...this.registryOf].filter(([, ref]) => ref === wanted).map(([key]) => key);
  }
}

/** Reconciles GarbageCollection objects. */
export class GarbageCollectionController {
  constructor(
    private readonly kube: KubeClient,
    private readonly log: Logger,
    private readonly metrics: GarbageCollectionMetrics,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Reconciles the GarbageCollection `namespace/name`. Callers run it for one key at a time across all keys:
   * the check that no run is active against a Registry and the creation of the next Job must not interleave.
   */
  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace, name] = key.split('/') as [string, string];
    // 1. Fetch the GarbageCollection; when it is gone its Jobs go with it (owner references).
    const gc = await this.kube.get<GarbageCollection & KubeObject>(API_VERSION, 'GarbageCollection', namespace, name);
    if (gc === undefined) {
      this.forgetMetrics(namespace, name);
      return {};
    }
    const now = this.now();
    const registryName = gc.spec.registryRef.name;

    // 2. List its Jobs, and the Jobs of every collection of the same Registry.
    const own = (await this.kube.list<JobObject>('batch/v1', 'Job', namespace, `${GARBAGE_COLLECTION_LABEL}=${name}`)).filter((job) =>
      job.metadata.ownerReferences?.some((owner) => owner.uid === gc.metadata.uid),
    );
    const ofRegistry = await this.kube.list<JobObject>('batch/v1', 'Job', namespace, `${REGISTRY_LABEL}=${registryName}`);
    const active = own.filter((job) => jobState(job) === JobState.Active);
    const finished = own.filter((job) => jobState(job) !== JobState.Active);

    // 3. Record the newest finished run, once.
    let lastRun = gc.status?.lastRun;
    const newest = [...finished].sort((a, b) => time(scheduledTimeOf(b)) - time(scheduledTimeOf(a)))[0];
    if (newest !== undefined && isNewer(newest, lastRun)) {
      lastRun = lastRunFor(newest, await this.termination(namespace, newest));
      await this.recordRun(gc, lastRun);
    }
    const lastSuccessfulTime = latest([
      gc.status?.lastSuccessfulTime,
      ...finished.filter((job) => jobState(job) === JobState.Succeeded).map((job) => job.status?.completionTime),
    ]);

    // 4. Delete the finished Jobs beyond the history limits, oldest first; their pods follow in the background.
    const beyond = jobsBeyondHistory(finished, { successful: gc.spec.successfulJobsHistoryLimit ?? 3, failed: gc.spec.failedJobsHistoryLimit ?? 1 });
    for (const job of beyond) {
      await this.kube.delete('batch/v1', 'Job', namespace, job.metadata.name, 'Background');
      this.log.info({ garbageCollection: key, job: job.metadata.name }, 'Deleted a Job beyond the history limit');
    }

    // 5. Check the Registry and decide whether a run is due, from the schedule and the last scheduled run.
    const registry = await this.kube.get<Registry & KubeObject>(API_VERSION, 'Registry', namespace, registryName);
    const lastScheduleTime = latest([gc.status?.lastScheduleTime, ...own.map((job) => scheduledTimeOf(job)?.toISOString())]);
    let decision: ScheduleDecision = {};
    let invalidSchedule: string | undefined;
    try {
      decision = decideSchedule({
        schedule: gc.spec.schedule,
        createdAt: new Date(gc.metadata.creationTimestamp ?? now),
        lastScheduleTime: lastScheduleTime !== undefined ? new Date(lastScheduleTime) : undefined,
        startingDeadlineSeconds: gc.spec.startingDeadlineSeconds,
        now,
      });
    } catch (error) {
      if (!(error instanceof InvalidScheduleError)) throw error;
      invalidSchedule = error.message;
    }

    // 6. Start the due run, unless suspended or another run against the Registry is active.
    let running = active[0];
    let scheduled = lastScheduleTime;
    let waitingFor: GarbageCollectionState['waitingFor'];
    const suspended = gc.spec.suspend === true;
    if (registry !== undefined && decision.due !== undefined && !suspended) {
      const other = ofRegistry.find((job) => jobState(job) === JobState.Active && !own.some((o) => o.metadata.name === job.metadata.name));
      if (running !== undefined) {
        // Like CronJob's Forbid policy: the due run stays due (within its deadline) until this one ends.
      } else if (other !== undefined) {
        waitingFor = { job: other.metadata.name, garbageCollection: other.metadata.labels?.[GARBAGE_COLLECTION_LABEL] ?? 'unknown' };
      } else {
        running = await this.startRun(gc, registry, decision.due);
        scheduled = decision.due.toISOString();
      }
    }

    // 7. Report status, conditions and metrics.
    const ranOnce = gc.spec.schedule === undefined && scheduled !== undefined;
    const pending = gc.spec.schedule === undefined && !ranOnce ? decision.due : undefined;
    const nextScheduleTime = suspended || registry === undefined ? undefined : (decision.next ?? pending);
    const state: GarbageCollectionState = {
      registryFound: registry !== undefined,
      registryName,
      ...(invalidSchedule !== undefined ? { invalidSchedule } : {}),
      suspended,
      ranOnce,
      ...(running !== undefined ? { active: running.metadata.name } : {}),
      ...(waitingFor !== undefined ? { waitingFor } : {}),
      ...(lastRun?.result === 'Failed' ? { lastRunFailed: { job: lastRun.job ?? 'unknown', message: lastRun.message ?? '' } } : {}),
      ...(decision.skipped !== undefined ? { skipped: decision.skipped } : {}),
      ...(gc.spec.startingDeadlineSeconds !== undefined ? { startingDeadlineSeconds: gc.spec.startingDeadlineSeconds } : {}),
      ...(nextScheduleTime !== undefined ? { next: nextScheduleTime } : {}),
    };
    const runningScheduled = running !== undefined ? scheduledTimeOf(running) : undefined;
    await this.writeStatus(gc, state, {
      ...(scheduled !== undefined ? { lastScheduleTime: scheduled } : {}),
      ...(nextScheduleTime !== undefined ? { nextScheduleTime: nextScheduleTime.toISOString() } : {}),
      ...(lastSuccessfulTime !== undefined ? { lastSuccessfulTime } : {}),
      ...(running !== undefined ? { active: { name: running.metadata.name, ...(runningScheduled ? { scheduledTime: runningScheduled.toISOString() } : {}) } } : {}),
      ...(lastRun !== undefined ? { lastRun } : {}),
    });
    this.setGauges(gc, lastRun, lastSuccessfulTime, running !== undefined);

    // 8. Come back when the next run is due, or sooner while something is missing or busy.
    const waits = [
      registry === undefined ? RETRY_MISSING_MS : undefined,
      waitingFor !== undefined ? RETRY_WAITING_MS : undefined,
      !suspended && decision.next !== undefined ? Math.max(0, decision.next.getTime() - now.getTime()) + REQUEUE_SLACK_MS : undefined,
    ].filter((ms) => ms !== undefined);
    return waits.length > 0 ? { requeueAfterMs: Math.min(MAX_REQUEUE_MS, ...waits) } : {};
  }

  /** Creates the Job of the run scheduled at `due`; a Job of that name already there is that run's. */
  private async startRun(gc: GarbageCollection, registry: Registry, due: Date): Promise<JobObject> {
    const job = buildGarbageCollectionJob(gc, registry, due) as JobObject;
    const key = `${gc.metadata.namespace}/${gc.metadata.name}`;
    try {
      const created = await this.kube.create<JobObject>(job);
      this.log.info({ garbageCollection: key, job: job.metadata.name, scheduledTime: due.toISOString() }, 'Created a garbage-collection Job');
      await this.event(gc, 'Normal', 'RunStarted', `Created Job ${job.metadata.name} for the run scheduled at ${due.toISOString()}.`);
      return created;
    } catch (error) {
      if (!(error instanceof KubeApiError && error.status === 409)) throw error;
      const existing = await this.kube.get<JobObject>('batch/v1', 'Job', gc.metadata.namespace, job.metadata.name);
      if (existing === undefined) throw error;
      return existing;
    }
  }

  /** How the collector's container of a Job ended, from the Job's newest pod that terminated. */
  private async termination(namespace: string, job: JobObject): Promise<ContainerTermination | undefined> {
    const uid = job.metadata.uid as string | undefined;
    const selector = uid !== undefined ? `batch.kubernetes.io/controller-uid=${uid}` : `batch.kubernetes.io/job-name=${job.metadata.name}`;
    const pods = await this.kube.list<V1Pod & KubeObject>('v1', 'Pod', namespace, selector);
    const ends = pods
      .map((pod) => pod.status?.containerStatuses?.find((status) => status.name === GC_CONTAINER)?.state?.terminated)
      .filter((terminated) => terminated !== undefined)
      .sort((a, b) => time(b.finishedAt) - time(a.finishedAt));
    const end = ends[0];
    if (end === undefined) return undefined;
    return { exitCode: end.exitCode, ...(end.reason !== undefined ? { reason: end.reason } : {}), ...(end.message !== undefined ? { message: end.message } : {}) };
  }

  /** Counts a newly finished run and says so in an Event. */
  private async recordRun(gc: GarbageCollection, run: LastRun): Promise<void> {
    const { namespace, name } = gc.metadata;
    this.metrics.runsTotal.inc({ namespace, name, result: run.result ?? 'Failed' });
    const key = `${namespace}/${name}`;
    if (run.result === 'Succeeded') {
      const what = `${run.dryRun === true ? 'would delete' : 'deleted'} ${run.manifestsDeleted ?? 0} manifests and ${run.blobsDeleted ?? 0} blobs (${run.bytesFreed ?? 0} bytes)`;
      const window = run.readOnlyWindowSeconds !== undefined ? `, read-only for ${run.readOnlyWindowSeconds.toFixed(3)} s` : '';
      this.log.info({ garbageCollection: key, job: run.job, ...run }, 'Finished a garbage-collection run');
      await this.event(gc, 'Normal', 'RunSucceeded', `Job ${run.job ?? ''} ${what}${window}.`);
    } else {
      this.log.error({ garbageCollection: key, job: run.job, message: run.message }, 'Failed a garbage-collection run');
      await this.event(gc, 'Warning', 'RunFailed', run.message ?? `Job ${run.job ?? ''} failed.`);
    }
  }

  /** Sets the gauges of a GarbageCollection from its status, so that a new leader reports them too. */
  private setGauges(gc: GarbageCollection, run: LastRun | undefined, lastSuccessfulTime: string | undefined, active: boolean): void {
    const labels = { namespace: gc.metadata.namespace, name: gc.metadata.name };
    const m = this.metrics;
    m.active.set(labels, active ? 1 : 0);
    if (lastSuccessfulTime !== undefined) m.lastSuccessTimestamp.set(labels, Date.parse(lastSuccessfulTime) / 1000);
    if (run === undefined) return;
    m.lastBytesFreed.set(labels, run.bytesFreed ?? 0);
    m.lastBlobsDeleted.set(labels, run.blobsDeleted ?? 0);
    m.lastManifestsDeleted.set(labels, run.manifestsDeleted ?? 0);
    if (run.markSeconds !== undefined) m.lastMarkSeconds.set(labels, run.markSeconds);
    if (run.readOnlyWindowSeconds !== undefined) m.lastReadOnlyWindowSeconds.set(labels, run.readOnlyWindowSeconds);
  }

  /** Drops the series of a GarbageCollection that no longer exists. */
  private forgetMetrics(namespace: string, name: string): void {
    const { runsTotal, ...gauges } = this.metrics;
    for (const result of ['Succeeded', 'Failed']) runsTotal.remove({ namespace, name, result });
    for (const gauge of Object.values(gauges)) gauge.remove({ namespace, name });
  }

  private async event(gc: GarbageCollection, type: EventType, reason: string, message: string): Promise<void> {
    await recordEvent(
      this.kube,
      this.log,
      { apiVersion: API_VERSION, kind: 'GarbageCollection', name: gc.metadata.name, namespace: gc.metadata.namespace, uid: gc.metadata.uid },
      { type, reason, message, now: this.now() },
    );
  }

  private async writeStatus(gc: GarbageCollection, state: GarbageCollectionState, fields: Record<string, unknown>): Promise<void> {
    const generation = gc.metadata.generation ?? 0;
    const previous = gc.status?.conditions as Condition[] | undefined;
    const conditions = mergeConditions(previous, garbageCollectionConditions(state, generation), this.now());
    const summary = (list: readonly Condition[] | undefined) => JSON.stringify(list?.map((c) => [c.type, c.status, c.reason]));
    if (summary(previous) !== summary(conditions)) {
      const key = `${gc.metadata.namespace}/${gc.metadata.name}`;
      this.log.info({ garbageCollection: key, conditions: conditions.map((c) => `${c.type}=${c.status}(${c.reason})`) }, 'Changed GarbageCollection conditions');
      // Failed runs have their own Event; other problems, and waiting, get one when they begin.
      const degraded = conditions.find((c) => c.type === 'Degraded');
      const before = previous?.find((c) => c.type === 'Degraded');
      if (degraded?.status === 'True' && degraded.reason !== 'LastRunFailed' && (before?.status !== 'True' || before.reason !== degraded.reason)) {
        await this.event(gc, 'Warning', degraded.reason, degraded.message);
      }
      const progressing = conditions.find((c) => c.type === 'Progressing');
      if (progressing?.reason === 'WaitingForRegistry' && previous?.find((c) => c.type === 'Progressing')?.reason !== 'WaitingForRegistry') {
        await this.event(gc, 'Normal', progressing.reason, progressing.message);
      }
    }
    await this.kube.apply(
      {
        apiVersion: API_VERSION,
        kind: 'GarbageCollection',
        metadata: { name: gc.metadata.name, namespace: gc.metadata.namespace },
        status: { observedGeneration: generation, ...fields, conditions },
      },
      { subresource: 'status' },
    );
  }
}

/** Milliseconds since the epoch of a time (a Date, or an RFC 3339 string as the API server sends it); 0 when absent. */
function time(value: Date | string | undefined): number {
  if (value === undefined) return 0;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? 0 : ms;
}

/** The latest of some RFC 3339 times, normalised; undefined when there is none. */
function latest(values: readonly (Date | string | undefined)[]): string | undefined {
  const times = values.map(time).filter((ms) => ms > 0);
  return times.length > 0 ? new Date(Math.max(...times)).toISOString() : undefined;
}

/** Whether a finished Job is a later run than the one status.lastRun records. */
function isNewer(job: V1Job, lastRun: LastRun | undefined): boolean {
  if (lastRun === undefined) return true;
  if (lastRun.job === job.metadata?.name) return false;
  return time(scheduledTimeOf(job)) > time(lastRun.scheduledTime);
}
