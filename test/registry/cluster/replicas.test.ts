import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBerthConformance } from '../../support/conformance.js';
import { buildMultiLayerImage, startDockerd, type Dockerd } from '../../tools/docker.js';
import { runChecked } from '../../tools/processes.js';
import { toolPath } from '../../tools/tools.js';
import { startCluster, type Cluster } from '../../support/cluster.js';
import { writeMultiPlatformLayout } from '../../support/oci-layout.js';
import { withQuery } from '../../support/test-registry.js';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Requests each replica has answered, from its own metrics. */
async function requestsPerReplica(cluster: Cluster): Promise<number[]> {
  return Promise.all(
    cluster.replicas.map(async (replica) => {
      const text = await (await fetch(`${replica.debugUrl}/metrics`)).text();
      return [...text.matchAll(/^registry_http_requests_total\{[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    }),
  );
}

describe('three registry replicas on one S3 bucket behind nginx round-robin', () => {
  let work: string;
  let cluster: Cluster;
  let dockerd: Dockerd;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-replicas-'));
    [cluster, dockerd] = await Promise.all([startCluster({ replicas: 3 }), startDockerd()]);
  });
  afterAll(async () => {
    await Promise.all([cluster?.stop(), dockerd?.stop()]);
    await rm(work, { recursive: true, force: true });
  });

  it('completes a chunked upload whose chunks land on different replicas, and serves it verified', async () => {
    const blob = randomBytes(12 * 1024 * 1024 + 5);
    const before = await requestsPerReplica(cluster);
    const start = await fetch(`${cluster.url}/v2/spread/blobs/uploads/`, { method: 'POST' });
    let location = start.headers.get('location') as string;
    const chunk = 3 * 1024 * 1024;
    for (let offset = 0; offset < blob.length; offset += chunk) {
      const body = blob.subarray(offset, offset + chunk);
      const patch = await fetch(new URL(location, cluster.url), {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + body.length - 1}` },
        body,
      });
      expect(patch.status, await patch.clone().text()).toBe(202);
      location = patch.headers.get('location') as string;
    }
    const put = await fetch(new URL(withQuery(location, { digest: sha256(blob) }), cluster.url), { method: 'PUT' });
    expect(put.status, await put.clone().text()).toBe(201);
    const after = await requestsPerReplica(cluster);
    expect(after.every((count, i) => count > (before[i] ?? 0))).toBe(true);
    for (const replica of cluster.replicas) {
      const get = await fetch(`${replica.url}/v2/spread/blobs/${sha256(blob)}`);
      expect(sha256(Buffer.from(await get.arrayBuffer()))).toBe(sha256(blob));
    }
  }, 120_000);

  it('passes the OCI conformance suite through the load balancer', async () => {
    const result = await runBerthConformance(cluster.url, join(work, 'conformance'));
    expect(result.failures, result.failures.join('\n')).toEqual([]);
    expect(result.passed).toBeGreaterThan(500);
  }, 600_000);

  it('takes docker push and serves docker pull through the load balancer', async () => {
    const ref = `${new URL(cluster.url).host}/cluster/app:1`;
    const docker = (...args: string[]) => runChecked(toolPath('docker'), args, { env: dockerd.env, timeoutMs: 300_000 });
    const id = await buildMultiLayerImage(dockerd.env, ref, 3, { layerBytes: 2 * 1024 * 1024, seed: `cluster-${Date.now()}` });
    await docker('push', ref);
    await docker('rmi', ref);
    await docker('pull', ref);
    expect((await docker('image', 'inspect', '--format', '{{.Id}}', ref)).trim()).toBe(id);
  }, 300_000);

  it('takes skopeo copy --all of a multi-architecture index through the load balancer', async () => {
    const layout = await writeMultiPlatformLayout(join(work, 'layout'), 'v1', [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ]);
    const host = new URL(cluster.url).host;
    const skopeo = toolPath('skopeo');
    await runChecked(skopeo, ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${layout.dir}:v1`, `docker://${host}/cluster/multi:v1`], { timeoutMs: 300_000 });
    await runChecked(skopeo, ['copy', '--all', '--preserve-digests', '--src-tls-verify=false', `docker://${host}/cluster/multi:v1`, `oci:${join(work, 'back')}:v1`], { timeoutMs: 300_000 });
    const back = JSON.parse(await readFile(join(work, 'back', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(back.manifests[0]?.digest).toBe(layout.indexDigest);
  }, 300_000);
});
