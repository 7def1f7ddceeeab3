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
  registryUrl,
} from '../../../operator/controllers/registry-builders.js';
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
    const checksum = configChecksum(buildConfigMap(reg));
    const children = [buildConfigMap(reg), buildDeployment(reg, checksum), buildService(reg), buildIngress(reg), buildPodDisruptionBudget(reg)];
    for (const child of children) {
      expect(child?.metadata).toMatchObject({
        name: 'team-registry',
        namespace: 'apps',
        labels: { 'app.kubernetes.io/instance': 'team', 'app.kubernetes.io/managed-by': 'berth-operator' },
        ownerReferences: [{ kind: 'Registry', name: 'team', uid: '1111-2222', controller: true }],
      });
    }
  });

  it('change the pod template checksum exactly when the configuration changes', () => {
    const base = registry();
    const checksum = (reg: Registry) => buildDeployment(reg, configChecksum(buildConfigMap(reg))).spec?.template.metadata?.annotations?.[CONFIG_CHECKSUM_ANNOTATION];
    expect(checksum(base)).toBe(checksum(registry()));
    expect(checksum(registry({ replicas: 5 }))).toBe(checksum(base));
    expect(checksum(registry({ readOnly: true }))).not.toBe(checksum(base));
    expect(checksum(registry({ storage: { s3: { bucket: 'other', region: 'eu-west-1' } } }))).not.toBe(checksum(base));
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
