/**
 * Kubernetes Events about Berth's objects, as `kubectl describe` shows them. Best effort: a failure to record
 * one is logged and never fails a reconcile.
 */
import { randomBytes } from 'node:crypto';
import type { KubeClient } from '../kube/client.js';

/** The object an Event is about. */
export interface InvolvedObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
}

/** Normal or Warning. */
export type EventType = 'Normal' | 'Warning';

/** Records one Event about `involved`, from the component berth-operator. */
export async function recordEvent(
  kube: KubeClient,
  log: { error(fields: object, message: string): void },
  involved: InvolvedObject,
  event: { type: EventType; reason: string; message: string; now: Date },
): Promise<void> {
  const now = event.now.toISOString();
  await kube
    .create({
      apiVersion: 'v1',
      kind: 'Event',
      // Unique per Event, as client-go names them: the object's name, then a time-ordered suffix.
      metadata: { name: `${involved.name}.${event.now.getTime().toString(36)}${randomBytes(3).toString('hex')}`, namespace: involved.namespace },
      involvedObject: involved,
      reason: event.reason,
      message: event.message,
      type: event.type,
      source: { component: 'berth-operator' },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    })
    .catch((error: unknown) => log.error({ err: error, reason: event.reason }, 'Failed to record an Event'));
}
