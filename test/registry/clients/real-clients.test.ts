import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMultiLayerImage, importImage, startDockerd, type Dockerd } from '../../tools/docker.js';
import { runChecked } from '../../tools/processes.js';
import { toolPath } from '../../tools/tools.js';
import { startBerth, type BerthProcess } from '../../support/berth-process.js';
import { writeMultiPlatformLayout } from '../../support/oci-layout.js';

describe('real clients against Berth', () => {
  let work: string;
  let registry: BerthProcess;
  let dockerd: Dockerd;
  let host: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-clients-'));
    [registry, dockerd] = await Promise.all([startBerth({ rootDir: join(work, 'store') }), startDockerd()]);
    host = `127.0.0.1:${registry.port}`;
  });
  afterAll(async () => {
    await Promise.all([registry?.stop(), dockerd?.stop()]);
    await rm(work, { recursive: true, force: true });
  });

  const docker = (...args: string[]) => runChecked(toolPath('docker'), args, { env: dockerd.env, timeoutMs: 300_000 });

  async function roundTrip(ref: string, imageId: string): Promise<void> {
    await docker('push', ref);
    await docker('rmi', ref);
    await expect(docker('image', 'inspect', ref)).rejects.toThrow();
    await docker('pull', ref);
    expect((await docker('image', 'inspect', '--format', '{{.Id}}', ref)).trim()).toBe(imageId);
  }

  it('takes a docker push and serves a docker pull of a single-layer image', async () => {
    const ref = `${host}/hello:1`;
    const id = await importImage(dockerd.env, ref);
    await roundTrip(ref, id);
    const tags = (await (await fetch(`${registry.url}/v2/hello/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags).toEqual(['1']);
  }, 300_000);

  it('takes a docker push and serves a docker pull of a multi-layer image', async () => {
    const ref = `${host}/team/multi:v2`;
    const id = await buildMultiLayerImage(dockerd.env, ref, 4, { layerBytes: 256 * 1024, seed: `${Date.now()}` });
    await roundTrip(ref, id);
    const manifest = (await (
      await fetch(`${registry.url}/v2/team/multi/manifests/v2`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } })
    ).json()) as { layers: unknown[] };
    expect(manifest.layers).toHaveLength(4);
  }, 300_000);

  it('takes skopeo copy --all of a multi-architecture OCI index and gives it back unchanged', async () => {
    const layout = await writeMultiPlatformLayout(join(work, 'layout'), 'v1', [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
      { os: 'linux', architecture: 's390x' },
    ]);
    const skopeo = toolPath('skopeo');
    await runChecked(skopeo, ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${layout.dir}:v1`, `docker://${host}/multiarch:v1`], { timeoutMs: 300_000 });
    const head = await fetch(`${registry.url}/v2/multiarch/manifests/v1`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
    expect(head.headers.get('docker-content-digest')).toBe(layout.indexDigest);
    for (const digest of layout.manifestDigests) {
      expect((await fetch(`${registry.url}/v2/multiarch/manifests/${digest}`, { method: 'HEAD' })).status).toBe(200);
    }
    await runChecked(skopeo, ['copy', '--all', '--preserve-digests', '--src-tls-verify=false', `docker://${host}/multiarch:v1`, `oci:${join(work, 'back')}:v1`], { timeoutMs: 300_000 });
    const back = JSON.parse(await readFile(join(work, 'back', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(back.manifests[0]?.digest).toBe(layout.indexDigest);
    for (const digest of layout.blobDigests) {
      const bytes = await readFile(join(work, 'back', 'blobs', 'sha256', digest.slice(7)));
      expect(`sha256:${createHash('sha256').update(bytes).digest('hex')}`).toBe(digest);
    }
  }, 300_000);

  it('stores an artifact attached with oras and lists it through the referrers API and oras discover', async () => {
    const crane = toolPath('crane');
    const oras = toolPath('oras');
    const ref = `${host}/signed:v1`;
    const layer = join(work, 'layer.tar');
    await writeFile(join(work, 'hello.txt'), `hello ${Date.now()}`);
    await runChecked('tar', ['-cf', layer, '-C', work, 'hello.txt']);
    await runChecked(crane, ['--insecure', 'append', '--oci-empty-base', '--new_layer', layer, '--new_tag', ref], { timeoutMs: 120_000 });
    const digest = (await runChecked(crane, ['--insecure', 'digest', ref])).trim();
    const sbom = join(work, 'sbom.json');
    await writeFile(sbom, JSON.stringify({ spdxVersion: 'SPDX-2.3', name: 'test' }));
    await runChecked(oras, ['attach', '--plain-http', '--artifact-type', 'application/vnd.example.sbom+json', ref, 'sbom.json:application/json'], { cwd: work, timeoutMs: 120_000 });
    const referrers = (await (await fetch(`${registry.url}/v2/signed/referrers/${digest}`)).json()) as { manifests: { artifactType: string }[] };
    expect(referrers.manifests.map((m) => m.artifactType)).toEqual(['application/vnd.example.sbom+json']);
    const discovered = JSON.parse(await runChecked(oras, ['discover', '--plain-http', '--format', 'json', ref], { timeoutMs: 120_000 })) as Record<string, unknown>;
    const listed = JSON.stringify(discovered);
    expect(listed).toContain('application/vnd.example.sbom+json');
  }, 300_000);
});
