/**
 * The conformance suite as Berth runs it: every workflow, two namespaces for cross-mounts, and the
 * spec's main branch (upload cancel, digest headers and ?tag= on manifest PUT are tested too).
 */
import { runConformance, type ConformanceResult } from '../tools/conformance.js';

/** Runs the conformance suite against a registry URL, writing its results under `workdir`. */
export function runBerthConformance(url: string, workdir: string): Promise<ConformanceResult> {
  return runConformance({
    url,
    namespace: 'conformance/one',
    crossmountNamespace: 'conformance/two',
    workdir,
    env: { OCI_VERSION: 'dev' },
  });
}
