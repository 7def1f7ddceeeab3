/**
 * The GarbageCollection custom resource (berth.dev/v1alpha1): its OpenAPI schema, from which `crds/` and
 * the TypeScript types are both derived.
 */
import type { FromSchema } from 'json-schema-to-ts';
import { conditionsSchema, observedGenerationSchema, resourcesSchema } from './common-schema.js';

/** The characters a cron field may use: digits, names, `*`, `/`, `,` and `-`. */
const CRON_FIELD = '[0-9A-Za-z*/,-]+';

/** The spec of a GarbageCollection. */
export const garbageCollectionSpecSchema = {
  type: 'object',
  description: 'When and how to collect garbage in one Registry.',
  required: ['registryRef'],
  properties: {
    registryRef: {
      type: 'object',
      description: 'The Registry to collect, in the same namespace.',
      required: ['name'],
      properties: { name: { type: 'string', description: 'The Registry name.', minLength: 1 } },
      additionalProperties: false,
    },
    schedule: {
      type: 'string',
      description: 'A five-field cron expression (minute hour day-of-month month day-of-week, UTC); run once when absent.',
      maxLength: 128,
      'x-kubernetes-validations': [
        {
          rule: `self.matches('^\\\\s*${CRON_FIELD}(\\\\s+${CRON_FIELD}){4}\\\\s*$')`,
          message: 'schedule must be a five-field cron expression, such as "0 3 * * *"',
        },
      ],
    },
    suspend: { type: 'boolean', description: 'Start no new runs; a running one finishes.', default: false },
    deleteUntagged: { type: 'boolean', description: 'Also delete manifests that no tag or index references.', default: false },
    dryRun: { type: 'boolean', description: 'Report what would be deleted; delete nothing.', default: false },
    gracePeriod: {
      type: 'string',
      description: 'Blobs younger than this are kept even when unreferenced (they may belong to a push in progress).',
      default: '1h',
      pattern: '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$',
    },
    readOnlyTimeout: {
      type: 'string',
      description: 'The longest the registry stays read-only if the collector dies inside its window.',
      default: '5m',
      pattern: '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$',
    },
    startingDeadlineSeconds: {
      type: 'integer',
      format: 'int64',
      minimum: 0,
      description: 'A run that could not start within this many seconds of its time is skipped.',
    },
    successfulJobsHistoryLimit: { type: 'integer', format: 'int32', minimum: 0, default: 3, description: 'Finished successful Jobs to keep.' },
    failedJobsHistoryLimit: { type: 'integer', format: 'int32', minimum: 0, default: 1, description: 'Failed Jobs to keep.' },
    resources: resourcesSchema,
  },
  additionalProperties: false,
} as const;

/** The status of a GarbageCollection. */
export const garbageCollectionStatusSchema = {
  type: 'object',
  description: 'The observed state of the collections.',
  properties: {
    observedGeneration: observedGenerationSchema,
    lastScheduleTime: { type: 'string', format: 'date-time', description: 'When the last run was scheduled.' },
    nextScheduleTime: { type: 'string', format: 'date-time', description: 'When the next run is due.' },
    lastSuccessfulTime: { type: 'string', format: 'date-time', description: 'When the last successful run finished.' },
    active: {
      type: 'object',
      description: 'The Job running now.',
      properties: {
        name: { type: 'string', description: 'The Job name.' },
        scheduledTime: { type: 'string', format: 'date-time', description: 'The time the run was scheduled for.' },
      },
      additionalProperties: false,
    },
    lastRun: {
      type: 'object',
      description: 'What the last finished run did, from its Job and the summary the collector wrote as its termination message.',
      properties: {
        job: { type: 'string', description: 'The Job of the run.' },
        result: { type: 'string', description: 'Succeeded or Failed.', enum: ['Succeeded', 'Failed'] },
        scheduledTime: { type: 'string', format: 'date-time', description: 'The time the run was scheduled for.' },
        startTime: { type: 'string', format: 'date-time', description: 'When the Job started.' },
        completionTime: { type: 'string', format: 'date-time', description: 'When the Job finished.' },
        dryRun: { type: 'boolean', description: 'The run only reported what it would delete.' },
        manifestsDeleted: { type: 'integer', format: 'int64', description: 'Manifests deleted.' },
        blobsDeleted: { type: 'integer', format: 'int64', description: 'Blobs deleted.' },
        uploadsPurged: { type: 'integer', format: 'int64', description: 'Abandoned uploads purged.' },
        bytesFreed: { type: 'integer', format: 'int64', description: 'Bytes of blob data deleted.' },
        markSeconds: { type: 'number', description: 'How long the online mark took.' },
        readOnlyWindowSeconds: { type: 'number', description: 'How long writes were refused.' },
        sweepSeconds: { type: 'number', description: 'How long the sweep took.' },
        message: { type: 'string', description: 'Why the run failed, from the Job and the collector.', maxLength: 4096 },
      },
      additionalProperties: false,
    },
    conditions: conditionsSchema,
  },
  additionalProperties: false,
} as const;

/** The GarbageCollection spec, as the operator reads it. */
export type GarbageCollectionSpec = FromSchema<typeof garbageCollectionSpecSchema, { keepDefaultedPropertiesOptional: true }>;
/** The GarbageCollection status, as the operator writes it. */
export type GarbageCollectionStatus = FromSchema<typeof garbageCollectionStatusSchema, { keepDefaultedPropertiesOptional: true }>;
