import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  TEST_DRIVERS,
  createTestRegistry,
  errorCode,
  imageManifest,
  pushBlob,
  pushImage,
  randomBlob,
  sha256,
  sha512,
  type TestRegistry,
  withQuery,
} from '../../support/test-registry.js';

describe.each(TEST_DRIVERS)('the distribution API on the %s driver', (kind) => {
  let registry: TestRegistry;
  beforeEach(async () => {
    registry = await createTestRegistry(kind);
  });
  afterEach(async () => {
    await registry.close();
  });

  it('answers /v2/ with 200 and the Distribution API version header', async () => {
    const response = await registry.app.inject({ method: 'GET', url: '/v2/' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['docker-distribution-api-version']).toBe('registry/2.0');
  });

  it('stores a blob in one POST and serves it by GET and HEAD with its digest and length', async () => {
    const blob = randomBlob(100_000);
    const digest = await pushBlob(registry.app, 'library/alpine', blob);
    const head = await registry.app.inject({ method: 'HEAD', url: `/v2/library/alpine/blobs/${digest}` });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe('100000');
    expect(head.headers['docker-content-digest']).toBe(digest);
    expect(head.body).toBe('');
    const get = await registry.app.inject({ method: 'GET', url: `/v2/library/alpine/blobs/${digest}` });
    expect(get.statusCode).toBe(200);
    expect(sha256(get.rawPayload)).toBe(digest);
  });

  it('serves a byte range of a blob with 206 and Content-Range', async () => {
    const blob = randomBlob(1000);
    const digest = await pushBlob(registry.app, 'ranges', blob);
    const response = await registry.app.inject({ method: 'GET', url: `/v2/ranges/blobs/${digest}`, headers: { range: 'bytes=100-199' } });
    expect(response.statusCode).toBe(206);
    expect(response.headers['content-range']).toBe('bytes 100-199/1000');
    expect(response.rawPayload.equals(blob.subarray(100, 200))).toBe(true);
    const suffix = await registry.app.inject({ method: 'GET', url: `/v2/ranges/blobs/${digest}`, headers: { range: 'bytes=-10' } });
    expect(suffix.rawPayload.equals(blob.subarray(990))).toBe(true);
  });

  it('runs the POST then PUT upload with the whole blob in the PUT', async () => {
    const blob = randomBlob(5000);
    const start = await registry.app.inject({ method: 'POST', url: '/v2/postput/blobs/uploads/' });
    expect(start.statusCode).toBe(202);
    expect(start.headers['range']).toBe('0-0');
    const location = start.headers['location'] as string;
    expect(location).toMatch(/^\/v2\/postput\/blobs\/uploads\/[0-9a-f-]{36}\?_state=0\.[A-Za-z0-9_-]{22}$/);
    const put = await registry.app.inject({
      method: 'PUT',
      url: `${withQuery(location, { digest: sha256(blob) })}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: blob,
    });
    expect(put.statusCode).toBe(201);
    expect(put.headers['location']).toBe(`/v2/postput/blobs/${sha256(blob)}`);
  });

  it('runs a chunked upload with Content-Range, reporting progress in Range and status', async () => {
    const blob = randomBlob(30_000);
    const start = await registry.app.inject({ method: 'POST', url: '/v2/chunked/blobs/uploads/' });
    let location = start.headers['location'] as string;
    for (const [from, to] of [[0, 9999], [10000, 19999], [20000, 29999]] as const) {
      const patch = await registry.app.inject({
        method: 'PATCH',
        url: location,
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${from}-${to}` },
        payload: blob.subarray(from, to + 1),
      });
      expect(patch.statusCode).toBe(202);
      expect(patch.headers['range']).toBe(`0-${to}`);
      location = patch.headers['location'] as string;
      const status = await registry.app.inject({ method: 'GET', url: location });
      expect(status.statusCode).toBe(204);
      expect(status.headers['range']).toBe(`0-${to}`);
    }
    const put = await registry.app.inject({ method: 'PUT', url: `${withQuery(location, { digest: sha256(blob) })}` });
    expect(put.statusCode).toBe(201);
    const get = await registry.app.inject({ method: 'GET', url: `/v2/chunked/blobs/${sha256(blob)}` });
    expect(get.rawPayload.equals(blob)).toBe(true);
  });

  it('runs a streamed upload (PATCH without Content-Range) and a final chunk in the PUT', async () => {
    const blob = randomBlob(20_000);
    const start = await registry.app.inject({ method: 'POST', url: '/v2/streamed/blobs/uploads/' });
    const patch = await registry.app.inject({
      method: 'PATCH',
      url: start.headers['location'] as string,
      headers: { 'content-type': 'application/octet-stream' },
      payload: blob.subarray(0, 15_000),
    });
    expect(patch.statusCode).toBe(202);
    const put = await registry.app.inject({
      method: 'PUT',
      url: `${withQuery(patch.headers['location'] as string, { digest: sha256(blob) })}`,
      headers: { 'content-type': 'application/octet-stream', 'content-range': '15000-19999' },
      payload: blob.subarray(15_000),
    });
    expect(put.statusCode).toBe(201);
    expect(await registry.storage.blobs.exists('streamed', sha256(blob) as never)).toBe(true);
  });

  it('cancels an upload with DELETE, after which it is unknown', async () => {
    const start = await registry.app.inject({ method: 'POST', url: '/v2/cancel/blobs/uploads/' });
    const location = start.headers['location'] as string;
    expect((await registry.app.inject({ method: 'DELETE', url: location })).statusCode).toBe(204);
    const status = await registry.app.inject({ method: 'GET', url: location });
    expect(status.statusCode).toBe(404);
    expect(errorCode(status.body)).toBe('BLOB_UPLOAD_UNKNOWN');
  });

  it('mounts a blob from another repository with from, and from anywhere without from', async () => {
    const blob = randomBlob(2000);
    const digest = await pushBlob(registry.app, 'source/repo', blob);
    const mounted = await registry.app.inject({ method: 'POST', url: `/v2/target/repo/blobs/uploads/?mount=${digest}&from=source/repo` });
    expect(mounted.statusCode).toBe(201);
    expect(mounted.headers['location']).toBe(`/v2/target/repo/blobs/${digest}`);
    const automatic = await registry.app.inject({ method: 'POST', url: `/v2/third/blobs/uploads/?mount=${digest}` });
    expect(automatic.statusCode).toBe(201);
    expect((await registry.app.inject({ method: 'HEAD', url: `/v2/third/blobs/${digest}` })).statusCode).toBe(200);
  });

  it('starts an ordinary upload (202) when the mounted blob is not in the source repository', async () => {
    const digest = sha256(randomBlob(10));
    const response = await registry.app.inject({ method: 'POST', url: `/v2/target/blobs/uploads/?mount=${digest}&from=elsewhere` });
    expect(response.statusCode).toBe(202);
    expect(response.headers['location']).toMatch(/\/blobs\/uploads\//);
  });

  it('stores a manifest by tag and serves it by tag and digest with its media type and exact bytes', async () => {
    const { manifest, digest } = await pushImage(registry.app, 'app', 'v1');
    for (const reference of ['v1', digest]) {
      const get = await registry.app.inject({ method: 'GET', url: `/v2/app/manifests/${reference}` });
      expect(get.statusCode).toBe(200);
      expect(get.headers['content-type']).toBe('application/vnd.oci.image.manifest.v1+json');
      expect(get.headers['docker-content-digest']).toBe(digest);
      expect(get.rawPayload.equals(manifest)).toBe(true);
      const head = await registry.app.inject({ method: 'HEAD', url: `/v2/app/manifests/${reference}` });
      expect(head.statusCode).toBe(200);
      expect(head.headers['content-length']).toBe(String(manifest.length));
    }
  });

  it('keeps the digest over the exact bytes received, whitespace included', async () => {
    const config = randomBlob(100);
    await pushBlob(registry.app, 'exact', config);
    const compact = imageManifest(config, []);
    const pretty = Buffer.from(JSON.stringify(JSON.parse(compact.toString()), null, 3) + '\n');
    const put = await registry.app.inject({
      method: 'PUT',
      url: '/v2/exact/manifests/pretty',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      payload: pretty,
    });
    expect(put.headers['docker-content-digest']).toBe(sha256(pretty));
    const get = await registry.app.inject({ method: 'GET', url: '/v2/exact/manifests/pretty' });
    expect(get.rawPayload.equals(pretty)).toBe(true);
  });

  it('stores a manifest by digest and tags it with ?tag=', async () => {
    const config = randomBlob(50);
    await pushBlob(registry.app, 'tagq', config);
    const manifest = imageManifest(config, []);
    const put = await registry.app.inject({
      method: 'PUT',
      url: `/v2/tagq/manifests/${sha256(manifest)}?tag=one&tag=two`,
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      payload: manifest,
    });
    expect(put.statusCode).toBe(201);
    expect(put.headers['oci-tag']).toEqual(['one', 'two']);
    const tags = await registry.app.inject({ method: 'GET', url: '/v2/tagq/tags/list' });
    expect(JSON.parse(tags.body)).toEqual({ name: 'tagq', tags: ['one', 'two'] });
  });

  it('stores Docker schema 2 manifests and manifest lists', async () => {
    const config = randomBlob(60);
    const layer = randomBlob(600);
    await pushBlob(registry.app, 'docker', config);
    await pushBlob(registry.app, 'docker', layer);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: sha256(config) },
        layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: sha256(layer) }],
      }),
    );
    const put = await registry.app.inject({
      method: 'PUT',
      url: '/v2/docker/manifests/amd64',
      headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' },
      payload: manifest,
    });
    expect(put.statusCode).toBe(201);
    const list = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
        manifests: [
          {
            mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
            size: manifest.length,
            digest: sha256(manifest),
            platform: { architecture: 'amd64', os: 'linux' },
          },
        ],
      }),
    );
    const putList = await registry.app.inject({
      method: 'PUT',
      url: '/v2/docker/manifests/latest',
      headers: { 'content-type': 'application/vnd.docker.distribution.manifest.list.v2+json' },
      payload: list,
    });
    expect(putList.statusCode).toBe(201);
    const get = await registry.app.inject({ method: 'GET', url: '/v2/docker/manifests/latest' });
    expect(get.headers['content-type']).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
  });

  it('lists tags in order with n/last pagination and a Link to the next page', async () => {
    const { digest } = await pushImage(registry.app, 'paged', 'c');
    for (const tag of ['a', 'e', 'b', 'd']) {
      const manifest = await registry.app.inject({ method: 'GET', url: `/v2/paged/manifests/${digest}` });
      await registry.app.inject({
        method: 'PUT',
        url: `/v2/paged/manifests/${tag}`,
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
        payload: manifest.rawPayload,
      });
    }
    const all = await registry.app.inject({ method: 'GET', url: '/v2/paged/tags/list' });
    expect(JSON.parse(all.body).tags).toEqual(['a', 'b', 'c', 'd', 'e']);
    const first = await registry.app.inject({ method: 'GET', url: '/v2/paged/tags/list?n=2' });
    expect(JSON.parse(first.body).tags).toEqual(['a', 'b']);
    expect(first.headers['link']).toBe('</v2/paged/tags/list?n=2&last=b>; rel="next"');
    const second = await registry.app.inject({ method: 'GET', url: '/v2/paged/tags/list?n=2&last=b' });
    expect(JSON.parse(second.body).tags).toEqual(['c', 'd']);
    const last = await registry.app.inject({ method: 'GET', url: '/v2/paged/tags/list?n=2&last=d' });
    expect(JSON.parse(last.body).tags).toEqual(['e']);
    expect(last.headers['link']).toBeUndefined();
  });

  it('lists repositories in the catalog in lexical order with pagination', async () => {
    for (const name of ['b/x', 'a-b', 'a/x', 'c']) await pushImage(registry.app, name, 'latest', { layers: 0 });
    const all = await registry.app.inject({ method: 'GET', url: '/v2/_catalog' });
    expect(JSON.parse(all.body).repositories).toEqual(['a-b', 'a/x', 'b/x', 'c']);
    const page = await registry.app.inject({ method: 'GET', url: '/v2/_catalog?n=2&last=a-b' });
    expect(JSON.parse(page.body).repositories).toEqual(['a/x', 'b/x']);
    expect(page.headers['link']).toBe('</v2/_catalog?n=2&last=b%2Fx>; rel="next"');
  });

  it('answers NAME_UNKNOWN for the tags of a repository that does not exist', async () => {
    const response = await registry.app.inject({ method: 'GET', url: '/v2/nothing/here/tags/list' });
    expect(response.statusCode).toBe(404);
    expect(errorCode(response.body)).toBe('NAME_UNKNOWN');
  });

  it('deletes a tag, leaving the manifest; and a manifest by digest, with its tags', async () => {
    const { digest } = await pushImage(registry.app, 'del', 'v1');
    await registry.app.inject({ method: 'PUT', url: `/v2/del/manifests/${digest}?tag=v2`, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, payload: (await registry.app.inject({ method: 'GET', url: `/v2/del/manifests/${digest}` })).rawPayload });
    expect((await registry.app.inject({ method: 'DELETE', url: '/v2/del/manifests/v1' })).statusCode).toBe(202);
    expect((await registry.app.inject({ method: 'GET', url: '/v2/del/manifests/v1' })).statusCode).toBe(404);
    expect((await registry.app.inject({ method: 'GET', url: `/v2/del/manifests/${digest}` })).statusCode).toBe(200);
    expect((await registry.app.inject({ method: 'DELETE', url: `/v2/del/manifests/${digest}` })).statusCode).toBe(202);
    const gone = await registry.app.inject({ method: 'GET', url: `/v2/del/manifests/${digest}` });
    expect(gone.statusCode).toBe(404);
    expect(errorCode(gone.body)).toBe('MANIFEST_UNKNOWN');
    expect((await registry.app.inject({ method: 'GET', url: '/v2/del/manifests/v2' })).statusCode).toBe(404);
    expect(JSON.parse((await registry.app.inject({ method: 'GET', url: '/v2/del/tags/list' })).body).tags).toEqual([]);
  });

  it('deletes a blob from a repository (202), after which it is BLOB_UNKNOWN there', async () => {
    const digest = await pushBlob(registry.app, 'delblob', randomBlob(300));
    expect((await registry.app.inject({ method: 'DELETE', url: `/v2/delblob/blobs/${digest}` })).statusCode).toBe(202);
    const head = await registry.app.inject({ method: 'GET', url: `/v2/delblob/blobs/${digest}` });
    expect(head.statusCode).toBe(404);
    expect(errorCode(head.body)).toBe('BLOB_UNKNOWN');
  });

  it('lists referrers of a subject, filters by artifactType, and answers OCI-Subject on push', async () => {
    const subject = await pushImage(registry.app, 'refs', 'v1');
    const descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject.digest, size: subject.manifest.length };
    const empty = Buffer.from('{}');
    await pushBlob(registry.app, 'refs', empty);
    const artifacts: Record<string, string> = {};
    for (const type of ['application/vnd.example.sbom', 'application/vnd.example.signature']) {
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          artifactType: type,
          config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
          layers: [],
          subject: descriptor,
          annotations: { 'org.example.kind': type },
        }),
      );
      const put = await registry.app.inject({
        method: 'PUT',
        url: `/v2/refs/manifests/${sha256(manifest)}`,
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
        payload: manifest,
      });
      expect(put.statusCode).toBe(201);
      expect(put.headers['oci-subject']).toBe(subject.digest);
      artifacts[type] = sha256(manifest);
    }
    const all = await registry.app.inject({ method: 'GET', url: `/v2/refs/referrers/${subject.digest}` });
    expect(all.statusCode).toBe(200);
    expect(all.headers['content-type']).toBe('application/vnd.oci.image.index.v1+json');
    const index = JSON.parse(all.body);
    expect(index.manifests.map((m: { digest: string }) => m.digest).sort()).toEqual(Object.values(artifacts).sort());
    expect(index.manifests[0].annotations).toBeDefined();
    const filtered = await registry.app.inject({ method: 'GET', url: `/v2/refs/referrers/${subject.digest}?artifactType=application/vnd.example.sbom` });
    expect(filtered.headers['oci-filters-applied']).toBe('artifactType');
    expect(JSON.parse(filtered.body).manifests).toEqual([
      expect.objectContaining({ digest: artifacts['application/vnd.example.sbom'], artifactType: 'application/vnd.example.sbom' }),
    ]);
    await registry.app.inject({ method: 'DELETE', url: `/v2/refs/manifests/${artifacts['application/vnd.example.sbom']}` });
    const after = await registry.app.inject({ method: 'GET', url: `/v2/refs/referrers/${subject.digest}` });
    expect(JSON.parse(after.body).manifests).toHaveLength(1);
  });

  it('accepts a manifest whose subject does not exist, and lists it as a referrer', async () => {
    const config = Buffer.from('{}');
    await pushBlob(registry.app, 'orphan', config);
    const missingSubject = sha256(randomBlob(10));
    const manifest = imageManifest(config, [], { subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: missingSubject, size: 10 } });
    const put = await registry.app.inject({ method: 'PUT', url: '/v2/orphan/manifests/sig', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, payload: manifest });
    expect(put.statusCode).toBe(201);
    const referrers = await registry.app.inject({ method: 'GET', url: `/v2/orphan/referrers/${missingSubject}` });
    expect(JSON.parse(referrers.body).manifests).toHaveLength(1);
  });

  it('answers an empty index for a subject without referrers', async () => {
    const response = await registry.app.inject({ method: 'GET', url: `/v2/none/referrers/${sha256(Buffer.from('x'))}` });
    expect(response.statusCode).toBe(200);
    expect(JSON.parse(response.body)).toMatchObject({ schemaVersion: 2, manifests: [] });
  });

  it('stores and verifies sha512 blobs and manifests', async () => {
    const blob = randomBlob(4096);
    const digest = await pushBlob(registry.app, 'sha512', blob, sha512(blob));
    expect(digest.startsWith('sha512:')).toBe(true);
    const get = await registry.app.inject({ method: 'GET', url: `/v2/sha512/blobs/${digest}` });
    expect(get.rawPayload.equals(blob)).toBe(true);
    const start = await registry.app.inject({ method: 'POST', url: '/v2/sha512/blobs/uploads/' });
    const chunked = randomBlob(3000);
    const patch = await registry.app.inject({ method: 'PATCH', url: start.headers['location'] as string, headers: { 'content-type': 'application/octet-stream', 'content-range': '0-2999' }, payload: chunked });
    const put = await registry.app.inject({ method: 'PUT', url: `${withQuery(patch.headers['location'] as string, { digest: sha512(chunked) })}` });
    expect(put.statusCode).toBe(201);
    const config = randomBlob(20);
    await pushBlob(registry.app, 'sha512', config);
    const manifest = imageManifest(config, []);
    const putManifest = await registry.app.inject({ method: 'PUT', url: `/v2/sha512/manifests/${sha512(manifest)}`, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, payload: manifest });
    expect(putManifest.statusCode).toBe(201);
    expect(putManifest.headers['docker-content-digest']).toBe(sha512(manifest));
    expect((await registry.app.inject({ method: 'GET', url: `/v2/sha512/manifests/${sha512(manifest)}` })).rawPayload.equals(manifest)).toBe(true);
  });

  it('treats pushing the same blob and manifest twice as harmless', async () => {
    const blob = randomBlob(1000);
    await pushBlob(registry.app, 'twice', blob);
    await pushBlob(registry.app, 'twice', blob);
    const first = await pushImage(registry.app, 'twice', 'v1');
    const again = await registry.app.inject({ method: 'PUT', url: '/v2/twice/manifests/v1', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, payload: first.manifest });
    expect(again.statusCode).toBe(201);
    expect((await registry.app.inject({ method: 'GET', url: '/v2/twice/manifests/v1' })).rawPayload.equals(first.manifest)).toBe(true);
  });

  it('refuses deletes with UNSUPPORTED when storage.delete.enabled is false', async () => {
    const disabled = await createTestRegistry(kind, { deleteEnabled: false });
    try {
      const { digest } = await pushImage(disabled.app, 'keep', 'v1');
      const response = await disabled.app.inject({ method: 'DELETE', url: `/v2/keep/manifests/${digest}` });
      expect(response.statusCode).toBe(405);
      expect(errorCode(response.body)).toBe('UNSUPPORTED');
      expect((await disabled.app.inject({ method: 'GET', url: '/v2/keep/manifests/v1' })).statusCode).toBe(200);
    } finally {
      await disabled.close();
    }
  });

  it('refuses writes but serves reads in read-only mode, switched at run time', async () => {
    const { digest } = await pushImage(registry.app, 'ro', 'v1');
    registry.writeGuard.setReadOnly(true);
    const refused = await registry.app.inject({ method: 'POST', url: '/v2/ro/blobs/uploads/' });
    expect(refused.statusCode).toBe(405);
    expect(errorCode(refused.body)).toBe('UNSUPPORTED');
    expect(JSON.parse(refused.body).errors[0].message).toMatch(/read-only/);
    expect((await registry.app.inject({ method: 'GET', url: `/v2/ro/manifests/${digest}` })).statusCode).toBe(200);
    registry.writeGuard.setReadOnly(false);
    expect((await registry.app.inject({ method: 'POST', url: '/v2/ro/blobs/uploads/' })).statusCode).toBe(202);
  });
});
