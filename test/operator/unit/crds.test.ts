import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { allCrds } from '../../../operator/api/crds.js';
import { renderCrd } from '../../../operator/api/render-crds.js';
import { resourcePath, resourceType } from '../../../operator/kube/resources.js';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

type SchemaNode = { type?: string; description?: string; properties?: Record<string, SchemaNode>; items?: SchemaNode; additionalProperties?: SchemaNode | boolean };

/** Every schema path below `spec` and `status` that has no description. */
function undescribed(node: SchemaNode, path: string): string[] {
  const missing = node.description === undefined ? [path] : [];
  for (const [name, child] of Object.entries(node.properties ?? {})) missing.push(...undescribed(child, `${path}.${name}`));
  if (node.items) missing.push(...undescribed(node.items, `${path}[]`));
  if (typeof node.additionalProperties === 'object') missing.push(...undescribed(node.additionalProperties, `${path}{}`));
  return missing;
}

describe('the custom resource definitions', () => {
  it.each(allCrds().map(({ file, crd }) => [file, crd] as const))('crds/%s and the chart copy are exactly what the schema source generates (run npm run crds)', async (file, crd) => {
    expect(await readFile(join(ROOT, 'crds', file), 'utf8')).toBe(renderCrd(crd));
    expect(await readFile(join(ROOT, 'helm/berth/crds', file), 'utf8')).toBe(renderCrd(crd));
  });

  it.each(allCrds().map(({ file, crd }) => [file, crd] as const))('%s describes every field of spec and status', (_file, crd) => {
    const root = (crd as { spec: { versions: { schema: { openAPIV3Schema: SchemaNode } }[] } }).spec.versions[0]?.schema.openAPIV3Schema;
    const properties = root?.properties ?? {};
    expect([...undescribed(properties['spec'] as SchemaNode, 'spec'), ...undescribed(properties['status'] as SchemaNode, 'status')]).toEqual([]);
  });
});

describe('REST paths of the kinds the operator touches', () => {
  it.each([
    ['v1', 'ConfigMap', { namespace: 'ns', name: 'c' }, '/api/v1/namespaces/ns/configmaps/c'],
    ['apps/v1', 'Deployment', { namespace: 'ns', name: 'd', subresource: 'status' }, '/apis/apps/v1/namespaces/ns/deployments/d/status'],
    ['berth.dev/v1alpha1', 'Registry', { namespace: 'ns' }, '/apis/berth.dev/v1alpha1/namespaces/ns/registries'],
    ['apiextensions.k8s.io/v1', 'CustomResourceDefinition', { namespace: 'ignored', name: 'registries.berth.dev' }, '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/registries.berth.dev'],
  ] as const)('%s %s', (apiVersion, kind, options, expected) => {
    expect(resourcePath(resourceType(apiVersion, kind), options)).toBe(expected);
  });

  it('refuses a kind it does not know', () => {
    expect(() => resourceType('v1', 'ReplicationController')).toThrow(/does not know/);
  });
});
