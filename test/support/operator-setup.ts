/**
 * Readies a test API server for the operator as `helm install` would: the CRDs (established), the operator's
 * namespace, the chart's RBAC and ServiceAccount, and the namespaces the test uses.
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunningKube } from '../tools/kube.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** Installs CRDs and the chart's RBAC, creates `namespaces`; resolves with a kubeconfig for the operator's ServiceAccount. */
export async function prepareForOperator(kube: RunningKube, namespaces: readonly string[]): Promise<string> {
  await kube.kubectl(['apply', '-f', join(ROOT, 'crds')]);
  await kube.kubectl(['wait', '--for=condition=Established', 'crd/registries.berth.dev', 'crd/garbagecollections.berth.dev', '--timeout=60s']);
  for (const namespace of ['berth-system', ...namespaces]) await kube.kubectl(['create', 'namespace', namespace]);
  const rbac = await kube.helm(['template', 'berth', join(ROOT, 'helm/berth'), '--namespace', 'berth-system', '--show-only', 'templates/rbac.yaml', '--show-only', 'templates/serviceaccount.yaml']);
  await kube.kubectl(['apply', '-f', '-'], { input: rbac });
  return kube.kubeconfigFor({ namespace: 'berth-system', name: 'berth-operator' });
}
