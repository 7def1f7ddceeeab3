/**
 * The Registry resource as the operator handles it: the spec and status types derived from the schema,
 * with the object's metadata.
 */
import type { RegistrySpec, RegistryStatus } from './registry-schema.js';
import { GROUP, VERSION } from './crds.js';

/** The apiVersion of Berth's kinds. */
export const API_VERSION = `${GROUP}/${VERSION}`;

/** A Registry object. */
export interface Registry {
  readonly apiVersion: typeof API_VERSION;
  readonly kind: 'Registry';
  readonly metadata: {
    readonly name: string;
    readonly namespace: string;
    readonly uid: string;
    readonly generation?: number;
    readonly labels?: Record<string, string>;
  };
  readonly spec: RegistrySpec;
  readonly status?: RegistryStatus;
}
