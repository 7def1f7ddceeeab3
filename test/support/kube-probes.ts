/**
 * How the operator's integration tests look at the cluster: objects read loosely as kubectl prints them, and
 * waits that show the operator's logs when they time out.
 */
import type { RunningKube } from '../tools/kube.js';
import { waitUntil } from '../tools/processes.js';

/** kubectl's JSON, read loosely in tests. */
export type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- kubectl's JSON, read loosely in tests

/** Probes bound to a cluster, a default namespace and what to show when a wait times out. */
export interface KubeProbes {
  /** The object as `kubectl get -o json` prints it, or undefined when there is none. */
  getJson(kind: string, name: string, namespace?: string): Promise<Json | undefined>;
  /** Waits until `probe` gives a value (not undefined or false) and resolves with it. */
  eventually<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs?: number): Promise<T>;
}

/** Makes the probes; `describe` tells what to print when a wait times out (the operators' logs). */
export function kubeProbes(kube: () => RunningKube, namespace: string, describe: () => Promise<string>): KubeProbes {
  return {
    async getJson(kind, name, ns = namespace) {
      try {
        return JSON.parse(await kube().kubectl(['get', kind, name, '-n', ns, '-o', 'json'])) as Json;
      } catch {
        return undefined;
      }
    },
    async eventually<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
      let value: T | undefined | false;
      await waitUntil(async () => Boolean((value = await probe())), { timeoutMs, intervalMs: 200, what, describe });
      return value as T;
    },
  };
}
