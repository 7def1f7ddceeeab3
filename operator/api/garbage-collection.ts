/**
 * The GarbageCollection resource as the operator handles it: the spec and status types derived from the
 * schema, with the object's metadata.
 */
import type { GarbageCollectionSpec, GarbageCollectionStatus } from './garbage-collection-schema.js';
import type { API_VERSION } from './registry.js';

/** A GarbageCollection object. */
export interface GarbageCollection {
  readonly apiVersion: typeof API_VERSION;
  readonly kind: 'GarbageCollection';
  readonly metadata: {
    readonly name: string;
    readonly namespace: string;
    readonly uid: string;
    readonly generation?: number;
    readonly creationTimestamp?: string;
    readonly labels?: Record<string, string>;
  };
  readonly spec: GarbageCollectionSpec;
  readonly status?: GarbageCollectionStatus;
}
