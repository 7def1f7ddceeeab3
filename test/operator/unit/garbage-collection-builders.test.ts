import { describe, expect, it } from 'vitest';
import type { GarbageCollection } from '../../../operator/api/garbage-collection.js';
import type { Registry } from '../../../operator/api/registry.js';
import { garbageCollectionConditions, type GarbageCollectionState } from '../../../operator/controllers/conditions.js';
import {
  GARBAGE_COLLECTION_LABEL,
  REGISTRY_LABEL,
  SCHEDULED_TIME_ANNOTATION,
  buildGarbageCollectionJob,
  collectorArgs,
  jobState,
  jobsBeyondHistory,
  lastRunFor,
  parseRunSummary,
} from '../../../operator/controllers/garbage-collection-builders.js';
import { RegistryReferences } from '../../../operator/controllers/garbage-collection-controller.js';
import { buildDeployment, configChecksum, credentialsEnv } from '../../../operator/controllers/registry-builders.js';
import type { V1Job } from '../../../operator/kube/types.js';

function registry(spec: Partial<Registry['spec']> = {}): Registry {
  return {
    apiVersion: 'berth.dev/v1alpha1',
    kind: 'Registry',
    metadata: { name: 'team', namespace: 'apps', uid: 'reg-uid' },
    spec: { image: 'example.com/berth:1.2.3', storage: { s3: { bucket: 'images', region: 'eu-west-1', credentialsSecret: { name: 's3-creds' } } }, replicas: 3, ...spec },
  };
}

function gc(spec: Partial<GarbageCollection['spec']> = {}): GarbageCollection {
  return {
    apiVersion: 'berth.dev/v1alpha1',
    kind: 'GarbageCollection',
    metadata: { name: 'nightly', namespace: 'apps', uid: 'gc-uid', creationTimestamp: '2024-05-01T00:00:00Z' },
    spec: { registryRef: { name: 'team' }, gracePeriod: '1h', readOnlyTimeout: '5m', ...spec },
  };
}

const scheduled = new Date('2024-05-01T03:00:00Z');

function job(name: string, state: 'Complete' | 'Failed' | undefined, scheduledAt: string, extra: Partial<V1Job['status']> = {}): V1Job {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, annotations: { [SCHEDULED_TIME_ANNOTATION]: scheduledAt } },
    status: { ...(state !== undefined ? { conditions: [{ type: state, status: 'True', reason: state === 'Failed' ? 'BackoffLimitExceeded' : undefined, message: state === 'Failed' ? 'Job has reached the specified backoff limit' : undefined }] } : {}), ...extra } as V1Job['status'],
  };
}

describe('GarbageCollection builders', () => {
  it('build one Job per run: named by the scheduled minute, labelled by collection and Registry, owned by the collection', () => {
    const built = buildGarbageCollectionJob(gc(), registry(), scheduled);
    expect(built.metadata?.name).toBe(`nightly-${scheduled.getTime() / 60_000}`);
    expect(built.metadata?.namespace).toBe('apps');
    expect(built.metadata?.labels).toMatchObject({ [GARBAGE_COLLECTION_LABEL]: 'nightly', [REGISTRY_LABEL]: 'team', 'app.kubernetes.io/managed-by': 'berth-operator' });
    expect(built.metadata?.annotations?.[SCHEDULED_TIME_ANNOTATION]).toBe('2024-05-01T03:00:00.000Z');
    expect(built.metadata?.ownerReferences).toEqual([{ apiVersion: 'berth.dev/v1alpha1', kind: 'GarbageCollection', name: 'nightly', uid: 'gc-uid', controller: true, blockOwnerDeletion: true }]);
    expect(built.spec?.backoffLimit).toBe(0);
    expect(built.spec?.template.spec?.restartPolicy).toBe('Never');
    expect(built.spec?.template.metadata?.labels).toEqual(built.metadata?.labels);
  });

  it('never label a run\'s pod so that the registry Service or Deployment would select it', () => {
    const built = buildGarbageCollectionJob(gc(), registry(), scheduled);
    const selector = buildDeployment(registry(), 'x').spec?.selector.matchLabels ?? {};
    const labels = built.spec?.template.metadata?.labels ?? {};
    expect(Object.entries(selector).every(([k, v]) => labels[k] === v)).toBe(false);
  });

  it('run the registry image with the Registry\'s config, credentials, security context and the collection\'s resources', () => {
    const reg = registry();
    const built = buildGarbageCollectionJob(gc({ resources: { limits: { memory: '512Mi' } } }), reg, scheduled);
    const deployment = buildDeployment(reg, configChecksum(reg));
    const pod = built.spec?.template.spec;
    const registryPod = deployment.spec?.template.spec;
    const container = pod?.containers[0];
    expect(container?.image).toBe('example.com/berth:1.2.3');
    // The S3 credentials as the registry pods get them (the HTTP secret only matters to serving replicas).
    expect(container?.env).toEqual(credentialsEnv(reg));
    expect(container?.env?.map((e) => e.valueFrom?.secretKeyRef?.name)).toEqual(['s3-creds', 's3-creds']);
    expect(container?.securityContext).toEqual(registryPod?.containers[0]?.securityContext);
    expect(pod?.securityContext).toEqual(registryPod?.securityContext);
    expect(pod?.automountServiceAccountToken).toBe(false);
    expect(pod?.volumes).toEqual(registryPod?.volumes);
    expect(container?.volumeMounts).toEqual(registryPod?.containers[0]?.volumeMounts);
    expect(container?.resources).toEqual({ limits: { memory: '512Mi' } });
    expect(container?.terminationMessagePath).toBe('/dev/termination-log');
    expect(container?.terminationMessagePolicy).toBe('FallbackToLogsOnError');
    expect(pod?.affinity).toBeUndefined();
  });

  it('mount a filesystem Registry\'s volume where its config says, on the node of its pods', () => {
    const reg = registry({ replicas: 1, storage: { filesystem: { size: '5Gi' } } });
    const pod = buildGarbageCollectionJob(gc(), reg, scheduled).spec?.template.spec;
    expect(pod?.volumes).toContainEqual({ name: 'data', persistentVolumeClaim: { claimName: 'team-registry' } });
    expect(pod?.containers[0]?.volumeMounts).toContainEqual({ name: 'data', mountPath: '/var/lib/registry' });
    expect(pod?.containers[0]?.env).toEqual([]);
    expect(pod?.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.[0]).toMatchObject({
      topologyKey: 'kubernetes.io/hostname',
      labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'berth-registry', 'app.kubernetes.io/instance': 'team' } },
    });
    expect(buildGarbageCollectionJob(gc(), registry({ replicas: 0, storage: { filesystem: {} } }), scheduled).spec?.template.spec?.affinity).toBeUndefined();
  });

  it.each([
    ['the defaults', {}, ['gc', '/etc/berth/config.yml', '--grace-period', '1h', '--read-only-timeout', '5m', '--json', '/dev/termination-log']],
    [
      'every option',
      { deleteUntagged: true, dryRun: true, gracePeriod: '0s', readOnlyTimeout: '90s' },
      ['gc', '/etc/berth/config.yml', '--delete-untagged', '--dry-run', '--grace-period', '0s', '--read-only-timeout', '90s', '--json', '/dev/termination-log'],
    ],
    ['false flags left out', { deleteUntagged: false, dryRun: false }, ['gc', '/etc/berth/config.yml', '--grace-period', '1h', '--read-only-timeout', '5m', '--json', '/dev/termination-log']],
  ])('pass the collector its options from the spec: %s', (_name, spec, args) => {
    expect(collectorArgs(gc(spec))).toEqual(args);
  });

  it.each([
    ['the collector\'s summary', '{"dryRun":false,"manifestsDeleted":2,"blobsDeleted":5,"uploadsPurged":1,"bytesFreed":12345,"markSeconds":0.25,"readOnlyWindowSeconds":0.01,"sweepSeconds":0.5}', { dryRun: false, manifestsDeleted: 2, blobsDeleted: 5, uploadsPurged: 1, bytesFreed: 12345, markSeconds: 0.25, readOnlyWindowSeconds: 0.01, sweepSeconds: 0.5 }],
    ['extra fields ignored, wrong types left out', '{"blobsDeleted":3,"bytesFreed":-1,"markSeconds":"slow","blobs":["sha256:a"]}', { blobsDeleted: 3 }],
    ['the end of a log, not JSON', 'berth-registry: cannot read configuration file', undefined],
    ['a JSON array', '[1,2]', undefined],
    ['nothing', '', undefined],
    ['no message', undefined, undefined],
  ])('read the run summary from a termination message: %s', (_name, message, summary) => {
    expect(parseRunSummary(message)).toEqual(summary);
  });

  it('record a finished run from its Job and its container\'s termination message', () => {
    const succeeded = job('nightly-1', 'Complete', '2024-05-01T03:00:00Z', { startTime: '2024-05-01T03:00:01Z' as unknown as Date, completionTime: '2024-05-01T03:00:09Z' as unknown as Date });
    expect(lastRunFor(succeeded, { exitCode: 0, message: '{"dryRun":false,"manifestsDeleted":0,"blobsDeleted":4,"bytesFreed":4096,"markSeconds":1.5}' })).toEqual({
      job: 'nightly-1',
      result: 'Succeeded',
      scheduledTime: '2024-05-01T03:00:00.000Z',
      startTime: '2024-05-01T03:00:01.000Z',
      completionTime: '2024-05-01T03:00:09.000Z',
      dryRun: false,
      manifestsDeleted: 0,
      blobsDeleted: 4,
      bytesFreed: 4096,
      markSeconds: 1.5,
    });
    const failed = lastRunFor(job('nightly-2', 'Failed', '2024-05-02T03:00:00Z'), { exitCode: 1, reason: 'Error', message: 'berth-registry: invalid configuration: storage: no driver' });
    expect(failed.result).toBe('Failed');
    expect(failed.message).toBe(
      'Job failed (BackoffLimitExceeded): Job has reached the specified backoff limit The collector exited with code 1 (Error). berth-registry: invalid configuration: storage: no driver',
    );
    expect(lastRunFor(job('nightly-3', 'Failed', '2024-05-03T03:00:00Z'), undefined).message).toMatch(/^Job failed \(BackoffLimitExceeded\)/);
    const long = lastRunFor(job('nightly-4', 'Failed', '2024-05-03T03:00:00Z'), { exitCode: 1, message: `${'x'.repeat(5000)}the cause` }).message ?? '';
    expect(long).toHaveLength(1024);
    expect(long).toMatch(/^Job failed \(BackoffLimitExceeded\): .* exited with code 1\. …x+the cause$/);
  });

  it('tell running, succeeded and failed Jobs apart by their conditions', () => {
    expect(jobState(job('a', undefined, '2024-05-01T03:00:00Z'))).toBe('Active');
    expect(jobState(job('a', 'Complete', '2024-05-01T03:00:00Z'))).toBe('Succeeded');
    expect(jobState(job('a', 'Failed', '2024-05-01T03:00:00Z'))).toBe('Failed');
    const suspendedCondition = { ...job('a', undefined, '2024-05-01T03:00:00Z'), status: { conditions: [{ type: 'Complete', status: 'False' }] } } as V1Job;
    expect(jobState(suspendedCondition)).toBe('Active');
  });

  it('keep the newest finished Jobs within each history limit and drop the rest, oldest first; never a running one', () => {
    const jobs = [
      job('s1', 'Complete', '2024-05-01T00:00:00Z'),
      job('s3', 'Complete', '2024-05-03T00:00:00Z'),
      job('s2', 'Complete', '2024-05-02T00:00:00Z'),
      job('f1', 'Failed', '2024-05-01T12:00:00Z'),
      job('f2', 'Failed', '2024-05-02T12:00:00Z'),
      job('r', undefined, '2024-04-01T00:00:00Z'),
    ];
    const names = (limits: { successful: number; failed: number }) => jobsBeyondHistory(jobs, limits).map((j) => j.metadata?.name);
    expect(names({ successful: 3, failed: 1 })).toEqual(['f1']);
    expect(names({ successful: 1, failed: 1 })).toEqual(['s1', 'f1', 's2']);
    expect(names({ successful: 0, failed: 0 })).toEqual(['s1', 'f1', 's2', 'f2', 's3']);
    expect(names({ successful: 5, failed: 5 })).toEqual([]);
  });
});

describe('GarbageCollection conditions', () => {
  const base: GarbageCollectionState = { registryFound: true, registryName: 'team', suspended: false, ranOnce: false, next: new Date('2024-05-02T03:00:00Z') };
  const summary = (state: Partial<GarbageCollectionState>) =>
    Object.fromEntries(garbageCollectionConditions({ ...base, ...state }, 4).map((c) => [c.type, `${c.status}/${c.reason}`]));

  it.each([
    ['scheduled, idle', {}, { Available: 'True/Scheduled', Progressing: 'False/Idle', Degraded: 'False/AsExpected' }],
    ['a run active', { active: 'nightly-1' }, { Available: 'True/Scheduled', Progressing: 'True/JobRunning', Degraded: 'False/AsExpected' }],
    ['waiting for another run on the Registry', { waitingFor: { job: 'weekly-9', garbageCollection: 'weekly' } }, { Available: 'True/Scheduled', Progressing: 'True/WaitingForRegistry', Degraded: 'False/AsExpected' }],
    ['suspended', { suspended: true }, { Available: 'False/Suspended', Progressing: 'False/Idle', Degraded: 'False/AsExpected' }],
    ['Registry missing', { registryFound: false }, { Available: 'False/RegistryNotFound', Progressing: 'False/Idle', Degraded: 'True/RegistryNotFound' }],
    ['schedule unreadable', { invalidSchedule: 'bad' }, { Available: 'False/InvalidSchedule', Progressing: 'False/Idle', Degraded: 'True/InvalidSchedule' }],
    ['last run failed', { lastRunFailed: { job: 'nightly-1', message: 'exit 1' } }, { Available: 'True/Scheduled', Progressing: 'False/Idle', Degraded: 'True/LastRunFailed' }],
    ['a run skipped', { skipped: new Date('2024-05-01T03:00:00Z'), startingDeadlineSeconds: 60 }, { Available: 'True/Scheduled', Progressing: 'False/Idle', Degraded: 'True/MissedStartingDeadline' }],
    ['run once, done', { ranOnce: true }, { Available: 'True/RanOnce', Progressing: 'False/Idle', Degraded: 'False/AsExpected' }],
  ])('%s', (_name, state, expected) => {
    expect(summary(state)).toEqual(expected);
  });

  it('say in their messages what to look at', () => {
    const conditions = garbageCollectionConditions({ ...base, waitingFor: { job: 'weekly-9', garbageCollection: 'weekly' }, registryFound: true }, 4);
    expect(conditions.find((c) => c.type === 'Progressing')?.message).toContain('Job weekly-9 of GarbageCollection weekly');
    expect(conditions.every((c) => c.observedGeneration === 4)).toBe(true);
    const missing = garbageCollectionConditions({ ...base, registryFound: false }, 1);
    expect(missing.find((c) => c.type === 'Degraded')?.message).toContain('Registry team');
  });
});

describe('which GarbageCollections collect a Registry', () => {
  it('follow the GarbageCollection watch: set, moved to another Registry, deleted; by namespace', () => {
    const references = new RegistryReferences();
    references.set('apps/nightly', 'apps', 'team');
    references.set('apps/weekly', 'apps', 'team');
    references.set('other/nightly', 'other', 'team');
    expect(references.keysFor('apps', 'team')).toEqual(['apps/nightly', 'apps/weekly']);
    references.set('apps/weekly', 'apps', 'archive');
    references.delete('apps/nightly');
    expect(references.keysFor('apps', 'team')).toEqual([]);
    expect(references.keysFor('apps', 'archive')).toEqual(['apps/weekly']);
    expect(references.keysFor('other', 'team')).toEqual(['other/nightly']);
  });
});
