/**
 * Schema pieces shared by the custom resources: Kubernetes types embedded in specs and the
 * `metav1.Condition` shape. Plain JSON-schema literals (`as const`), from which both the CRD YAML and the
 * TypeScript types are derived.
 */

/** A Kubernetes `metav1.Condition`. */
export const conditionSchema = {
  type: 'object',
  description: 'One aspect of the current state, in the shape of metav1.Condition.',
  required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
  properties: {
    type: { type: 'string', description: 'The aspect: Available, Progressing or Degraded.', maxLength: 316 },
    status: { type: 'string', description: 'True, False or Unknown.', enum: ['True', 'False', 'Unknown'] },
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0, description: 'The .metadata.generation the condition was set from.' },
    lastTransitionTime: { type: 'string', format: 'date-time', description: 'When the status last changed.' },
    reason: { type: 'string', description: 'A PascalCase reason for the last transition.', maxLength: 1024, minLength: 1 },
    message: { type: 'string', description: 'A human-readable message about the transition.', maxLength: 32768 },
  },
  additionalProperties: false,
} as const;

/** The `observedGeneration` of a status. */
export const observedGenerationSchema = { type: 'integer', format: 'int64', description: 'The .metadata.generation this status describes.' } as const;

/** The `conditions` list of a status: one entry per type. */
export const conditionsSchema = {
  type: 'array',
  description: 'Available, Progressing and Degraded.',
  items: conditionSchema,
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
} as const;

/** A Kubernetes `ResourceRequirements` (limits and requests). */
export const resourcesSchema = {
  type: 'object',
  description: 'Compute resources of the container, as in a Pod spec (limits and requests).',
  properties: {
    limits: {
      type: 'object',
      description: 'The most the container may use, by resource name (cpu, memory).',
      additionalProperties: { 'x-kubernetes-int-or-string': true, description: 'A quantity, such as 500m or 1Gi.' },
    },
    requests: {
      type: 'object',
      description: 'What the scheduler reserves for the container, by resource name (cpu, memory).',
      additionalProperties: { 'x-kubernetes-int-or-string': true, description: 'A quantity, such as 100m or 256Mi.' },
    },
  },
  additionalProperties: false,
} as const;

/** A reference to a key of a Secret in the resource's namespace. */
export const secretKeySchema = (description: string, defaultKey: string) =>
  ({
    type: 'object',
    description,
    required: ['name'],
    properties: {
      name: { type: 'string', description: 'The Secret, in the same namespace.', minLength: 1 },
      key: { type: 'string', description: `The key in the Secret (default "${defaultKey}").`, default: defaultKey },
    },
    additionalProperties: false,
  }) as const;

/** An object whose fields Kubernetes validates itself (affinity, tolerations, …), kept as given. */
export const passThrough = (description: string) =>
  ({ type: 'object', description, 'x-kubernetes-preserve-unknown-fields': true }) as const;
