import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDistribution, type RunningDistribution } from '../../tools/distribution.js';
import { buildMultiLayerImage, importImage, startDockerd, type Dockerd } from '../../tools/docker.js';
import { runChecked } from '../../tools/processes.js';
import { toolPath } from '../../tools/tools.js';
import { startBerth, type BerthProcess } from '../../support/berth-process.js';
import { writeMultiPlatformLayout } from '../../support/oci-layout.js';

describe('Berth and CNCF Distribution 2.8 on one storage directory', () => {
  let work: string;
  let berth: BerthProcess;
  let distribution: RunningDistribution;
  let dockerd: Dockerd;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-interop-'));
    const rootDir = join(work, 'store');
    [berth, distribution, dockerd] = await Promise.all([
      startBerth({ rootDir }),
      startDistribution({ rootDir, deleteEnabled: true }),
      startDockerd(),
    ]);
  });
  afterAll(async () => {
    await Promise.all([berth?.stop(), distribution?.stop(), dockerd?.stop()]);
    await rm(work, { recursive: true, force: true });
  });

  const docker = (...args: string[]) => runChecked(toolPath('docker'), args, { env: dockerd.env, timeoutMs: 300_000 });
  const hostOf = (url: string) => new URL(url).host;

  /** Pushes `image` to one registry, then pulls the same repository and tag through the other. */
  async function pushThenPull(from: string, to: string, repository: string, makeImage: (ref: string) => Promise<string>): Promise<void> {
    const pushed = `${hostOf(from)}/${repository}`;
    const pulled = `${hostOf(to)}/${repository}`;
    const id = await makeImage(pushed);
    await docker('push', pushed);
    await docker('rmi', pushed);
    await docker('pull', pulled);
    expect((await docker('image', 'inspect', '--format', '{{.Id}}', pulled)).trim()).toBe(id);
    await docker('rmi', pulled);
  }

  it('serves through Berth an image pushed through Distribution', async () => {
    await pushThenPull(distribution.url, berth.url, 'interop/from-distribution:1', (ref) =>
      buildMultiLayerImage(dockerd.env, ref, 3, { seed: `d-${Date.now()}` }),
    );
  }, 300_000);

  it('serves through Distribution an image pushed through Berth', async () => {
    await pushThenPull(berth.url, distribution.url, 'interop/from-berth:1', (ref) => importImage(dockerd.env, ref, { content: `b-${Date.now()}` }));
  }, 300_000);

  it('serves through Distribution a multi-architecture index pushed through Berth, with the same digests', async () => {
    const layout = await writeMultiPlatformLayout(join(work, 'layout'), 'v1', [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ]);
    await runChecked(toolPath('skopeo'), ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${layout.dir}:v1`, `docker://${hostOf(berth.url)}/interop/index:v1`], { timeoutMs: 300_000 });
    const accept = { accept: 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json' };
    const viaDistribution = await fetch(`${distribution.url}/v2/interop/index/manifests/v1`, { headers: accept });
    expect(viaDistribution.status).toBe(200);
    expect(viaDistribution.headers.get('docker-content-digest')).toBe(layout.indexDigest);
    for (const digest of layout.manifestDigests) {
      expect((await fetch(`${distribution.url}/v2/interop/index/manifests/${digest}`, { headers: accept })).status).toBe(200);
    }
  }, 300_000);

  it('agrees with Distribution on tag lists and the catalog', async () => {
    for (const [url, tag] of [[berth.url, 'from-berth'], [distribution.url, 'from-distribution']] as const) {
      const ref = `${hostOf(url)}/interop/tags:${tag}`;
      await importImage(dockerd.env, ref, { content: `${tag}-${Date.now()}` });
      await docker('push', ref);
    }
    const getJson = async <T>(url: string): Promise<T> => (await (await fetch(url)).json()) as T;
    const berthTags = await getJson<{ tags: string[] }>(`${berth.url}/v2/interop/tags/tags/list`);
    const distributionTags = await getJson<{ tags: string[] }>(`${distribution.url}/v2/interop/tags/tags/list`);
    expect(berthTags.tags).toEqual(['from-berth', 'from-distribution']);
    expect([...distributionTags.tags].sort()).toEqual(berthTags.tags);
    const berthCatalog = await getJson<{ repositories: string[] }>(`${berth.url}/v2/_catalog`);
    const distributionCatalog = await getJson<{ repositories: string[] }>(`${distribution.url}/v2/_catalog`);
    expect(berthCatalog.repositories).toEqual(expect.arrayContaining(['interop/from-berth', 'interop/from-distribution', 'interop/index', 'interop/tags']));
    expect(berthCatalog.repositories).toEqual(distributionCatalog.repositories);
  }, 300_000);

  it('sees a tag deleted through Distribution as gone, and a manifest deleted through Berth as gone in Distribution', async () => {
    const ref = `${hostOf(distribution.url)}/interop/deletes:1`;
    await importImage(dockerd.env, ref, { content: `del-${Date.now()}` });
    await docker('push', ref);
    const accept = { accept: 'application/vnd.docker.distribution.manifest.v2+json' };
    const digest = (await fetch(`${berth.url}/v2/interop/deletes/manifests/1`, { method: 'HEAD', headers: accept })).headers.get('docker-content-digest');
    expect(digest).toMatch(/^sha256:/);
    expect((await fetch(`${berth.url}/v2/interop/deletes/manifests/${digest}`, { method: 'DELETE' })).status).toBe(202);
    expect((await fetch(`${distribution.url}/v2/interop/deletes/manifests/${digest}`, { headers: accept })).status).toBe(404);
  }, 300_000);
});
