import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeProbes, type Json } from '../../support/kube-probes.js';
import { prepareForOperator } from '../../support/operator-setup.js';
import { startKubeApiServer, type RunningKube } from '../../tools/kube.js';
import { stopProcess, tailFile, waitUntil } from '../../tools/processes.js';
import { freePort } from '../../tools/tools.js';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const NS = 'apps';

interface Operator {
  readonly child: ChildProcess;
  readonly metricsUrl: string;
  readonly logFile: string;
}


describe('the Registry controller against a real API server, with the RBAC rules the chart ships', () => {
  let kube: RunningKube;
  let work: string;
  let operatorKubeconfig: string;
  const operators: Operator[] = [];

  async function startOperator(identity: string): Promise<Operator> {
    const port = await freePort();
    const logFile = join(work, `${identity}.log`);
    const log = createWriteStream(logFile);
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'operator/main.ts'), '--kubeconfig', operatorKubeconfig, '--metrics-addr', `127.0.0.1:${port}`, '--lease-namespace', 'berth-system', '--identity', identity],
      // Watches end every 1-2 s, so every test also proves the operator resumes them.
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BERTH_WATCH_TIMEOUT_SECONDS: '1' } },
    );
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    const operator = { child, metricsUrl: `http://127.0.0.1:${port}`, logFile };
    operators.push(operator);
    await waitUntil(async () => (await fetch(`${operator.metricsUrl}/healthz`).catch(() => undefined))?.ok === true, {
      timeoutMs: 30_000,
      what: `operator ${identity} to answer /healthz`,
      describe: () => tailFile(logFile),
    });
    return operator;
  }

  const { getJson, eventually } = kubeProbes(
    () => kube,
    NS,
    async () => (await Promise.all(operators.map((o) => tailFile(o.logFile, 15)))).join('\n---\n'),
  );

  const condition = (registry: Json | undefined, type: string) => (registry?.status?.conditions as Json[] | undefined)?.find((c) => c.type === type);

  function registryYaml(name: string, spec: object): string {
    return JSON.stringify({ apiVersion: 'berth.dev/v1alpha1', kind: 'Registry', metadata: { name, namespace: NS }, spec });
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-operator-'));
    kube = await startKubeApiServer();
    operatorKubeconfig = await prepareForOperator(kube, [NS]);
    await startOperator('operator-a');
  }, 300_000);

  afterAll(async () => {
    for (const operator of operators) await stopProcess(operator.child);
    await kube?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('creates every child of a Registry with an owner reference, and reports status and conditions', async () => {
    await kube.kubectl(['create', 'secret', 'generic', 's3-creds', '-n', NS, '--from-literal=accessKey=a', '--from-literal=secretKey=b']);
    await kube.kubectl(['apply', '-f', '-'], {
      input: registryYaml('team', { replicas: 3, storage: { s3: { bucket: 'images', region: 'us-east-1', credentialsSecret: { name: 's3-creds' } } }, ingress: { host: 'registry.example.com' } }),
    });
    for (const kind of ['secret', 'configmap', 'deployment', 'service', 'ingress', 'poddisruptionbudget']) {
      const child = await eventually(`${kind} team-registry`, () => getJson(kind, 'team-registry'));
      expect(child.metadata.ownerReferences[0]).toMatchObject({ kind: 'Registry', name: 'team', controller: true });
    }
    const registry = await eventually('Registry status', async () => {
      const r = await getJson('registry', 'team');
      return condition(r, 'Progressing') ? r : undefined;
    });
    expect(registry.status.url).toBe('http://registry.example.com');
    expect(condition(registry, 'Available')?.status).toBe('False');
    expect(condition(registry, 'Degraded')?.status).toBe('False');
    expect(registry.status.observedGeneration).toBe(registry.metadata.generation);
  }, 120_000);

  it('follows the Deployment status a kubelet would write: Available, rolled out, ready replicas', async () => {
    const deployment = await eventually('deployment', () => getJson('deployment', 'team-registry'));
    await kube.kubectl([
      'patch', 'deployment', 'team-registry', '-n', NS, '--subresource=status', '--type=merge',
      '-p', JSON.stringify({ status: { observedGeneration: deployment.metadata.generation, replicas: 3, readyReplicas: 3, updatedReplicas: 3, availableReplicas: 3 } }),
    ]);
    const registry = await eventually('Registry Available', async () => {
      const r = await getJson('registry', 'team');
      return condition(r, 'Available')?.status === 'True' && condition(r, 'Progressing')?.status === 'False' ? r : undefined;
    });
    expect(registry.status.readyReplicas).toBe(3);
    expect(condition(registry, 'Available')?.reason).toBe('MinimumReplicasAvailable');
  }, 120_000);

  it('rolls the pods exactly when the configuration changes, not for replicas, and switches read-only without a roll', async () => {
    const checksum = async () => (await getJson('deployment', 'team-registry'))?.spec.template.metadata.annotations['berth.dev/config-checksum'] as string;
    const before = await checksum();
    await kube.kubectl(['patch', 'registry', 'team', '-n', NS, '--type=merge', '-p', '{"spec":{"replicas":4}}']);
    await eventually('4 replicas', async () => (await getJson('deployment', 'team-registry'))?.spec.replicas === 4);
    expect(await checksum()).toBe(before);
    await kube.kubectl(['patch', 'registry', 'team', '-n', NS, '--type=merge', '-p', '{"spec":{"readOnly":true}}']);
    await eventually('read-only in the config', async () => /readonly:\n\s+enabled: true/.test((await getJson('configmap', 'team-registry'))?.data['config.yml'] ?? ''));
    expect(await checksum()).toBe(before);
    await kube.kubectl(['patch', 'registry', 'team', '-n', NS, '--type=merge', '-p', '{"spec":{"storage":{"deleteEnabled":false}}}']);
    const after = await eventually('a new checksum', async () => ((await checksum()) !== before ? checksum() : undefined));
    expect(after).not.toBe(before);
  }, 120_000);

  it('creates a ServiceMonitor once the Prometheus operator CRD exists', async () => {
    expect(await getJson('servicemonitor', 'team-registry').catch(() => undefined)).toBeUndefined();
    const crd = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'servicemonitors.monitoring.coreos.com' },
      spec: {
        group: 'monitoring.coreos.com',
        names: { kind: 'ServiceMonitor', plural: 'servicemonitors', singular: 'servicemonitor', listKind: 'ServiceMonitorList' },
        scope: 'Namespaced',
        versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
      },
    };
    await kube.kubectl(['apply', '-f', '-'], { input: JSON.stringify(crd) });
    await kube.kubectl(['wait', '--for=condition=Established', 'crd/servicemonitors.monitoring.coreos.com', '--timeout=60s']);
    await kube.kubectl(['patch', 'registry', 'team', '-n', NS, '--type=merge', '-p', '{"metadata":{"annotations":{"touch":"1"}}}']);
    const monitor = await eventually('a ServiceMonitor', () => getJson('servicemonitor', 'team-registry'));
    expect(monitor.spec.endpoints[0].port).toBe('metrics');
  }, 120_000);

  it('keeps the HTTP secret it made across reconciles, so the pods do not roll for it', async () => {
    const secret = await eventually('the HTTP secret', () => getJson('secret', 'team-registry'));
    const value = Buffer.from(secret.data.httpSecret as string, 'base64').toString();
    expect(value.length).toBeGreaterThanOrEqual(32);
    const checksum = (await getJson('deployment', 'team-registry'))?.spec.template.metadata.annotations['berth.dev/config-checksum'];
    // Two reconciles later (scaled up, then back), the same secret and the same pod template.
    for (const replicas of [5, 4]) {
      await kube.kubectl(['patch', 'registry', 'team', '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: { replicas } })]);
      await eventually(`${replicas} replicas`, async () => (await getJson('deployment', 'team-registry'))?.spec.replicas === replicas);
    }
    expect(Buffer.from((await getJson('secret', 'team-registry'))?.data.httpSecret as string, 'base64').toString()).toBe(value);
    expect((await getJson('deployment', 'team-registry'))?.spec.template.metadata.annotations['berth.dev/config-checksum']).toBe(checksum);
  }, 120_000);

  it('brings back a deleted child and reverts an out-of-band edit', async () => {
    await kube.kubectl(['delete', 'service', 'team-registry', '-n', NS, '--wait=false']);
    await eventually('the Service back', () => getJson('service', 'team-registry'));
    await kube.kubectl(['patch', 'deployment', 'team-registry', '-n', NS, '--type=merge', '-p', '{"spec":{"replicas":9}}']);
    await eventually('replicas reverted to 4', async () => (await getJson('deployment', 'team-registry'))?.spec.replicas === 4);
  }, 120_000);

  it('reports a missing credentials Secret as Degraded, and recovers by itself when it appears', async () => {
    await kube.kubectl(['apply', '-f', '-'], {
      input: registryYaml('waiting', { replicas: 2, storage: { s3: { bucket: 'images', region: 'us-east-1', credentialsSecret: { name: 'later' } } } }),
    });
    const degraded = await eventually('Degraded', async () => {
      const r = await getJson('registry', 'waiting');
      return condition(r, 'Degraded')?.status === 'True' ? condition(r, 'Degraded') : undefined;
    });
    expect(degraded.reason).toBe('SecretNotFound');
    expect(degraded.message).toContain('later');
    const warning = await eventually('a Warning event', async () => {
      const events = JSON.parse(await kube.kubectl(['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=waiting', '-o', 'json'])) as Json;
      return (events.items as Json[]).find((e) => e.type === 'Warning' && e.reason === 'SecretNotFound');
    });
    expect(warning.source.component).toBe('berth-operator');
    await kube.kubectl(['create', 'secret', 'generic', 'later', '-n', NS, '--from-literal=accessKey=a', '--from-literal=secretKey=b']);
    await eventually('recovered', async () => condition(await getJson('registry', 'waiting'), 'Degraded')?.status === 'False');
    expect(await getJson('deployment', 'waiting-registry')).toBeDefined();
  }, 120_000);

  it.each([
    ['more than one replica on a filesystem', { replicas: 2, storage: { filesystem: {} } }, 'more than one replica requires shared object storage'],
    ['two storage backends', { storage: { filesystem: {}, s3: { bucket: 'abc', region: 'r' } } }, 'exactly one storage backend'],
    ['no storage backend', { storage: {} }, 'exactly one storage backend'],
  ])('has the API server reject a Registry with %s, with the CEL message', async (_label, spec, message) => {
    await expect(kube.kubectl(['apply', '-f', '-'], { input: registryYaml('invalid', spec) })).rejects.toThrow(message);
  });

  it('accepts the example resources of test/fixtures as they are, with the schema defaults filled in', async () => {
    await kube.kubectl(['apply', '-f', join(ROOT, 'test/fixtures/registry.yaml'), '-f', join(ROOT, 'test/fixtures/garbage-collection.yaml')]);
    const gc = await getJson('garbagecollection', 'nightly');
    expect(gc?.spec).toMatchObject({ suspend: false, dryRun: false, deleteUntagged: false, successfulJobsHistoryLimit: 3, failedJobsHistoryLimit: 1 });
    const registry = await getJson('registry', 'team');
    expect(registry?.spec.image).toBe('ghcr.io/berth-dev/berth:0.1.0');
    await kube.kubectl(['delete', 'garbagecollection', 'nightly', '-n', NS]);
  });

  it('has the API server reject a GarbageCollection whose schedule is not a cron expression', async () => {
    const gc = (schedule: string) => JSON.stringify({ apiVersion: 'berth.dev/v1alpha1', kind: 'GarbageCollection', metadata: { name: 'nightly', namespace: NS }, spec: { registryRef: { name: 'team' }, schedule } });
    await expect(kube.kubectl(['apply', '-f', '-'], { input: gc('every night') })).rejects.toThrow('five-field cron expression');
    await kube.kubectl(['apply', '-f', '-'], { input: gc('0 3 * * 1-5') });
  });

  it('runs with no more privilege than it needs: the ServiceAccount cannot list or read-write Secrets or touch other kinds', async () => {
    const as = ['--as', 'system:serviceaccount:berth-system:berth-operator'];
    const can = async (...args: string[]) => (await kube.kubectl(['auth', 'can-i', ...args, ...as]).catch((e: Error) => e.message)).trim();
    expect(await can('get', 'secrets', '-n', NS)).toBe('yes');
    expect(await can('list', 'secrets', '-n', NS)).toMatch(/no/);
    expect(await can('update', 'secrets', '-n', NS)).toMatch(/no/);
    expect(await can('create', 'pods', '-n', NS)).toMatch(/no/);
    expect(await can('delete', 'registries.berth.dev', '-n', NS)).toMatch(/no/);
    expect(await can('patch', 'registries.berth.dev', '--subresource=status', '-n', NS)).toBe('yes');
  });

  it('exposes reconcile and queue metrics', async () => {
    const text = await (await fetch(`${operators[0]?.metricsUrl}/metrics`)).text();
    expect(text).toMatch(/berth_operator_reconcile_total\{controller="registry",result="(success|requeue_after)"\} [1-9]/);
    expect(text).toMatch(/berth_operator_reconcile_duration_seconds_count\{controller="registry"\} [1-9]/);
    expect(text).toMatch(/berth_operator_workqueue_depth\{controller="registry"\}/);
    expect(text).toMatch(/^berth_operator_leader 1$/m);
  });

  it('reconnects after the API server restarts and reconciles what changed meanwhile', async () => {
    await kube.restart();
    await kube.kubectl(['apply', '-f', '-'], {
      input: registryYaml('after-restart', { storage: { s3: { bucket: 'images', region: 'us-east-1' } } }),
    });
    await eventually('children of a Registry created after the restart', () => getJson('deployment', 'after-restart-registry'), 60_000);
  }, 120_000);

  it('elects one leader among two operators, and the other takes over within the lease when it is killed', async () => {
    const second = await startOperator('operator-b');
    const leaderGauge = async (operator: Operator) =>
      /^berth_operator_leader (\d)$/m.exec(await (await fetch(`${operator.metricsUrl}/metrics`)).text())?.[1];
    const first = operators[0] as Operator;
    // Exactly one of the two leads (either may: the first's lease can have lapsed during the restart above).
    const gauges = await eventually('exactly one leader', async () => {
      const values = [await leaderGauge(first), await leaderGauge(second)];
      return values.filter((v) => v === '1').length === 1 ? values : undefined;
    });
    const [leader, follower, followerName] = gauges[0] === '1' ? [first, second, 'operator-b'] : [second, first, 'operator-a'];
    const leaderName = followerName === 'operator-b' ? 'operator-a' : 'operator-b';
    expect((await getJson('lease', 'berth-operator', 'berth-system'))?.spec.holderIdentity).toBe(leaderName);
    leader.child.kill('SIGKILL');
    await eventually(`${followerName} to lead`, async () => (await leaderGauge(follower)) === '1', 40_000);
    await kube.kubectl(['apply', '-f', '-'], { input: registryYaml('after-failover', { storage: { s3: { bucket: 'images', region: 'us-east-1' } } }) });
    await eventually('children reconciled by the new leader', () => getJson('deployment', 'after-failover-registry'));
    expect((await getJson('lease', 'berth-operator', 'berth-system'))?.spec.holderIdentity).toBe(followerName);
    // SIGTERM releases the Lease, so a successor needs no lease duration to take over.
    follower.child.kill('SIGTERM');
    await eventually('a clean exit', async () => follower.child.exitCode === 0);
    expect((await getJson('lease', 'berth-operator', 'berth-system'))?.spec.holderIdentity ?? null).toBeNull();
  }, 120_000);
});
