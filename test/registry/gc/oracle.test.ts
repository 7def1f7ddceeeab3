import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBerth } from '../../support/berth-process.js';
import { distributionConfig, startDistribution } from '../../tools/distribution.js';
import { runChecked } from '../../tools/processes.js';
import { toolPath } from '../../tools/tools.js';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

async function pushBlob(url: string, name: string, blob: Buffer): Promise<void> {
  const post = await fetch(`${url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  const location = new URL(post.headers.get('location') as string, url);
  location.searchParams.set('digest', sha256(blob));
  const put = await fetch(location, { method: 'PUT', body: blob, headers: { 'content-type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`blob push: ${put.status}`);
}

async function pushManifest(url: string, name: string, reference: string, manifest: Buffer, mediaType: string): Promise<string> {
  const put = await fetch(`${url}/v2/${name}/manifests/${reference}`, { method: 'PUT', body: manifest, headers: { 'content-type': mediaType } });
  if (put.status !== 201) throw new Error(`manifest push: ${put.status} ${await put.text()}`);
  return sha256(manifest);
}

/** Pushes an image (config + layers, some shared) and returns its manifest. */
async function pushImage(url: string, name: string, tag: string, layers: Buffer[]): Promise<Buffer> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', nonce: randomBytes(6).toString('hex') }));
  for (const blob of [config, ...layers]) await pushBlob(url, name, blob);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: sha256(config) },
      layers: layers.map((layer) => ({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: sha256(layer) })),
    }),
  );
  await pushManifest(url, name, tag, manifest, DOCKER_MANIFEST);
  return manifest;
}

async function blobsIn(root: string): Promise<string[]> {
  const base = join(root, 'docker/registry/v2/blobs/sha256');
  const digests: string[] = [];
  for (const prefix of await readdir(base).catch(() => [])) {
    for (const hex of await readdir(join(base, prefix))) digests.push(`sha256:${hex}`);
  }
  return digests.sort();
}

describe('garbage collection against CNCF Distribution 2.8 as an oracle, on a store Distribution wrote', () => {
  let work: string;
  let store: string;
  let indexChildren: string[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-gc-oracle-'));
    store = join(work, 'store');
    const distribution = await startDistribution({ rootDir: store, deleteEnabled: true });
    try {
      const shared = randomBytes(3000);
      // Tagged images sharing a layer; a tag moved (its old manifest becomes untagged); a manifest deleted;
      // a blob uploaded and never referenced.
      await pushImage(distribution.url, 'team/app', 'v1', [shared, randomBytes(2000)]);
      await pushImage(distribution.url, 'team/app', 'v2', [shared, randomBytes(2000)]);
      await pushImage(distribution.url, 'team/app', 'v2', [shared, randomBytes(2500)]);
      const doomed = await pushImage(distribution.url, 'other/tool', 'old', [randomBytes(1000)]);
      await pushImage(distribution.url, 'other/tool', 'new', [shared]);
      const deleted = await fetch(`${distribution.url}/v2/other/tool/manifests/${sha256(doomed)}`, { method: 'DELETE' });
      expect(deleted.status).toBe(202);
      await pushBlob(distribution.url, 'other/tool', randomBytes(4000));
      // A manifest list whose child manifests are untagged: Distribution's --delete-untagged deletes them.
      const children = [await pushImage(distribution.url, 'multi/arch', 'amd64-tmp', [randomBytes(1500)]), await pushImage(distribution.url, 'multi/arch', 'arm64-tmp', [randomBytes(1500)])];
      indexChildren = children.map(sha256);
      const list = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: DOCKER_LIST,
          manifests: children.map((child, i) => ({ mediaType: DOCKER_MANIFEST, size: child.length, digest: sha256(child), platform: { architecture: ['amd64', 'arm64'][i], os: 'linux' } })),
        }),
      );
      await pushManifest(distribution.url, 'multi/arch', 'latest', list, DOCKER_LIST);
      // Untag the children by pushing something else under their temporary tags, leaving them reachable only from the list.
      await pushImage(distribution.url, 'multi/arch', 'amd64-tmp', [randomBytes(100)]);
      await pushImage(distribution.url, 'multi/arch', 'arm64-tmp', [randomBytes(100)]);
    } finally {
      await distribution.stop();
    }
  }, 120_000);
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  async function runBoth(deleteUntagged: boolean): Promise<{ distribution: string[]; berth: string[] }> {
    const label = deleteUntagged ? 'untagged' : 'tagged';
    const forDistribution = join(work, `distribution-${label}`);
    const forBerth = join(work, `berth-${label}`);
    await cp(store, forDistribution, { recursive: true });
    await cp(store, forBerth, { recursive: true });
    const config = join(work, `distribution-${label}.yml`);
    await writeFile(config, distributionConfig(forDistribution, 5999, true));
    await runChecked(toolPath('docker-registry'), ['garbage-collect', ...(deleteUntagged ? ['--delete-untagged'] : []), config], { timeoutMs: 120_000 });
    await runChecked(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'registry/cli.ts'), 'gc', '--grace-period', '0s', ...(deleteUntagged ? ['--delete-untagged'] : [])],
      { cwd: ROOT, env: { ...process.env, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: forBerth }, timeoutMs: 120_000 },
    );
    return { distribution: await blobsIn(forDistribution), berth: await blobsIn(forBerth) };
  }

  it('deletes exactly the blobs Distribution deletes, without --delete-untagged', async () => {
    const before = await blobsIn(store);
    const { distribution, berth } = await runBoth(false);
    expect(berth).toEqual(distribution);
    expect(berth.length).toBeLessThan(before.length);
  }, 120_000);

  it('with --delete-untagged deletes what Distribution deletes, except the images inside a kept manifest list (distribution#3004)', async () => {
    const { distribution, berth } = await runBoth(true);
    const onlyBerth = berth.filter((digest) => !distribution.includes(digest));
    const onlyDistribution = distribution.filter((digest) => !berth.includes(digest));
    expect(onlyDistribution).toEqual([]);
    // Distribution keeps the child manifests' bytes but deletes their configs and layers, breaking the
    // list's images; Berth keeps each child's config and layer too.
    for (const child of indexChildren) {
      expect(berth).toContain(child);
      expect(distribution).toContain(child);
    }
    expect(onlyBerth.length).toBe(indexChildren.length * 2);
  }, 120_000);
});

describe('garbage collection against Distribution on a store Berth wrote, with an untagged referrer', () => {
  it("keeps an untagged signature whose subject is tagged, which Distribution's --delete-untagged deletes", async () => {
    const work = await mkdtemp(join(tmpdir(), 'berth-gc-referrer-'));
    try {
      const store = join(work, 'store');
      const berth = await startBerth({ rootDir: store, workDir: join(work, 'berth') });
      const empty = Buffer.from('{}');
      let signatureBlob: Buffer;
      let signature: Buffer;
      try {
        const image = await pushImage(berth.url, 'signed/app', 'v1', [randomBytes(2000)]);
        signatureBlob = randomBytes(300);
        for (const blob of [empty, signatureBlob]) await pushBlob(berth.url, 'signed/app', blob);
        signature = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            artifactType: 'application/vnd.example.signature',
            config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
            layers: [{ mediaType: 'application/octet-stream', digest: sha256(signatureBlob), size: signatureBlob.length }],
            subject: { mediaType: DOCKER_MANIFEST, digest: sha256(image), size: image.length },
          }),
        );
        await pushManifest(berth.url, 'signed/app', sha256(signature), signature, 'application/vnd.oci.image.manifest.v1+json');
      } finally {
        await berth.stop();
      }
      const copies = { distribution: join(work, 'distribution'), berth: join(work, 'berth-gc') };
      await cp(store, copies.distribution, { recursive: true });
      await cp(store, copies.berth, { recursive: true });
      const config = join(work, 'distribution.yml');
      await writeFile(config, distributionConfig(copies.distribution, 5999, true));
      await runChecked(toolPath('docker-registry'), ['garbage-collect', '--delete-untagged', config], { timeoutMs: 120_000 });
      await runChecked(process.execPath, ['--import', 'tsx', join(ROOT, 'registry/cli.ts'), 'gc', '--grace-period', '0s', '--delete-untagged'], {
        cwd: ROOT,
        env: { ...process.env, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: copies.berth },
        timeoutMs: 120_000,
      });
      const [afterDistribution, afterBerth] = [await blobsIn(copies.distribution), await blobsIn(copies.berth)];
      // The signature's manifest, its empty config and its payload: Distribution deletes all three.
      const signed = [sha256(signature), sha256(empty), sha256(signatureBlob)];
      for (const digest of signed) {
        expect(afterDistribution).not.toContain(digest);
        expect(afterBerth).toContain(digest);
      }
      // Apart from the signature, both keep the same (nothing else is garbage here).
      expect(afterBerth.filter((digest) => !afterDistribution.includes(digest)).sort()).toEqual(signed.sort());
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 120_000);
});
