/**
 * Builds the CustomResourceDefinitions of Berth's kinds from their schemas. Pure; `npm run crds` writes
 * them to `crds/`, and a test checks that the files there are exactly what this builds.
 */
import { garbageCollectionSpecSchema, garbageCollectionStatusSchema } from './garbage-collection-schema.js';
import { registrySpecSchema, registryStatusSchema } from './registry-schema.js';

/** The API group of Berth's kinds. */
export const GROUP = 'berth.dev';
/** The served and stored version. */
export const VERSION = 'v1alpha1';

/** Names of a kind, as in a CRD's `spec.names`. */
interface Names {
  readonly kind: string;
  readonly plural: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
}

/**
 * The schema as a CRD takes it: Kubernetes prunes unknown fields by itself and forbids
 * `additionalProperties: false` beside `properties`, which the TypeScript types need; it is dropped here.
 */
export function toCrdSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toCrdSchema);
  if (typeof node !== 'object' || node === null) return node;
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'additionalProperties' && value === false) continue;
    result[key] = toCrdSchema(value);
  }
  return result;
}

function crd(
  names: Names,
  description: string,
  spec: object,
  status: object,
  extra: { printerColumns: object[]; subresources: object; validations?: object[] },
): object {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${names.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      names: { kind: names.kind, listKind: `${names.kind}List`, plural: names.plural, singular: names.singular, shortNames: names.shortNames, categories: ['berth'] },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: extra.subresources,
          additionalPrinterColumns: extra.printerColumns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string', description: 'The versioned schema of this object.' },
                kind: { type: 'string', description: 'The REST resource this object represents.' },
                metadata: { type: 'object' },
                spec: toCrdSchema(spec),
                status: toCrdSchema(status),
              },
              ...(extra.validations !== undefined ? { 'x-kubernetes-validations': extra.validations } : {}),
            },
          },
        },
      ],
    },
  };
}

/** The Registry CRD. */
export function registryCrd(): object {
  return crd(
    { kind: 'Registry', plural: 'registries', singular: 'registry', shortNames: ['reg'] },
    'An OCI registry run as replicated pods over shared storage.',
    registrySpecSchema,
    registryStatusSchema,
    {
      subresources: {
        status: {},
        scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
      },
      printerColumns: [
        { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas', description: 'Desired pods.' },
        { name: 'Ready', type: 'integer', jsonPath: '.status.readyReplicas', description: 'Ready pods.' },
        { name: 'URL', type: 'string', jsonPath: '.status.url', description: 'Where clients reach the registry.' },
        { name: 'Available', type: 'string', jsonPath: '.status.conditions[?(@.type=="Available")].status', description: 'Whether the registry serves.' },
        { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      ],
    },
  );
}

/** The GarbageCollection CRD. */
export function garbageCollectionCrd(): object {
  return crd(
    { kind: 'GarbageCollection', plural: 'garbagecollections', singular: 'garbagecollection', shortNames: ['gc'] },
    'Garbage collection of one Registry, once or on a schedule, with a short read-only window.',
    garbageCollectionSpecSchema,
    garbageCollectionStatusSchema,
    {
      subresources: { status: {} },
      printerColumns: [
        { name: 'Registry', type: 'string', jsonPath: '.spec.registryRef.name', description: 'The Registry collected.' },
        { name: 'Schedule', type: 'string', jsonPath: '.spec.schedule', description: 'When it runs.' },
        { name: 'Suspend', type: 'boolean', jsonPath: '.spec.suspend', description: 'Whether new runs are held.' },
        { name: 'Active', type: 'string', jsonPath: '.status.active.name', description: 'The Job running now.' },
        { name: 'Last Result', type: 'string', jsonPath: '.status.lastRun.result', description: 'How the last run ended.' },
        { name: 'Last Success', type: 'date', jsonPath: '.status.lastSuccessfulTime', description: 'The last successful run.' },
        { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      ],
      // As for a CronJob: a run's Job is named <name>-<minutes since the epoch> (8 digits until the year
      // 2160) and its pods carry the Job name in a label, whose values stop at 63 characters.
      validations: [{ rule: 'self.metadata.name.size() <= 52', message: 'a GarbageCollection name is at most 52 characters (its Jobs add 9)' }],
    },
  );
}

/** Every CRD with the file it is written to under `crds/`. */
export function allCrds(): { file: string; crd: object }[] {
  return [
    { file: `${GROUP}_registries.yaml`, crd: registryCrd() },
    { file: `${GROUP}_garbagecollections.yaml`, crd: garbageCollectionCrd() },
  ];
}
