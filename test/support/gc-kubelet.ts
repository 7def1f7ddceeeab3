/**
 * Plays the kubelet and the Job controller for a garbage-collection Job on a test API server, which has
 * neither: it creates the Job's pod from the Job's template, runs the pod's one container here as
 * `node --import tsx registry/cli.ts <args>` (the registry image's entry point, from this working tree), and
 * writes the pod's and the Job's status as the kubelet and the Job controller would (termination message,
 * exit code, Complete or Failed).
 *
 * Mounts become local directories: a configMap volume gets its ConfigMap's files, an emptyDir a fresh
 * directory, any other volume (the registry's PersistentVolumeClaim) the directory the caller gives for it;
 * the container's paths under each mount, in its arguments and in its config files, are rewritten to the
 * local directory, and the termination message path to a local file. Environment variables from Secrets
 * are read from the Secrets.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunningKube } from '../tools/kube.js';
import { runCommand } from '../tools/processes.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- API objects, read loosely in tests

/** The kubelet keeps at most this much of a termination message, from its end. */
const MAX_TERMINATION_MESSAGE_BYTES = 4096;
/** With FallbackToLogsOnError, the kubelet takes at most this many lines and bytes from the end of the log. */
const FALLBACK_LOG_LINES = 80;
const FALLBACK_LOG_BYTES = 2048;

/** What one played run did. */
export interface PlayedRun {
  readonly pod: string;
  readonly exitCode: number;
  /** The termination message the kubelet would report. */
  readonly message: string;
  readonly stdout: string;
  readonly stderr: string;
}

/** Where the played pod's volumes live on this machine. */
export interface KubeletOptions {
  /** Local directories for volumes that are neither configMap nor emptyDir, by volume name. */
  readonly volumes: Readonly<Record<string, string>>;
  /** A scratch directory for mounts and the termination message. */
  readonly work: string;
  /** The repository root, where registry/cli.ts is. */
  readonly root: string;
}

async function getJson(kube: RunningKube, kind: string, name: string, namespace: string): Promise<Json> {
  return JSON.parse(await kube.kubectl(['get', kind, name, '-n', namespace, '-o', 'json'])) as Json;
}

async function patchStatus(kube: RunningKube, kind: string, name: string, namespace: string, status: object): Promise<void> {
  await kube.kubectl(['patch', kind, name, '-n', namespace, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
}

function tailBytes(text: string, max: number): string {
  const bytes = Buffer.from(text, 'utf8');
  return bytes.length <= max ? text : bytes.subarray(bytes.length - max).toString('utf8');
}

/** The kubelet's termination message: the file, else (FallbackToLogsOnError, failed, empty file) the end of the log. */
function terminationMessage(file: string, policy: string | undefined, exitCode: number, log: string): string {
  if (file.length > 0 || policy !== 'FallbackToLogsOnError' || exitCode === 0) return tailBytes(file, MAX_TERMINATION_MESSAGE_BYTES);
  return tailBytes(log.split('\n').slice(-FALLBACK_LOG_LINES).join('\n'), FALLBACK_LOG_BYTES);
}

/**
 * Runs the Job `jobName` in `namespace` once, as the kubelet and the Job controller would, and resolves with
 * what the run did once the pod's and the Job's status say so.
 */
export async function playJobRun(kube: RunningKube, namespace: string, jobName: string, options: KubeletOptions): Promise<PlayedRun> {
  const job = await getJson(kube, 'job', jobName, namespace);
  const template = job.spec.template as Json;
  const container = template.spec.containers[0] as Json;
  const startedAt = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

  // The Job controller: a pod from the template, owned by the Job; the Job is active.
  const podName = `${jobName}-${randomBytes(3).toString('hex').slice(0, 5)}`;
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName,
      namespace,
      labels: template.metadata.labels,
      annotations: template.metadata.annotations,
      ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: jobName, uid: job.metadata.uid, controller: true, blockOwnerDeletion: true }],
    },
    spec: { ...template.spec, nodeName: 'played-node' },
  };
  await kube.kubectl(['create', '-f', '-'], { input: JSON.stringify(pod) });
  await patchStatus(kube, 'job', jobName, namespace, { startTime: startedAt, active: 1, ready: 0 });

  // The kubelet: mount the volumes here, resolve the environment, run the container.
  const dir = await mkdtemp(join(options.work, `${podName}-`));
  const mounts: [string, string][] = [];
  for (const mount of container.volumeMounts as Json[]) {
    const volume = (template.spec.volumes as Json[]).find((v) => v.name === mount.name);
    if (volume === undefined) throw new Error(`pod template mounts ${mount.name}, which is not a volume`);
    let local: string;
    if (volume.configMap !== undefined) {
      local = join(dir, mount.name);
      await mkdir(local);
      const configMap = await getJson(kube, 'configmap', volume.configMap.name, namespace);
      for (const [file, content] of Object.entries(configMap.data as Record<string, string>)) await writeFile(join(local, file), content);
    } else if (volume.emptyDir !== undefined) {
      local = join(dir, mount.name);
      await mkdir(local);
    } else {
      const given = options.volumes[mount.name];
      if (given === undefined) throw new Error(`no local directory given for volume ${mount.name}`);
      local = given;
    }
    mounts.push([mount.mountPath as string, local]);
  }
  const terminationPath = (container.terminationMessagePath as string | undefined) ?? '/dev/termination-log';
  const terminationFile = join(dir, 'termination-log');
  await writeFile(terminationFile, '');
  // One pass, longest path first, only where a path starts (a local path is never rewritten again).
  const table = new Map<string, string>([[terminationPath, terminationFile], ...mounts]);
  const escape = (path: string) => path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const alternatives = [...table.keys()].sort((a, b) => b.length - a.length).map(escape).join('|');
  const pattern = new RegExp(`(?<=^|[\\s"'=:])(${alternatives})(?=/|[\\s"']|$)`, 'gm');
  const toLocal = (text: string) => text.replace(pattern, (path) => table.get(path) ?? path);
  for (const [mountPath, local] of mounts) {
    const volume = (template.spec.volumes as Json[]).find((v) => (container.volumeMounts as Json[]).some((m) => m.name === v.name && m.mountPath === mountPath));
    if (volume?.configMap === undefined) continue;
    for (const file of await readdir(local)) await writeFile(join(local, file), toLocal(await readFile(join(local, file), 'utf8')));
  }
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '', HOME: dir };
  for (const variable of (container.env ?? []) as Json[]) {
    if (variable.value !== undefined) env[variable.name] = variable.value;
    const ref = variable.valueFrom?.secretKeyRef;
    if (ref !== undefined) {
      const secret = await getJson(kube, 'secret', ref.name, namespace);
      env[variable.name] = Buffer.from(secret.data[ref.key] as string, 'base64').toString('utf8');
    }
  }
  const args = (container.args as string[]).map(toLocal);
  const result = await runCommand(process.execPath, ['--import', 'tsx', join(options.root, 'registry/cli.ts'), ...args], { cwd: options.root, env, timeoutMs: 120_000 });
  const exitCode = result.code ?? 137;
  const message = terminationMessage(await readFile(terminationFile, 'utf8'), container.terminationMessagePolicy, exitCode, `${result.stdout}${result.stderr}`);
  const finishedAt = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

  // The kubelet reports the container's end; the Job controller then finishes the Job.
  await patchStatus(kube, 'pod', podName, namespace, {
    phase: exitCode === 0 ? 'Succeeded' : 'Failed',
    startTime: startedAt,
    containerStatuses: [
      {
        name: container.name,
        image: container.image,
        imageID: '',
        ready: false,
        restartCount: 0,
        started: false,
        state: { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', message, startedAt, finishedAt } },
      },
    ],
  });
  const succeeded = exitCode === 0;
  const conditionTime = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const condition = (type: string, reason: string, text: string) => ({ type, status: 'True', reason, message: text, lastProbeTime: conditionTime, lastTransitionTime: conditionTime });
  await patchStatus(
    kube,
    'job',
    jobName,
    namespace,
    succeeded
      ? {
          active: 0,
          ready: 0,
          succeeded: 1,
          completionTime: conditionTime,
          conditions: [condition('SuccessCriteriaMet', 'CompletionsReached', 'Reached expected number of succeeded pods'), condition('Complete', 'CompletionsReached', 'Reached expected number of succeeded pods')],
        }
      : {
          active: 0,
          ready: 0,
          failed: 1,
          conditions: [condition('FailureTarget', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit'), condition('Failed', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit')],
        },
  );
  return { pod: podName, exitCode, message, stdout: result.stdout, stderr: result.stderr };
}
