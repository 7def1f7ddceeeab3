import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Registry } from '../../../operator/api/registry.js';
import {
  CONFIG_CHECKSUM_ANNOTATION,
  buildConfigMap,
  buildDeployment,
  buildIngress,
  buildPersistentVolumeClaim,
  buildPodDisruptionBudget,
  buildRegistryConfig,
  buildService,
  buildServiceMonitor,
  configChecksum,
  buildHttpSecret,
  HTTP_SECRET_KEY,
  registryUrl,
} from '../../../operator/controllers/registry-builders.js';
import { mergeConditions, registryConditions } from '../../../operator/controllers/conditions.js';
import { validateConfig } from '../../../registry/config.js';

function registry(spec: Partial<Registry['spec']> = {}): Registry {
  return {
    apiVersion: 'berth.dev/v1alpha1',
    kind: 'Registry',
    metadata: { name: 'team', namespace: 'apps', uid: '1111-2222' },
    spec: {
      storage: { s3: { bucket: 'images', region: 'eu-west-1', credentialsSecret: { name: 's3-creds' } } },
      replicas: 3,
      ...spec,
    },
  };
}

const filesystem = () => registry({ replicas: 1, storage: { filesystem: { size: '20Gi' } } });

describe('registry builders', () => {
  it('write a registry config that the registry itself accepts, for S3 and for a filesystem', () => {
    for (const reg of [registry(), filesystem(), registry({ readOnly: true })]) {
      const config = validateConfig(parse(buildRegistryConfig(reg)));
      expect(config.http.addr).toBe(':5000');
      expect(config.http.debug.addr).toBe(':5001');
      expect(config.storage.maintenance.readonly.enabled).toBe(reg.spec.readOnly ?? false);
    }
    const s3 = validateConfig(parse(buildRegistryConfig(registry({ storage: { s3: { bucket: 'b', region: 'r', endpoint: 'http://minio:9000', forcePathStyle: true } } }))));
    expect(s3.storage.s3).toMatchObject({ bucket: 'b', region: 'r', regionendpoint: 'http://minio:9000', forcepathstyle: true });
  });

  it('give every child the same name, labels and a controller owner reference to the Registry', () => {
    const reg = registry({ ingress: { host: 'registry.example.com' } });
    const checksum = configChecksum(reg);
    const children = [buildHttpSecret(reg, 'x'.repeat(32)), buildConfigMap(reg), buildDeployment(reg, checksum), buildService(reg), buildIngress(reg), buildPodDisruptionBudget(reg)];
    for (const child of children) {
      expect(child?.metadata).toMatchObject({
        name: 'team-registry',
        namespace: 'apps',
        labels: { 'app.kubernetes.io/instance': 'team', 'app.kubernetes.io/managed-by': 'berth-operator' },
        ownerReferences: [{ kind: 'Registry', name: 'team', uid: '1111-2222', controller: true }],
      });
    }
  });

  it('change the pod template checksum exactly when a restart-relevant setting changes', () => {
    const base = registry();
    const checksum = (reg: Registry) => buildDeployment(reg, configChecksum(reg)).spec?.template.metadata?.annotations?.[CONFIG_CHECKSUM_ANNOTATION];
    expect(checksum(base)).toBe(checksum(registry()));
    expect(checksum(registry({ replicas: 5 }))).toBe(checksum(base));
    // Read-only mode switches at run time, through the mounted config: no roll.
    expect(checksum(registry({ readOnly: true }))).toBe(checksum(base));
    expect(buildConfigMap(registry({ readOnly: true })).data).not.toEqual(buildConfigMap(base).data);
    expect(checksum(registry({ storage: { s3: { bucket: 'other', region: 'eu-west-1' } } }))).not.toBe(checksum(base));
    // A new HTTP secret rolls the pods too: replicas must all hold the same one.
    expect(configChecksum(base, 'secret-one-0123456789')).not.toBe(configChecksum(base, 'secret-two-0123456789'));
  });

  it('hand every replica the Registry\'s HTTP secret from its own Secret', () => {
    const reg = registry();
    const secret = buildHttpSecret(reg, 'a-random-secret-of-32-characters');
    expect(Buffer.from(secret.data?.[HTTP_SECRET_KEY] ?? '', 'base64').toString()).toBe('a-random-secret-of-32-characters');
    const env = buildDeployment(reg, configChecksum(reg)).spec?.template.spec?.containers[0]?.env ?? [];
    expect(env).toContainEqual({ name: 'REGISTRY_HTTP_SECRET', valueFrom: { secretKeyRef: { name: 'team-registry', key: HTTP_SECRET_KEY } } });
  });

  it.each([
    ['S3 with three replicas', registry(), { replicas: 3, strategy: 'RollingUpdate', pvc: false, pdb: true }],
    ['a filesystem volume', filesystem(), { replicas: 1, strategy: 'Recreate', pvc: true, pdb: false }],
  ])('build a Deployment for %s with probes, a restrictive security context and credentials from the Secret', (_label, reg, expected) => {
    const deployment = buildDeployment(reg, 'abc');
    const pod = deployment.spec?.template.spec;
    const container = pod?.containers[0];
    expect(deployment.spec?.replicas).toBe(expected.replicas);
    expect(deployment.spec?.strategy?.type).toBe(expected.strategy);
    expect(container?.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(container?.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(container?.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
    expect(pod?.securityContext?.seccompProfile?.type).toBe('RuntimeDefault');
    expect(pod?.affinity?.podAntiAffinity).toBeDefined();
    expect(buildPersistentVolumeClaim(reg) !== undefined).toBe(expected.pvc);
    expect(buildPodDisruptionBudget(reg) !== undefined).toBe(expected.pdb);
    if (reg.spec.storage.s3?.credentialsSecret) {
      expect(container?.env).toEqual([
        { name: 'REGISTRY_STORAGE_S3_ACCESSKEY', valueFrom: { secretKeyRef: { name: 's3-creds', key: 'accessKey' } } },
        { name: 'REGISTRY_STORAGE_S3_SECRETKEY', valueFrom: { secretKeyRef: { name: 's3-creds', key: 'secretKey' } } },
        { name: 'REGISTRY_HTTP_SECRET', valueFrom: { secretKeyRef: { name: 'team-registry', key: HTTP_SECRET_KEY } } },
      ]);
    }
  });

  it('keep the scheduling settings a Registry gives', () => {
    const tolerations = [{ key: 'dedicated', operator: 'Equal', value: 'registry', effect: 'NoSchedule' }];
    const affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } } };
    const pod = buildDeployment(registry({ tolerations, affinity, nodeSelector: { disk: 'ssd' } }), 'x').spec?.template.spec;
    expect(pod?.tolerations).toEqual(tolerations);
    expect(pod?.affinity).toEqual(affinity);
    expect(pod?.nodeSelector).toEqual({ disk: 'ssd' });
  });

  it('build an Ingress only when asked, streaming bodies of any size', () => {
    expect(buildIngress(registry())).toBeUndefined();
    const ingress = buildIngress(registry({ ingress: { host: 'r.example.com', className: 'nginx', tlsSecretName: 'r-tls', annotations: { a: 'b' } } }));
    expect(ingress?.spec?.ingressClassName).toBe('nginx');
    expect(ingress?.spec?.tls).toEqual([{ hosts: ['r.example.com'], secretName: 'r-tls' }]);
    expect(ingress?.metadata?.annotations).toMatchObject({ 'nginx.ingress.kubernetes.io/proxy-body-size': '0', a: 'b' });
    expect(registryUrl(registry({ ingress: { host: 'r.example.com', tlsSecretName: 'r-tls' } }))).toBe('https://r.example.com');
    expect(registryUrl(registry())).toBe('http://team-registry.apps.svc:5000');
  });

  it('build a ServiceMonitor only when the CRD exists and it is not switched off', () => {
    expect(buildServiceMonitor(registry(), false)).toBeUndefined();
    expect(buildServiceMonitor(registry({ metrics: { serviceMonitor: false } }), true)).toBeUndefined();
    expect(buildServiceMonitor(registry(), true)).toMatchObject({ kind: 'ServiceMonitor', spec: { endpoints: [{ port: 'metrics' }] } });
  });

  it('expose the registry and metrics ports on the Service', () => {
    expect(buildService(registry()).spec?.ports?.map((port) => [port.name, port.port])).toEqual([
      ['registry', 5000],
      ['metrics', 5001],
    ]);
  });
});

describe('registry conditions', () => {
  const rolledOut = { desired: 3, ready: 3, updated: 3, available: 3, observedGeneration: 2, generation: 2 };
  it.each([
    ['no Deployment yet', undefined, undefined, { Available: 'False', Progressing: 'True', Degraded: 'False' }],
    ['a Deployment rolling out', { ...rolledOut, ready: 1, updated: 1, available: 1 }, undefined, { Available: 'True', Progressing: 'True', Degraded: 'False' }],
    ['a rolled-out Deployment', rolledOut, undefined, { Available: 'True', Progressing: 'False', Degraded: 'False' }],
    ['no pod available', { ...rolledOut, ready: 0, available: 0 }, undefined, { Available: 'False', Progressing: 'True', Degraded: 'False' }],
    ['a missing Secret', undefined, { reason: 'SecretNotFound', message: 'Secret s3-creds not found' }, { Available: 'False', Progressing: 'False', Degraded: 'True' }],
  ] as const)('follow %s', (_label, state, problem, expected) => {
    const conditions = registryConditions(state, 2, problem);
    expect(Object.fromEntries(conditions.map((c) => [c.type, c.status]))).toEqual(expected);
    for (const condition of conditions) expect(condition.reason).toMatch(/^[A-Z][A-Za-z]+$/);
  });

  it('keep lastTransitionTime while a status does not change', () => {
    const first = mergeConditions(undefined, registryConditions(undefined, 1), new Date('2026-01-01T00:00:00Z'));
    const second = mergeConditions(first, registryConditions(undefined, 1), new Date('2026-01-01T00:05:00Z'));
    expect(second.map((c) => c.lastTransitionTime)).toEqual(first.map((c) => c.lastTransitionTime));
    const third = mergeConditions(second, registryConditions({ desired: 1, ready: 1, updated: 1, available: 1, observedGeneration: 1, generation: 1 }, 1), new Date('2026-01-01T00:10:00Z'));
    expect(third.find((c) => c.type === 'Available')?.lastTransitionTime).toBe('2026-01-01T00:10:00.000Z');
    expect(third.find((c) => c.type === 'Degraded')?.lastTransitionTime).toBe('2026-01-01T00:00:00.000Z');
  });
});
