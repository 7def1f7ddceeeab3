/**
 * Where each kind the operator touches lives in the Kubernetes REST API. Pure.
 */

/** A kind's REST coordinates. */
export interface ResourceType {
  readonly apiVersion: string;
  readonly kind: string;
  readonly plural: string;
  readonly namespaced: boolean;
}

/** The kinds the operator reads or writes. */
export const RESOURCES: readonly ResourceType[] = [
  { apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true },
  { apiVersion: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true },
  { apiVersion: 'v1', kind: 'Service', plural: 'services', namespaced: true },
  { apiVersion: 'v1', kind: 'PersistentVolumeClaim', plural: 'persistentvolumeclaims', namespaced: true },
  { apiVersion: 'v1', kind: 'Event', plural: 'events', namespaced: true },
  { apiVersion: 'v1', kind: 'Pod', plural: 'pods', namespaced: true },
  { apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments', namespaced: true },
  { apiVersion: 'batch/v1', kind: 'Job', plural: 'jobs', namespaced: true },
  { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', plural: 'ingresses', namespaced: true },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets', namespaced: true },
  { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', plural: 'leases', namespaced: true },
  { apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', plural: 'servicemonitors', namespaced: true },
  { apiVersion: 'berth.dev/v1alpha1', kind: 'Registry', plural: 'registries', namespaced: true },
  { apiVersion: 'berth.dev/v1alpha1', kind: 'GarbageCollection', plural: 'garbagecollections', namespaced: true },
  { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', plural: 'customresourcedefinitions', namespaced: false },
];

/** Finds a kind's REST coordinates; throws for a kind the operator does not know. */
export function resourceType(apiVersion: string, kind: string): ResourceType {
  const found = RESOURCES.find((r) => r.apiVersion === apiVersion && r.kind === kind);
  if (found === undefined) throw new Error(`the operator does not know ${apiVersion} ${kind}`);
  return found;
}

/**
 * The REST path of a collection (no name) or of one object, optionally of a subresource:
 * `/api/v1/namespaces/ns/configmaps/name`, `/apis/apps/v1/namespaces/ns/deployments/name/status`.
 */
export function resourcePath(type: ResourceType, options: { namespace?: string; name?: string; subresource?: string } = {}): string {
  const group = type.apiVersion.includes('/') ? `/apis/${type.apiVersion}` : `/api/${type.apiVersion}`;
  const namespace = type.namespaced && options.namespace !== undefined ? `/namespaces/${encodeURIComponent(options.namespace)}` : '';
  const name = options.name !== undefined ? `/${encodeURIComponent(options.name)}` : '';
  const subresource = options.name !== undefined && options.subresource !== undefined ? `/${options.subresource}` : '';
  return `${group}${namespace}/${type.plural}${name}${subresource}`;
}
