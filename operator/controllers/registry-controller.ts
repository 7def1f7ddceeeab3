/**
 * The Registry controller: reconciles one Registry into its children and its status. Level-triggered and
 * idempotent; every step can run again with the same result.
 */
import { randomBytes } from 'node:crypto';
import type { Registry } from '../api/registry.js';
import type { KubeClient, KubeObject } from '../kube/client.js';
import type { V1Deployment, V1Secret } from '../kube/types.js';
import { mergeConditions, registryConditions, type Condition } from './conditions.js';
import { recordEvent } from './events.js';
import {
  buildConfigMap,
  buildHttpSecret,
  buildDeployment,
  buildIngress,
  buildPersistentVolumeClaim,
  buildPodDisruptionBudget,
  buildService,
  buildServiceMonitor,
  childName,
  configChecksum,
  HTTP_SECRET_KEY,
  registryUrl,
  selectorLabels,
} from './registry-builders.js';

/** What a reconcile asks of the queue. */
export interface ReconcileResult {
  /** Reconcile this key again after this many milliseconds. */
  readonly requeueAfterMs?: number;
}

/** A logger with pino's shape. */
export interface Logger {
  info(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** While something the Registry needs is missing, look again this often. */
const RETRY_MISSING_MS = 5_000;
/** While the Deployment rolls out, look again this often (Deployment events also trigger reconciles). */
const RETRY_PROGRESSING_MS = 10_000;

/** Reconciles Registry objects. */
export class RegistryController {
  constructor(
    private readonly kube: KubeClient,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Reconciles the Registry `namespace/name`. */
  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace, name] = key.split('/') as [string, string];
    // 1. Fetch the Registry; when it is gone its children go with it (owner references).
    const registry = await this.kube.get<Registry & KubeObject>('berth.dev/v1alpha1', 'Registry', namespace, name);
    if (registry === undefined) return {};

    // 2. Check what the Registry refers to.
    const secretName = registry.spec.storage.s3?.credentialsSecret?.name;
    if (secretName !== undefined && (await this.kube.get('v1', 'Secret', namespace, secretName)) === undefined) {
      const message = `Secret ${secretName} named by spec.storage.s3.credentialsSecret does not exist in namespace ${namespace}`;
      await this.writeStatus(registry, undefined, { reason: 'SecretNotFound', message });
      this.log.info({ registry: key, secret: secretName }, 'Waited for a missing Secret');
      return { requeueAfterMs: RETRY_MISSING_MS };
    }

    // 3. Compute the desired children. The HTTP secret is made once and kept: a new one would roll the pods.
    const stored = await this.kube.get<V1Secret & KubeObject>('v1', 'Secret', namespace, childName(registry));
    const storedSecret = stored?.data?.[HTTP_SECRET_KEY];
    const httpSecret = storedSecret !== undefined ? Buffer.from(storedSecret, 'base64').toString('utf8') : randomBytes(32).toString('base64url');
    const configMap = buildConfigMap(registry);
    const serviceMonitorCrd = await this.kube.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, 'servicemonitors.monitoring.coreos.com');
    const wanted: { kind: string; apiVersion: string; object: object | undefined }[] = [
      { apiVersion: 'v1', kind: 'Secret', object: buildHttpSecret(registry, httpSecret) },
      { apiVersion: 'v1', kind: 'ConfigMap', object: configMap },
      { apiVersion: 'v1', kind: 'PersistentVolumeClaim', object: buildPersistentVolumeClaim(registry) },
      { apiVersion: 'apps/v1', kind: 'Deployment', object: buildDeployment(registry, configChecksum(registry, httpSecret)) },
      { apiVersion: 'v1', kind: 'Service', object: buildService(registry) },
      { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', object: buildIngress(registry) },
      { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', object: buildPodDisruptionBudget(registry) },
      { apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', object: buildServiceMonitor(registry, serviceMonitorCrd !== undefined) },
    ];

    // 4. Apply them; delete optional children that are no longer wanted (never the PVC: it holds data).
    let deployment: V1Deployment | undefined;
    for (const child of wanted) {
      if (child.object !== undefined) {
        const applied = await this.kube.apply(child.object as KubeObject);
        if (child.kind === 'Deployment') deployment = applied as unknown as V1Deployment;
      } else if (child.kind !== 'PersistentVolumeClaim' && !(child.kind === 'ServiceMonitor' && serviceMonitorCrd === undefined)) {
        await this.kube.delete(child.apiVersion, child.kind, namespace, childName(registry));
      }
    }

    // 5. Report status from the Deployment.
    const state = deployment?.status === undefined
      ? undefined
      : {
          desired: deployment.spec?.replicas ?? 1,
          ready: deployment.status.readyReplicas ?? 0,
          updated: deployment.status.updatedReplicas ?? 0,
          available: deployment.status.availableReplicas ?? 0,
          observedGeneration: deployment.status.observedGeneration ?? 0,
          generation: deployment.metadata?.generation ?? 0,
        };
    const conditions = await this.writeStatus(registry, state);
    const progressing = conditions.find((c) => c.type === 'Progressing')?.status === 'True';
    return progressing ? { requeueAfterMs: RETRY_PROGRESSING_MS } : {};
  }

  /** Records a Kubernetes Event for a transition, Warning when Degraded; best effort, never fails the reconcile. */
  private async recordEvent(registry: Registry, conditions: Condition[]): Promise<void> {
    const degraded = conditions.find((c) => c.type === 'Degraded');
    const available = conditions.find((c) => c.type === 'Available');
    const main = degraded?.status === 'True' ? degraded : available;
    if (main === undefined) return;
    await recordEvent(
      this.kube,
      this.log,
      { apiVersion: 'berth.dev/v1alpha1', kind: 'Registry', name: registry.metadata.name, namespace: registry.metadata.namespace, uid: registry.metadata.uid },
      { type: degraded?.status === 'True' ? 'Warning' : 'Normal', reason: main.reason, message: main.message, now: this.now() },
    );
  }

  private async writeStatus(
    registry: Registry,
    state: Parameters<typeof registryConditions>[0],
    problem?: { reason: string; message: string },
  ): Promise<Condition[]> {
    const generation = registry.metadata.generation ?? 0;
    const previous = registry.status?.conditions as Condition[] | undefined;
    const conditions = mergeConditions(previous, registryConditions(state, generation, problem), this.now());
    const selector = Object.entries(selectorLabels(registry)).map(([k, v]) => `${k}=${v}`).join(',');
    const before = JSON.stringify(previous?.map((c) => [c.type, c.status, c.reason]));
    const after = JSON.stringify(conditions.map((c) => [c.type, c.status, c.reason]));
    if (before !== after) {
      this.log.info({ registry: `${registry.metadata.namespace}/${registry.metadata.name}`, conditions: conditions.map((c) => `${c.type}=${c.status}(${c.reason})`) }, 'Changed Registry conditions');
      await this.recordEvent(registry, conditions);
    }
    await this.kube.apply(
      {
        apiVersion: 'berth.dev/v1alpha1',
        kind: 'Registry',
        metadata: { name: registry.metadata.name, namespace: registry.metadata.namespace },
        status: {
          observedGeneration: generation,
          replicas: state?.desired ?? 0,
          readyReplicas: state?.ready ?? 0,
          selector,
          url: registryUrl(registry),
          conditions,
          maintenance: { readOnly: registry.spec.readOnly ?? false, ...(registry.spec.readOnly ? { reason: 'ReadOnlySpec' } : {}) },
        },
      },
      { subresource: 'status' },
    );
    return conditions;
  }
}
