/**
 * Pure builders: the desired children of a Registry, from the Registry alone. The controller applies
 * what these return with server-side apply; nothing here talks to the API server.
 */
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import type {
  V1ConfigMap,
  V1Secret,
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1Ingress,
  V1OwnerReference,
  V1PersistentVolumeClaim,
  V1PodDisruptionBudget,
  V1PodSpec,
  V1Service,
  V1Volume,
  V1VolumeMount,
} from '../kube/types.js';
import { API_VERSION, type Registry } from '../api/registry.js';
import { DEFAULT_REGISTRY_IMAGE } from '../api/registry-schema.js';

/** The port the registry API listens on in its pods. */
export const REGISTRY_PORT = 5000;
/** The port of the registry's metrics and health endpoints. */
export const DEBUG_PORT = 5001;
/** Where the config file is mounted. */
export const CONFIG_PATH = '/etc/berth/config.yml';
/** Where a filesystem Registry's volume is mounted, and the storage root its config names. */
export const FILESYSTEM_ROOT = '/var/lib/registry';
/** The annotation whose change rolls the pods when the configuration changes. */
export const CONFIG_CHECKSUM_ANNOTATION = 'berth.dev/config-checksum';

/** The name every child of a Registry shares. */
export function childName(registry: Registry): string {
  return `${registry.metadata.name}-registry`;
}

/** The labels of a Registry's children and the selector of its pods. */
export function selectorLabels(registry: Registry): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'berth-registry',
    'app.kubernetes.io/instance': registry.metadata.name,
  };
}

function labels(registry: Registry): Record<string, string> {
  return { ...selectorLabels(registry), 'app.kubernetes.io/component': 'registry', 'app.kubernetes.io/managed-by': 'berth-operator' };
}

/** The owner reference that ties a child to its Registry (garbage-collected with it). */
export function ownerReference(registry: Registry): V1OwnerReference {
  return { apiVersion: API_VERSION, kind: 'Registry', name: registry.metadata.name, uid: registry.metadata.uid, controller: true, blockOwnerDeletion: true };
}

function metadata(registry: Registry, name = childName(registry)) {
  return { name, namespace: registry.metadata.namespace, labels: labels(registry), ownerReferences: [ownerReference(registry)] };
}

/** The registry's config.yml (CNCF Distribution's format); credentials come from the environment. */
export function buildRegistryConfig(registry: Registry): string {
  const { storage } = registry.spec;
  const driver = storage.s3
    ? {
        s3: {
          bucket: storage.s3.bucket,
          region: storage.s3.region,
          ...(storage.s3.endpoint !== undefined ? { regionendpoint: storage.s3.endpoint } : {}),
          forcepathstyle: storage.s3.forcePathStyle ?? false,
          rootdirectory: storage.s3.rootDirectory ?? '',
        },
      }
    : { filesystem: { rootdirectory: FILESYSTEM_ROOT } };
  const config = {
    version: '0.1',
    log: { level: 'info', fields: { registry: registry.metadata.name } },
    storage: {
      ...driver,
      delete: { enabled: storage.deleteEnabled ?? true },
      redirect: { disable: !(storage.s3?.redirect ?? true) },
      maintenance: { readonly: { enabled: registry.spec.readOnly ?? false } },
    },
    http: {
      addr: `:${REGISTRY_PORT}`,
      draintimeout: '30s',
      debug: { addr: `:${DEBUG_PORT}`, prometheus: { enabled: true, path: '/metrics' } },
    },
  };
  return stringify(config);
}

/** The ConfigMap holding config.yml. */
export function buildConfigMap(registry: Registry): V1ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: metadata(registry), data: { 'config.yml': buildRegistryConfig(registry) } };
}

/** The key of the Registry's own Secret that holds the HTTP secret every replica signs upload state with. */
export const HTTP_SECRET_KEY = 'httpSecret';

/**
 * The Registry's own Secret: the HTTP secret (`http.secret`) all its replicas must share so that each trusts
 * the upload state another one put in an upload URL. `value` is the one already stored, or a new random one.
 */
export function buildHttpSecret(registry: Registry, value: string): V1Secret {
  return { apiVersion: 'v1', kind: 'Secret', metadata: metadata(registry), type: 'Opaque', data: { [HTTP_SECRET_KEY]: Buffer.from(value).toString('base64') } };
}

/**
 * A checksum of the configuration (and HTTP secret) the pods need a restart for, so that a change rolls them.
 * `readOnly` is left out: the registry re-reads its mounted config and switches read-only mode without a restart.
 */
export function configChecksum(registry: Registry, httpSecret = ''): string {
  const restartRelevant = buildRegistryConfig({ ...registry, spec: { ...registry.spec, readOnly: false } });
  return createHash('sha256').update(restartRelevant).update(httpSecret).digest('hex').slice(0, 32);
}

/** The S3 credentials from the Registry's Secret, as the environment variables the registry reads; none for a filesystem. */
export function credentialsEnv(registry: Registry): V1EnvVar[] {
  const secret = registry.spec.storage.s3?.credentialsSecret;
  if (secret === undefined) return [];
  return [
    { name: 'REGISTRY_STORAGE_S3_ACCESSKEY', valueFrom: { secretKeyRef: { name: secret.name, key: secret.accessKeyKey ?? 'accessKey' } } },
    { name: 'REGISTRY_STORAGE_S3_SECRETKEY', valueFrom: { secretKeyRef: { name: secret.name, key: secret.secretKeyKey ?? 'secretKey' } } },
  ];
}

/** The PersistentVolumeClaim of a filesystem-backed Registry, or undefined for S3. */
export function buildPersistentVolumeClaim(registry: Registry): V1PersistentVolumeClaim | undefined {
  const filesystem = registry.spec.storage.filesystem;
  if (filesystem === undefined) return undefined;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: metadata(registry),
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: String(filesystem.size ?? '10Gi') } },
      ...(filesystem.storageClassName !== undefined ? { storageClassName: filesystem.storageClassName } : {}),
    },
  };
}

/** The security context of every container run from the registry image: no privileges, a read-only root. */
export const CONTAINER_SECURITY_CONTEXT: NonNullable<V1Container['securityContext']> = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ['ALL'] },
};

/** The security context of every pod run from the registry image: the image's non-root user, the default seccomp profile. */
export const POD_SECURITY_CONTEXT: NonNullable<V1PodSpec['securityContext']> = {
  runAsNonRoot: true,
  runAsUser: 65532,
  runAsGroup: 65532,
  fsGroup: 65532,
  seccompProfile: { type: 'RuntimeDefault' },
};

/** The volumes of a pod run from the registry image: config.yml, a scratch /tmp and, for a filesystem, the data. */
export function registryVolumes(registry: Registry): V1Volume[] {
  const name = childName(registry);
  return [
    { name: 'config', configMap: { name } },
    { name: 'tmp', emptyDir: {} },
    ...(registry.spec.storage.filesystem ? [{ name: 'data', persistentVolumeClaim: { claimName: name } }] : []),
  ];
}

/** Where `registryVolumes` are mounted: config.yml at CONFIG_PATH, the data where the config says. */
export function registryVolumeMounts(registry: Registry): V1VolumeMount[] {
  return [
    { name: 'config', mountPath: '/etc/berth', readOnly: true },
    { name: 'tmp', mountPath: '/tmp' },
    ...(registry.spec.storage.filesystem ? [{ name: 'data', mountPath: FILESYSTEM_ROOT }] : []),
  ];
}

/** The Deployment running the registry pods; `checksum` is the config checksum to roll on. */
export function buildDeployment(registry: Registry, checksum: string): V1Deployment {
  const { spec } = registry;
  const container: V1Container = {
    name: 'registry',
    image: spec.image ?? DEFAULT_REGISTRY_IMAGE,
    args: ['serve', CONFIG_PATH],
    ports: [
      { name: 'registry', containerPort: REGISTRY_PORT, protocol: 'TCP' },
      { name: 'metrics', containerPort: DEBUG_PORT, protocol: 'TCP' },
    ],
    env: [...credentialsEnv(registry), { name: 'REGISTRY_HTTP_SECRET', valueFrom: { secretKeyRef: { name: childName(registry), key: HTTP_SECRET_KEY } } }],
    ...(spec.resources ? { resources: spec.resources as V1Container['resources'] } : {}),
    readinessProbe: { httpGet: { path: '/readyz', port: 'metrics' }, periodSeconds: 5, failureThreshold: 3 },
    livenessProbe: { httpGet: { path: '/healthz', port: 'metrics' }, periodSeconds: 10, failureThreshold: 6 },
    securityContext: CONTAINER_SECURITY_CONTEXT,
    volumeMounts: registryVolumeMounts(registry),
  };
  const defaultAffinity = {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selectorLabels(registry) } } },
      ],
    },
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadata(registry),
    spec: {
      replicas: spec.replicas ?? 1,
      selector: { matchLabels: selectorLabels(registry) },
      // A filesystem volume is ReadWriteOnce: the old pod must stop before the new one starts.
      strategy: spec.storage.filesystem ? { type: 'Recreate' } : { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: labels(registry), annotations: { [CONFIG_CHECKSUM_ANNOTATION]: checksum } },
        spec: {
          containers: [container],
          volumes: registryVolumes(registry),
          securityContext: POD_SECURITY_CONTEXT,
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 45,
          affinity: (spec.affinity as V1PodSpec['affinity']) ?? defaultAffinity,
          ...(spec.nodeSelector ? { nodeSelector: spec.nodeSelector } : {}),
          ...(spec.tolerations ? { tolerations: spec.tolerations as V1PodSpec['tolerations'] } : {}),
          ...(spec.topologySpreadConstraints ? { topologySpreadConstraints: spec.topologySpreadConstraints as unknown as V1PodSpec['topologySpreadConstraints'] } : {}),
        },
      },
    },
  };
}

/** The Service in front of the registry pods (API and metrics ports). */
export function buildService(registry: Registry): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(registry),
    spec: {
      selector: selectorLabels(registry),
      ports: [
        { name: 'registry', port: REGISTRY_PORT, targetPort: 'registry', protocol: 'TCP' },
        { name: 'metrics', port: DEBUG_PORT, targetPort: 'metrics', protocol: 'TCP' },
      ],
    },
  };
}

/** The Ingress, when `spec.ingress` is set: unlimited body size for layers, streamed both ways. */
export function buildIngress(registry: Registry): V1Ingress | undefined {
  const ingress = registry.spec.ingress;
  if (ingress === undefined) return undefined;
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: {
      ...metadata(registry),
      annotations: {
        'nginx.ingress.kubernetes.io/proxy-body-size': '0',
        'nginx.ingress.kubernetes.io/proxy-request-buffering': 'off',
        'nginx.ingress.kubernetes.io/proxy-buffering': 'off',
        ...ingress.annotations,
      },
    },
    spec: {
      ...(ingress.className !== undefined ? { ingressClassName: ingress.className } : {}),
      ...(ingress.tlsSecretName !== undefined ? { tls: [{ hosts: [ingress.host], secretName: ingress.tlsSecretName }] } : {}),
      rules: [
        {
          host: ingress.host,
          http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: childName(registry), port: { name: 'registry' } } } }] },
        },
      ],
    },
  };
}

/** The PodDisruptionBudget, when more than one replica runs. */
export function buildPodDisruptionBudget(registry: Registry): V1PodDisruptionBudget | undefined {
  if ((registry.spec.replicas ?? 1) <= 1) return undefined;
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: metadata(registry),
    spec: { maxUnavailable: (registry.spec.podDisruptionBudget?.maxUnavailable as number | string | undefined) ?? 1, selector: { matchLabels: selectorLabels(registry) } },
  };
}

/** The ServiceMonitor for the Prometheus operator, when wanted and its CRD exists in the cluster. */
export function buildServiceMonitor(registry: Registry, crdInstalled: boolean): object | undefined {
  if (!crdInstalled || registry.spec.metrics?.serviceMonitor === false) return undefined;
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    metadata: metadata(registry),
    spec: { selector: { matchLabels: selectorLabels(registry) }, endpoints: [{ port: 'metrics', path: '/metrics', interval: '30s' }] },
  };
}

/** The URL clients reach the registry at: the Ingress host, else the Service's cluster address. */
export function registryUrl(registry: Registry): string {
  const ingress = registry.spec.ingress;
  if (ingress !== undefined) return `${ingress.tlsSecretName !== undefined ? 'https' : 'http'}://${ingress.host}`;
  return `http://${childName(registry)}.${registry.metadata.namespace}.svc:${REGISTRY_PORT}`;
}
