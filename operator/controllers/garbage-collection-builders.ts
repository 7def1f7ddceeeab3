/**
 * Pure builders and readers for GarbageCollection runs: the Job of one run (the registry image running
 * `berth-registry gc` with the Registry's config, storage and credentials), the run summary the collector
 * leaves as its termination message, the state of a Job, and which finished Jobs the history limits drop.
 * Nothing here talks to the API server.
 */
import type { GarbageCollection } from '../api/garbage-collection.js';
import type { GarbageCollectionStatus } from '../api/garbage-collection-schema.js';
import { API_VERSION, type Registry } from '../api/registry.js';
import { DEFAULT_REGISTRY_IMAGE } from '../api/registry-schema.js';
import type { V1Container, V1Job, V1OwnerReference, V1PodSpec } from '../kube/types.js';
import { jobNameFor } from './garbage-collection-schedule.js';
import {
  CONFIG_PATH,
  CONTAINER_SECURITY_CONTEXT,
  POD_SECURITY_CONTEXT,
  credentialsEnv,
  registryVolumeMounts,
  registryVolumes,
  selectorLabels,
} from './registry-builders.js';

/** The label naming the GarbageCollection a Job runs for. */
export const GARBAGE_COLLECTION_LABEL = 'berth.dev/garbage-collection';
/** The label naming the Registry a Job collects: runs against one Registry never overlap. */
export const REGISTRY_LABEL = 'berth.dev/registry';
/** The annotation holding the time a Job's run was scheduled for (RFC 3339). */
export const SCHEDULED_TIME_ANNOTATION = 'berth.dev/scheduled-time';
/** Where the collector writes its JSON summary, which the kubelet keeps as the termination message. */
export const TERMINATION_MESSAGE_PATH = '/dev/termination-log';
/** The name of the collector's container in a run's pod. */
export const GC_CONTAINER = 'gc';

/** The last run, as status.lastRun records it. */
export type LastRun = NonNullable<GarbageCollectionStatus['lastRun']>;

/** How a Job stands. */
export const JobState = { Active: 'Active', Succeeded: 'Succeeded', Failed: 'Failed' } as const;
/** How a Job stands. */
export type JobState = (typeof JobState)[keyof typeof JobState];

/** The labels of every Job (and its pods) of a GarbageCollection; never the registry pods' selector labels. */
export function runLabels(gc: GarbageCollection): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'berth-gc',
    'app.kubernetes.io/instance': gc.metadata.name,
    'app.kubernetes.io/component': 'garbage-collection',
    'app.kubernetes.io/managed-by': 'berth-operator',
    [GARBAGE_COLLECTION_LABEL]: gc.metadata.name,
    [REGISTRY_LABEL]: gc.spec.registryRef.name,
  };
}

/** The owner reference that ties a Job to its GarbageCollection (deleted with it). */
export function garbageCollectionOwnerReference(gc: GarbageCollection): V1OwnerReference {
  return { apiVersion: API_VERSION, kind: 'GarbageCollection', name: gc.metadata.name, uid: gc.metadata.uid, controller: true, blockOwnerDeletion: true };
}

/** The collector's arguments: `gc <config> [--delete-untagged] [--dry-run] --grace-period … --read-only-timeout … --json <termination log>`. */
export function collectorArgs(gc: GarbageCollection): string[] {
  const { spec } = gc;
  return [
    'gc',
    CONFIG_PATH,
    ...(spec.deleteUntagged === true ? ['--delete-untagged'] : []),
    ...(spec.dryRun === true ? ['--dry-run'] : []),
    '--grace-period',
    spec.gracePeriod ?? '1h',
    '--read-only-timeout',
    spec.readOnlyTimeout ?? '5m',
    '--json',
    TERMINATION_MESSAGE_PATH,
  ];
}

/**
 * The Job of the run scheduled at `scheduledTime`: one pod, never restarted or retried (the next scheduled
 * run is the retry), the registry image with the Registry's config.yml, storage volume and S3 credentials,
 * under the registry pods' security context. A filesystem volume can be attached to one node only, so the
 * pod then runs beside the registry pods.
 */
export function buildGarbageCollectionJob(gc: GarbageCollection, registry: Registry, scheduledTime: Date): V1Job {
  const labels = runLabels(gc);
  const annotations = { [SCHEDULED_TIME_ANNOTATION]: scheduledTime.toISOString() };
  const container: V1Container = {
    name: GC_CONTAINER,
    image: registry.spec.image ?? DEFAULT_REGISTRY_IMAGE,
    args: collectorArgs(gc),
    env: credentialsEnv(registry),
    ...(gc.spec.resources ? { resources: gc.spec.resources as V1Container['resources'] } : {}),
    securityContext: CONTAINER_SECURITY_CONTEXT,
    volumeMounts: registryVolumeMounts(registry),
    terminationMessagePath: TERMINATION_MESSAGE_PATH,
    // The summary file on success; when the collector fails before writing it, the end of its log says why.
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  const besideRegistry: V1PodSpec['affinity'] =
    registry.spec.storage.filesystem !== undefined && (registry.spec.replicas ?? 1) > 0
      ? {
          podAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selectorLabels(registry) } }],
          },
        }
      : undefined;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: jobNameFor(gc.metadata.name, scheduledTime),
      namespace: gc.metadata.namespace,
      labels,
      annotations,
      ownerReferences: [garbageCollectionOwnerReference(gc)],
    },
    spec: {
      backoffLimit: 0,
      template: {
        metadata: { labels, annotations },
        spec: {
          restartPolicy: 'Never',
          containers: [container],
          volumes: registryVolumes(registry),
          securityContext: POD_SECURITY_CONTEXT,
          automountServiceAccountToken: false,
          ...(besideRegistry !== undefined ? { affinity: besideRegistry } : {}),
          ...(registry.spec.nodeSelector ? { nodeSelector: registry.spec.nodeSelector } : {}),
          ...(registry.spec.tolerations ? { tolerations: registry.spec.tolerations as V1PodSpec['tolerations'] } : {}),
        },
      },
    },
  };
}

/** Whether a Job runs, succeeded or failed, from its Complete and Failed conditions. */
export function jobState(job: V1Job): JobState {
  const isTrue = (type: string) => job.status?.conditions?.some((c) => c.type === type && c.status === 'True') ?? false;
  if (isTrue('Complete')) return JobState.Succeeded;
  if (isTrue('Failed')) return JobState.Failed;
  return JobState.Active;
}

/** The time a Job's run was scheduled for, from its annotation, else its creation. */
export function scheduledTimeOf(job: V1Job): Date | undefined {
  const value = job.metadata?.annotations?.[SCHEDULED_TIME_ANNOTATION] ?? job.metadata?.creationTimestamp;
  if (value === undefined) return undefined;
  const time = new Date(value);
  return Number.isNaN(time.getTime()) ? undefined : time;
}

/** The summary `berth-registry gc --json` writes. */
export interface RunSummary {
  readonly dryRun?: boolean;
  readonly manifestsDeleted?: number;
  readonly blobsDeleted?: number;
  readonly uploadsPurged?: number;
  readonly bytesFreed?: number;
  readonly markSeconds?: number;
  readonly readOnlyWindowSeconds?: number;
  readonly sweepSeconds?: number;
}

const COUNTS = ['manifestsDeleted', 'blobsDeleted', 'uploadsPurged', 'bytesFreed'] as const;
const DURATIONS = ['markSeconds', 'readOnlyWindowSeconds', 'sweepSeconds'] as const;

/**
 * Reads the collector's summary from a termination message; undefined when the message is not a JSON
 * object (a collector that failed leaves the end of its log instead). Fields of the wrong type are left out.
 */
export function parseRunSummary(message: string | undefined): RunSummary | undefined {
  if (message === undefined || message.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const raw = value as Record<string, unknown>;
  const summary: Record<string, number | boolean> = {};
  if (typeof raw['dryRun'] === 'boolean') summary['dryRun'] = raw['dryRun'];
  for (const key of COUNTS) {
    const n = raw[key];
    if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) summary[key] = n;
  }
  for (const key of DURATIONS) {
    const n = raw[key];
    if (typeof n === 'number' && Number.isFinite(n) && n >= 0) summary[key] = n;
  }
  return summary as RunSummary;
}

/** How the collector's container ended, as the kubelet reports it in the pod status. */
export interface ContainerTermination {
  readonly exitCode: number;
  readonly reason?: string;
  readonly message?: string;
}

/** The most a failure message keeps: the Job's reason, then as much of the end of the collector's log as fits. */
const MESSAGE_LIMIT = 1024;

/** status.lastRun for a finished Job, with the summary from its container's termination message. */
export function lastRunFor(job: V1Job, termination: ContainerTermination | undefined): LastRun {
  const state = jobState(job);
  const summary = parseRunSummary(termination?.message);
  const scheduled = scheduledTimeOf(job);
  const run: Record<string, unknown> = {
    job: job.metadata?.name,
    result: state === JobState.Succeeded ? 'Succeeded' : 'Failed',
    ...(scheduled !== undefined ? { scheduledTime: scheduled.toISOString() } : {}),
    ...(job.status?.startTime !== undefined ? { startTime: new Date(job.status.startTime).toISOString() } : {}),
    ...(job.status?.completionTime !== undefined ? { completionTime: new Date(job.status.completionTime).toISOString() } : {}),
    ...summary,
  };
  if (state === JobState.Failed) {
    const failed = job.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
    const head = [
      failed !== undefined ? `Job failed (${failed.reason ?? 'Failed'}): ${failed.message ?? ''}`.trim() : 'Job failed.',
      termination !== undefined ? `The collector exited with code ${termination.exitCode}${termination.reason ? ` (${termination.reason})` : ''}.` : undefined,
    ]
      .filter((p) => p !== undefined)
      .join(' ');
    // The end of the collector's log, when it left no summary: what went wrong is at its end.
    const log = summary === undefined ? (termination?.message?.trim() ?? '') : '';
    const room = Math.max(0, MESSAGE_LIMIT - head.length - 1);
    run['message'] = log === '' ? head : `${head} ${log.length > room ? `…${log.slice(-(room - 1))}` : log}`;
  }
  return run as LastRun;
}

/** The finished Jobs beyond the history limits, oldest first: successful beyond `successful`, failed beyond `failed`. */
export function jobsBeyondHistory<T extends V1Job>(jobs: readonly T[], limits: { successful: number; failed: number }): T[] {
  const newestFirst = (a: T, b: T) => (scheduledTimeOf(b)?.getTime() ?? 0) - (scheduledTimeOf(a)?.getTime() ?? 0);
  const beyond = (state: JobState, limit: number) => jobs.filter((j) => jobState(j) === state).sort(newestFirst).slice(limit);
  return [...beyond(JobState.Succeeded, limits.successful), ...beyond(JobState.Failed, limits.failed)].sort((a, b) => newestFirst(b, a));
}
