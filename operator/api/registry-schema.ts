/**
 * The Registry custom resource (berth.dev/v1alpha1): its OpenAPI schema, from which `crds/` and the
 * TypeScript type `Registry` are both derived, so they cannot disagree.
 */
import type { FromSchema } from 'json-schema-to-ts';
import { conditionsSchema, observedGenerationSchema, passThrough, resourcesSchema, secretKeySchema } from './common-schema.js';

/** The image the operator runs when a Registry names none. */
export const DEFAULT_REGISTRY_IMAGE = 'ghcr.io/berth-dev/berth:0.1.0';

/** The spec of a Registry. */
export const registrySpecSchema = {
  type: 'object',
  description: 'The desired registry deployment.',
  required: ['storage'],
  properties: {
    image: { type: 'string', description: 'The registry image.', default: DEFAULT_REGISTRY_IMAGE, minLength: 1 },
    replicas: { type: 'integer', format: 'int32', minimum: 0, default: 1, description: 'Registry pods to run.' },
    resources: resourcesSchema,
    nodeSelector: {
      type: 'object',
      description: 'Labels a node must have to run the registry pods.',
      additionalProperties: { type: 'string', description: 'A label value.' },
    },
    tolerations: {
      type: 'array',
      description: 'Taints the registry pods tolerate, as in a Pod spec.',
      items: passThrough('A toleration, as in a Pod spec.'),
    },
    affinity: passThrough('Affinity rules for the registry pods, as in a Pod spec. When absent, pods prefer different nodes.'),
    topologySpreadConstraints: {
      type: 'array',
      description: 'How the registry pods spread over zones or nodes, as in a Pod spec.',
      items: passThrough('A topology spread constraint, as in a Pod spec.'),
    },
    storage: {
      type: 'object',
      description: 'Where the registry stores content: exactly one of s3 or filesystem.',
      properties: {
        s3: {
          type: 'object',
          description: 'An S3 bucket shared by every replica.',
          required: ['bucket', 'region'],
          properties: {
            bucket: { type: 'string', description: 'The bucket.', minLength: 3 },
            region: { type: 'string', description: 'The bucket region.', minLength: 1 },
            endpoint: { type: 'string', description: 'An S3-compatible endpoint URL (MinIO, Ceph, R2, ...); AWS when absent.' },
            forcePathStyle: { type: 'boolean', description: 'Address the bucket as endpoint/bucket rather than bucket.endpoint.', default: false },
            rootDirectory: { type: 'string', description: 'Keys are stored below this prefix.', default: '' },
            credentialsSecret: {
              type: 'object',
              description: 'A Secret holding the access key and secret key; the pod identity (IRSA, workload identity) when absent.',
              required: ['name'],
              properties: {
                name: { type: 'string', description: 'The Secret, in the same namespace.', minLength: 1 },
                accessKeyKey: { type: 'string', description: 'The key holding the access key id.', default: 'accessKey' },
                secretKeyKey: { type: 'string', description: 'The key holding the secret access key.', default: 'secretKey' },
              },
              additionalProperties: false,
            },
            redirect: { type: 'boolean', description: 'Redirect blob downloads to presigned URLs of the bucket.', default: true },
          },
          additionalProperties: false,
        },
        filesystem: {
          type: 'object',
          description: 'A PersistentVolumeClaim; only for a single replica.',
          properties: {
            size: { 'x-kubernetes-int-or-string': true, description: 'The volume size, such as 20Gi.', default: '10Gi' },
            storageClassName: { type: 'string', description: 'The StorageClass; the cluster default when absent.' },
          },
          additionalProperties: false,
        },
        deleteEnabled: { type: 'boolean', description: 'Allow DELETE of manifests, tags and blobs.', default: true },
      },
      additionalProperties: false,
      'x-kubernetes-validations': [
        {
          rule: '(has(self.s3) ? 1 : 0) + (has(self.filesystem) ? 1 : 0) == 1',
          message: 'exactly one storage backend must be set: spec.storage.s3 or spec.storage.filesystem',
        },
      ],
    },
    auth: {
      type: 'object',
      description: 'Client authentication; anonymous access when absent.',
      properties: {
        htpasswd: secretKeySchema('A Secret holding an htpasswd file with bcrypt entries.', 'htpasswd'),
        token: {
          type: 'object',
          description: 'Docker token authentication (JWT bearer tokens with repository scopes).',
          required: ['realm', 'service', 'issuer', 'rootCertificateSecret'],
          properties: {
            realm: { type: 'string', description: 'The token server URL clients are sent to.', minLength: 1 },
            service: { type: 'string', description: 'The service name tokens are issued for.', minLength: 1 },
            issuer: { type: 'string', description: 'The issuer tokens must name.', minLength: 1 },
            rootCertificateSecret: secretKeySchema('A Secret holding the certificate bundle that signs tokens.', 'tls.crt'),
          },
          additionalProperties: false,
        },
      },
      additionalProperties: false,
      'x-kubernetes-validations': [{ rule: '!(has(self.htpasswd) && has(self.token))', message: 'set at most one of auth.htpasswd and auth.token' }],
    },
    tls: {
      type: 'object',
      description: 'TLS served by the registry pods themselves.',
      required: ['secretName'],
      properties: { secretName: { type: 'string', description: 'A kubernetes.io/tls Secret.', minLength: 1 } },
      additionalProperties: false,
    },
    ingress: {
      type: 'object',
      description: 'An Ingress in front of the registry; none when absent.',
      required: ['host'],
      properties: {
        host: { type: 'string', description: 'The host name clients push to.', minLength: 1 },
        className: { type: 'string', description: 'The IngressClass.' },
        annotations: {
          type: 'object',
          description: 'Annotations for the Ingress (for example the controller body-size settings).',
          additionalProperties: { type: 'string', description: 'An annotation value.' },
        },
        tlsSecretName: { type: 'string', description: 'A kubernetes.io/tls Secret for the Ingress; plain HTTP when absent.' },
      },
      additionalProperties: false,
    },
    podDisruptionBudget: {
      type: 'object',
      description: 'The PodDisruptionBudget made when more than one replica runs.',
      properties: {
        maxUnavailable: { 'x-kubernetes-int-or-string': true, description: 'Pods that may be down at once (default 1).', default: 1 },
      },
      additionalProperties: false,
    },
    metrics: {
      type: 'object',
      description: 'Prometheus metrics.',
      properties: {
        serviceMonitor: { type: 'boolean', description: 'Create a ServiceMonitor (when the Prometheus operator CRD exists).', default: true },
      },
      additionalProperties: false,
    },
    readOnly: { type: 'boolean', description: 'Serve pulls only; refuse writes.', default: false },
  },
  additionalProperties: false,
  'x-kubernetes-validations': [
    {
      rule: 'self.replicas <= 1 || has(self.storage.s3)',
      message: 'more than one replica requires shared object storage: set spec.storage.s3',
    },
  ],
} as const;

/** The status of a Registry. */
export const registryStatusSchema = {
  type: 'object',
  description: 'The observed state of the registry deployment.',
  properties: {
    observedGeneration: observedGenerationSchema,
    replicas: { type: 'integer', format: 'int32', description: 'Registry pods that exist.' },
    readyReplicas: { type: 'integer', format: 'int32', description: 'Registry pods that are ready.' },
    selector: { type: 'string', description: 'The label selector of the registry pods, for the scale subresource.' },
    url: { type: 'string', description: 'Where clients reach the registry.' },
    conditions: conditionsSchema,
    maintenance: {
      type: 'object',
      description: 'The registry read-only state.',
      properties: {
        readOnly: { type: 'boolean', description: 'Writes are refused now.' },
        reason: { type: 'string', description: 'Why: ReadOnlySpec or GarbageCollection.' },
        until: { type: 'string', format: 'date-time', description: 'When a garbage-collection window ends at the latest.' },
      },
      additionalProperties: false,
    },
  },
  additionalProperties: false,
} as const;

/** The Registry spec, as the operator reads it; fields with schema defaults stay optional so builders apply the same defaults. */
export type RegistrySpec = FromSchema<typeof registrySpecSchema, { keepDefaultedPropertiesOptional: true }>;
/** The Registry status, as the operator writes it. */
export type RegistryStatus = FromSchema<typeof registryStatusSchema, { keepDefaultedPropertiesOptional: true }>;
