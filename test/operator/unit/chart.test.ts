import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { runChecked } from '../../tools/processes.js';
import { toolPath } from '../../tools/tools.js';

const CHART = join(resolve(fileURLToPath(new URL('../../..', import.meta.url))), 'helm/berth');

describe('the Helm chart', () => {
  it('passes helm lint', async () => {
    expect(await runChecked(toolPath('helm'), ['lint', CHART])).toMatch(/0 chart\(s\) failed/);
  });

  it('renders the operator Deployment, its ServiceAccount and RBAC into the release namespace', async () => {
    const rendered = await runChecked(toolPath('helm'), ['template', 'berth', CHART, '--namespace', 'registry-ops']);
    const objects = parseAllDocuments(rendered).map((document) => document.toJS() as { kind: string; metadata: { namespace?: string } } | null).filter((o) => o !== null);
    expect(objects.map((o) => o.kind).sort()).toEqual(['ClusterRole', 'ClusterRoleBinding', 'Deployment', 'Role', 'RoleBinding', 'ServiceAccount']);
    for (const object of objects.filter((o) => !o.kind.startsWith('Cluster'))) expect(object.metadata.namespace).toBe('registry-ops');
  });
});
