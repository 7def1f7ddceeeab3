import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil, waitUntilExited } from '../../tools/processes.js';
import { startBerth, type BerthProcess } from '../../support/berth-process.js';
import { withQuery } from '../../support/test-registry.js';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('two registry processes sharing one storage directory', () => {
  let root: string;
  let first: BerthProcess;
  let second: BerthProcess;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'berth-shared-'));
    [first, second] = await Promise.all([startBerth({ rootDir: root }), startBerth({ rootDir: root })]);
  });
  afterAll(async () => {
    await Promise.all([first?.stop(), second?.stop()]);
    await rm(root, { recursive: true, force: true });
  });

  it('finish a chunked upload begun on the other: first PATCH to one, the rest and the PUT to the other', async () => {
    const blob = randomBytes(3 * 1024 * 1024 + 17);
    const start = await fetch(`${first.url}/v2/shared/app/blobs/uploads/`, { method: 'POST' });
    expect(start.status).toBe(202);
    let location = start.headers.get('location') as string;
    const cuts = [0, 1024 * 1024, 2 * 1024 * 1024, blob.length];
    for (let i = 0; i < cuts.length - 1; i++) {
      const target = i === 0 ? first : second;
      const chunk = blob.subarray(cuts[i], cuts[i + 1]);
      const patch = await fetch(`${target.url}${location}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${cuts[i]}-${(cuts[i + 1] as number) - 1}` },
        body: chunk,
      });
      expect(patch.status).toBe(202);
      location = patch.headers.get('location') as string;
    }
    const status = await fetch(`${second.url}${location}`);
    expect(status.headers.get('range')).toBe(`0-${blob.length - 1}`);
    const put = await fetch(`${second.url}${withQuery(location, { digest: sha256(blob) })}`, { method: 'PUT' });
    expect(put.status).toBe(201);
    for (const registry of [first, second]) {
      const get = await fetch(`${registry.url}/v2/shared/app/blobs/${sha256(blob)}`);
      expect(sha256(Buffer.from(await get.arrayBuffer()))).toBe(sha256(blob));
    }
  });

  it('rejects a wrong digest even when the finishing process never saw the chunks', async () => {
    const blob = randomBytes(100_000);
    const start = await fetch(`${first.url}/v2/shared/wrong/blobs/uploads/`, { method: 'POST' });
    const patch = await fetch(`${first.url}${start.headers.get('location') as string}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream' },
      body: blob,
    });
    const put = await fetch(`${second.url}${withQuery(patch.headers.get('location') as string, { digest: sha256(randomBytes(10)) })}`, { method: 'PUT' });
    expect(put.status).toBe(400);
    expect(((await put.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('DIGEST_INVALID');
  });
});

describe('a registry process', () => {
  let root: string;
  let registry: BerthProcess;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'berth-ops-'));
    registry = await startBerth({ rootDir: root });
  });
  afterAll(async () => {
    await registry?.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('exposes request, byte, storage and upload metrics on the debug address', async () => {
    const blob = randomBytes(50_000);
    await fetch(`${registry.url}/v2/metrics/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob, headers: { 'content-type': 'application/octet-stream' } });
    await (await fetch(`${registry.url}/v2/metrics/blobs/${sha256(blob)}`)).arrayBuffer();
    await fetch(`${registry.url}/v2/metrics/manifests/missing`);
    const text = await (await fetch(`${registry.debugUrl}/metrics`)).text();
    expect(text).toMatch(/registry_http_requests_total\{method="POST",route="blob_upload_start",status_class="2xx"\} 1/);
    expect(text).toMatch(/registry_http_requests_total\{method="GET",route="manifest",status_class="4xx"\} 1/);
    expect(text).toMatch(/registry_http_request_duration_seconds_bucket\{le="0.1",method="GET",route="blob",status_class="2xx"\}/);
    expect(text).toMatch(/registry_http_received_bytes_total\{route="blob_upload_start"\} 50000/);
    expect(text).toMatch(/registry_http_sent_bytes_total\{route="blob"\} 50000/);
    expect(text).toMatch(/registry_storage_operation_duration_seconds_count\{driver="filesystem",operation="write_stream"\} [1-9]/);
    expect(text).toMatch(/registry_uploads_in_progress 0/);
    expect(text).not.toMatch(/sha256:/);
  });

  it('answers health checks that exercise the storage driver', async () => {
    const health = await fetch(`${registry.debugUrl}/debug/health`);
    expect(health.status).toBe(200);
    expect((await fetch(`${registry.debugUrl}/readyz`)).status).toBe(200);
  });

  it('writes structured JSON logs, one event per line', async () => {
    const { readFile } = await import('node:fs/promises');
    const lines = (await readFile(registry.logFile, 'utf8')).trim().split('\n');
    const events = lines.map((line) => JSON.parse(line) as { msg: string; level: number });
    expect(events.some((event) => event.msg === 'Started registry')).toBe(true);
    expect(events.some((event) => event.msg === 'Served request')).toBe(true);
  });

  it('switches read-only mode when its configuration file changes, without a restart', async () => {
    const { readFile, writeFile } = await import('node:fs/promises');
    const configPath = join(registry.logFile, '..', 'config.yml');
    const original = await readFile(configPath, 'utf8');
    const pid = registry.child.pid;
    await writeFile(configPath, `${original}\n`.replace('storage:\n', 'storage:\n  maintenance:\n    readonly:\n      enabled: true\n'));
    await waitUntil(async () => (await fetch(`${registry.url}/v2/switch/blobs/uploads/`, { method: 'POST' })).status === 405, { timeoutMs: 15_000, what: 'writes refused' });
    expect((await fetch(`${registry.url}/v2/`)).status).toBe(200);
    await writeFile(configPath, original);
    await waitUntil(async () => (await fetch(`${registry.url}/v2/switch/blobs/uploads/`, { method: 'POST' })).status === 202, { timeoutMs: 15_000, what: 'writes accepted' });
    expect(registry.child.pid).toBe(pid);
    expect(registry.child.exitCode).toBeNull();
  });

  it('on SIGTERM stops accepting, finishes the upload in flight, then exits 0', async () => {
    const blob = randomBytes(2 * 1024 * 1024);
    const digest = sha256(blob);
    const response = new Promise<number>((resolve, reject) => {
      const req = request(
        `${registry.url}/v2/drain/blobs/uploads/?digest=${digest}`,
        { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.length) } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.write(blob.subarray(0, 1024 * 1024));
      // Signal while the body is half sent; send the rest a moment later.
      setTimeout(() => {
        registry.child.kill('SIGTERM');
        setTimeout(() => req.end(blob.subarray(1024 * 1024)), 500);
      }, 200);
    });
    expect(await response).toBe(201);
    expect(await waitUntilExited(registry.child, 20_000)).toBe(true);
    expect(registry.child.exitCode).toBe(0);
    await expect(fetch(`${registry.url}/v2/`)).rejects.toThrow();
  });
});
