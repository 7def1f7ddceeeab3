/**
 * `npm run bench:operator`: how long the operator takes to bring 100 Registry resources to their desired
 * state on a real API server (every child applied and status written), and its peak memory.
 *
 * Environment: BENCH_REGISTRIES (default 100).
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { prepareForOperator } from '../support/operator-setup.js';
import { startKubeApiServer } from '../tools/kube.js';
import { stopProcess } from '../tools/processes.js';
import { freePort } from '../tools/tools.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const COUNT = Number(process.env['BENCH_REGISTRIES'] ?? 100);
const progress = (message: string) => process.stderr.write(`bench:operator: ${message}\n`);

const work = await mkdtemp(join(tmpdir(), 'berth-bench-operator-'));
const kube = await startKubeApiServer();
try {
  const kubeconfig = await prepareForOperator(kube, ['scale']);
  const port = await freePort();
  const log = createWriteStream(join(work, 'operator.log'));
  const operator = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'operator/main.ts'), '--kubeconfig', kubeconfig, '--metrics-addr', `127.0.0.1:${port}`, '--lease-namespace', 'berth-system', '--identity', 'bench'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  operator.stdout?.pipe(log);
  operator.stderr?.pipe(log);
  await sleep(3000);
  const items = Array.from({ length: COUNT }, (_, i) => ({
    apiVersion: 'berth.dev/v1alpha1',
    kind: 'Registry',
    metadata: { name: `r${i}`, namespace: 'scale' },
    spec: { replicas: 2, storage: { s3: { bucket: `bucket-${i}`, region: 'us-east-1' } }, ingress: { host: `r${i}.example.com` } },
  }));
  progress(`creating ${COUNT} Registry resources`);
  const started = performance.now();
  await kube.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }) });
  for (;;) {
    const list = JSON.parse(await kube.kubectl(['get', 'registries', '-n', 'scale', '-o', 'json'])) as { items: { status?: { conditions?: unknown[] } }[] };
    const done = list.items.filter((r) => (r.status?.conditions?.length ?? 0) > 0).length;
    const deployments = (await kube.kubectl(['get', 'deployments', '-n', 'scale', '-o', 'name'])).trim().split('\n').filter(Boolean).length;
    progress(`${done}/${COUNT} with status, ${deployments} Deployments`);
    if (done === COUNT && deployments === COUNT) break;
    await sleep(500);
  }
  const seconds = (performance.now() - started) / 1000;
  const status = await readFile(`/proc/${operator.pid}/status`, 'utf8');
  const peak = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
  process.stdout.write(`\n| Registries | time to desired state | operator peak RSS |\n|---|---|---|\n| ${COUNT} | ${seconds.toFixed(1)} s | ${peak.toFixed(0)} MiB |\n`);
  await stopProcess(operator);
} finally {
  await kube.stop();
  await rm(work, { recursive: true, force: true });
}
