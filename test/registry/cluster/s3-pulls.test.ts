import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMultiLayerImage, startDockerd, type Dockerd } from '../../tools/docker.js';
import { createBucket, startMinio, type RunningMinio } from '../../tools/minio.js';
import { runChecked } from '../../tools/processes.js';
import { toolPath } from '../../tools/tools.js';
import { startBerth, type BerthProcess } from '../../support/berth-process.js';

describe.each([
  ['redirected to presigned S3 URLs', true],
  ['proxied through the registry', false],
])('docker pull from a registry on S3 with blob GETs %s', (_label, redirect) => {
  let work: string;
  let minio: RunningMinio;
  let registry: BerthProcess;
  let dockerd: Dockerd;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-s3-pull-'));
    minio = await startMinio();
    await createBucket(minio, 'pulls');
    const storage = {
      s3: { endpoint: minio.endpoint, bucket: 'pulls', region: minio.region, accessKey: minio.accessKey, secretKey: minio.secretKey, redirect },
    };
    [registry, dockerd] = await Promise.all([startBerth({ storage, workDir: join(work, 'registry') }), startDockerd()]);
  });
  afterAll(async () => {
    await Promise.all([registry?.stop(), dockerd?.stop()]);
    await minio?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('pushes and pulls an image, with blob GETs answered the configured way', async () => {
    const ref = `127.0.0.1:${registry.port}/s3/app:1`;
    const docker = (...args: string[]) => runChecked(toolPath('docker'), args, { env: dockerd.env, timeoutMs: 300_000 });
    const id = await buildMultiLayerImage(dockerd.env, ref, 2, { layerBytes: 1024 * 1024, seed: `pull-${redirect}-${Date.now()}` });
    await docker('push', ref);
    await docker('rmi', ref);
    await docker('pull', ref);
    expect((await docker('image', 'inspect', '--format', '{{.Id}}', ref)).trim()).toBe(id);

    const manifest = (await (
      await fetch(`${registry.url}/v2/s3/app/manifests/1`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } })
    ).json()) as { layers: { digest: string }[] };
    const layer = manifest.layers[0]?.digest as string;
    const response = await fetch(`${registry.url}/v2/s3/app/blobs/${layer}`, { redirect: 'manual' });
    if (redirect) {
      expect(response.status).toBe(307);
      expect(response.headers.get('location')).toMatch(new RegExp(`^${minio.endpoint}/pulls/.*X-Amz-Signature=`));
    } else {
      expect(response.status).toBe(200);
      expect(Number(response.headers.get('content-length'))).toBeGreaterThan(1024 * 1024);
      await response.arrayBuffer();
    }
  }, 300_000);
});
