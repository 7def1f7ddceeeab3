/**
 * `berth-registry gc` against registry processes that keep serving: the online collection with its short
 * window, the safety nets (a collector killed inside the window, a replica that never acknowledges, two
 * collectors at once), all with real processes on one filesystem store.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBerth, writeBerthConfig, type BerthProcess } from '../../support/berth-process.js';
import { randomBlob, sha256 } from '../../support/test-registry.js';
import { runCommand, waitUntil, waitUntilExited } from '../../tools/processes.js';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let work: string;
let store: string;
let config: string;
let replicas: BerthProcess[] = [];
const markerPath = () => join(store, 'docker/registry/v2/_berth/maintenance');
const startUpload = (target: BerthProcess) => fetch(`${target.url}/v2/probe/blobs/uploads/`, { method: 'POST' });

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'berth-collector-'));
  store = join(work, 'store');
  replicas = await Promise.all([0, 1].map((i) => startBerth({ rootDir: store, workDir: join(work, `replica-${i}`) })));
  config = await writeBerthConfig(work, { storage: { rootDir: store }, port: 1, debugPort: 1 });
}, 60_000);
afterAll(async () => {
  await Promise.all(replicas.map((replica) => replica.stop()));
  await rm(work, { recursive: true, force: true });
});

const replica = (i: number) => replicas[i] as BerthProcess;

async function pushBlob(target: BerthProcess, name: string, blob: Buffer): Promise<Response> {
  return fetch(`${target.url}/v2/${name}/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob, headers: { 'content-type': 'application/octet-stream' } });
}

async function pushImage(target: BerthProcess, name: string, tag: string): Promise<{ digest: string; blobs: string[] }> {
  const config = randomBlob(200);
  const layer = randomBlob(3000);
  for (const blob of [config, layer]) expect((await pushBlob(target, name, blob)).status).toBe(201);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
  });
  const put = await fetch(`${target.url}/v2/${name}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'content-type': OCI_MANIFEST } });
  expect(put.status).toBe(201);
  return { digest: sha256(Buffer.from(manifest)), blobs: [sha256(config), sha256(layer)] };
}

/** Starts `berth-registry gc` on the shared store; resolves with its exit and output when it ends. */
function startGc(args: string[]): { child: ReturnType<typeof spawn>; done: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'registry/cli.ts'), 'gc', config, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolveDone) =>
    child.once('exit', (code, signal) => resolveDone({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

/**
 * Heartbeats for a replica that journals but never acknowledges a window (as one stuck draining a write
 * would); returns how to stop it.
 */
function stuckReplica(id: string): () => Promise<void> {
  const path = join(store, 'docker/registry/v2/_berth/replicas', id);
  const since = Date.now() - 60_000;
  const beat = async () => {
    const marker = await readFile(markerPath(), 'utf8').then((text) => JSON.parse(text) as { epoch: string }, () => undefined);
    // Written whole, as a replica's driver writes it: a temporary file renamed into place.
    await writeFile(`${path}.tmp`, JSON.stringify({ id, at: Date.now(), since, ...(marker ? { journal: { epoch: marker.epoch, batches: 0 } } : {}) }));
    await rename(`${path}.tmp`, path);
  };
  const timer = setInterval(() => void beat().catch(() => undefined), 200);
  void beat();
  return async () => {
    clearInterval(timer);
    await rm(path, { force: true });
  };
}


describe('berth-registry gc beside serving replicas', () => {
  it('collects while the replicas serve, reports its window, and no replica claims a deleted blob afterwards', async () => {
    const kept = await pushImage(replica(0), 'online/app', 'v1');
    const orphan = randomBlob(4096);
    expect((await pushBlob(replica(1), 'online/app', orphan)).status).toBe(201);
    const summaryFile = join(work, 'summary.json');
    const { done } = startGc(['--grace-period', '0s', '--json', summaryFile]);
    const result = await done;
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(await readFile(summaryFile, 'utf8')) as Record<string, number>;
    expect(summary).toMatchObject({ blobsDeleted: 1, bytesFreed: 4096, replicas: 2 });
    expect(summary['readOnlyWindowSeconds']).toBeGreaterThan(0);
    expect(summary['readOnlyWindowSeconds']).toBeLessThan(5);
    expect(result.stderr).toMatch(/read-only window open: 2 replica\(s\) acknowledged/);
    expect(result.stderr).toMatch(/window closed after/);
    for (const target of replicas) {
      expect((await fetch(`${target.url}/v2/online/app/blobs/${sha256(orphan)}`, { method: 'HEAD' })).status).toBe(404);
      for (const digest of kept.blobs) expect((await fetch(`${target.url}/v2/online/app/blobs/${digest}`)).status).toBe(200);
      expect((await fetch(`${target.url}/v2/online/app/manifests/v1`, { headers: { accept: OCI_MANIFEST } })).headers.get('docker-content-digest')).toBe(kept.digest);
    }
    // Each replica writes again once its next look at the marker finds it gone (about a second).
    await waitUntil(async () => (await startUpload(replica(0))).status === 202 && (await startUpload(replica(1))).status === 202, {
      timeoutMs: 3000,
      what: 'the replicas to write again after the window',
    });
    // Pushed again, the blob is really stored again, not taken as already there.
    expect((await pushBlob(replica(0), 'online/app', orphan)).status).toBe(201);
    const dataPath = join(store, 'docker/registry/v2/blobs/sha256', sha256(orphan).slice(7, 9), sha256(orphan).slice(7), 'data');
    expect((await stat(dataPath)).size).toBe(4096);
    await expect(stat(markerPath())).rejects.toThrow();
    for (const target of replicas) {
      const metrics = await (await fetch(`${target.debugUrl}/metrics`)).text();
      expect(metrics).toMatch(/registry_maintenance_windows_total\{outcome="ended"\} 1\n/);
      expect(metrics).toMatch(/registry_maintenance_window 0\n/);
    }
  }, 60_000);

  it('leaves the replicas read-only only until the time-to-live when the collector is killed inside its window, and refuses a second collector meanwhile', async () => {
    const release = stuckReplica('stuck-replica');
    try {
      const { child, done } = startGc(['--grace-period', '0s', '--read-only-timeout', '4s', '--ack-timeout', '60s']);
      // The stuck replica never acknowledges: the collector sits inside its window until we kill it.
      const inWindow = async () => ((await readFile(markerPath(), 'utf8').catch(() => '{}')) as string).includes('"phase":"window"');
      await waitUntil(inWindow, { timeoutMs: 20_000, what: 'the window to open' });
      // Each replica sees the window on its own next look at the marker (within about 100 ms, later under load).
      await waitUntil(async () => (await startUpload(replica(0))).status === 503 && (await startUpload(replica(1))).status === 503, {
        timeoutMs: 5000,
        what: 'both replicas to refuse writes',
      });
      const refusedAt = performance.now();
      const refused = await startUpload(replica(1));
      expect(refused.status).toBe(503);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(((await refused.json()) as { errors: { message: string }[] }).errors[0]?.message).toMatch(/maintenance/);
      expect(await (await fetch(`${replica(1).debugUrl}/metrics`)).text()).toMatch(/registry_maintenance_window 1\n/);

      const second = await runCommand(process.execPath, ['--import', 'tsx', join(ROOT, 'registry/cli.ts'), 'gc', config, '--grace-period', '0s'], { cwd: ROOT, timeoutMs: 30_000 });
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/another garbage collection/);

      child.kill('SIGKILL');
      expect((await done).signal).toBe('SIGKILL');
      expect(await waitUntilExited(child, 1000)).toBe(true);
      // Nobody removes the marker; each replica lets it lapse on its own clock.
      await waitUntil(async () => (await startUpload(replica(0))).status === 202 && (await startUpload(replica(1))).status === 202, {
        timeoutMs: 15_000,
        what: 'the replicas to write again after the time-to-live',
      });
      const readOnlySeconds = (performance.now() - refusedAt) / 1000;
      // Each replica counts the window as expired, not ended: the signal that a collector died.
      for (const target of replicas) {
        expect(await (await fetch(`${target.debugUrl}/metrics`)).text()).toMatch(/registry_maintenance_windows_total\{outcome="expired"\} 1\n/);
      }
      expect(readOnlySeconds).toBeGreaterThan(2);
      expect(readOnlySeconds).toBeLessThan(10);
      expect((await stat(markerPath())).isFile()).toBe(true);
    } finally {
      await release();
      await rm(markerPath(), { force: true });
      await rm(join(store, 'docker/registry/v2/_berth/gc-lock'), { force: true });
    }
  }, 90_000);

  it('gives up and reopens writes when a live replica does not acknowledge in time, naming it', async () => {
    await waitUntil(async () => (await startUpload(replica(0))).status === 202, { timeoutMs: 15_000, what: 'writes to be accepted' });
    const release = stuckReplica('never-acks');
    try {
      const { done } = startGc(['--grace-period', '0s', '--ack-timeout', '2s']);
      const result = await done;
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toMatch(/did not acknowledge the read-only window in time: never-acks/);
      await expect(stat(markerPath())).rejects.toThrow();
      await waitUntil(async () => (await startUpload(replica(0))).status === 202 && (await startUpload(replica(1))).status === 202, {
        timeoutMs: 5000,
        what: 'writes to be accepted again',
      });
    } finally {
      await release();
    }
  }, 60_000);
});
