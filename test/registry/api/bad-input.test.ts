import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PathNotFoundError } from '../../../registry/driver/errors.js';
import {
  TEST_DRIVERS,
  createTestRegistry,
  errorCode,
  imageManifest,
  pushBlob,
  pushImage,
  randomBlob,
  rawRequest,
  sha256,
  type TestRegistry,
  withQuery,
} from '../../support/test-registry.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe.each(TEST_DRIVERS)('bad input on the %s driver gets the right OCI error and writes nothing', (kind) => {
  let registry: TestRegistry;
  beforeEach(async () => {
    registry = await createTestRegistry(kind, { manifestSizeLimit: 64 * 1024 });
  });
  afterEach(async () => {
    await registry.close();
  });

  /** Every object path in the store, for checking that a failed request wrote nothing. */
  async function storedPaths(): Promise<string[]> {
    const paths: string[] = [];
    try {
      await registry.driver.walk('/docker', (info) => {
        if (!info.isDir) paths.push(info.path);
      });
    } catch (error) {
      if (!(error instanceof PathNotFoundError)) throw error;
    }
    return paths;
  }

  it.each([
    ['..', '/v2/../blobs/uploads/'],
    ['%2e%2e', '/v2/%2e%2e/blobs/uploads/'],
    ['a/%2e%2e/b', '/v2/a/%2e%2e/b/blobs/uploads/'],
    ['upper case', '/v2/Library/Alpine/blobs/uploads/'],
    ['a trailing separator', '/v2/abc-/blobs/uploads/'],
    ['an empty component', '/v2/a//b/blobs/uploads/'],
    ['over-long', `/v2/${'a'.repeat(256)}/blobs/uploads/`],
    ['a percent-encoded slash', '/v2/a%2fb/blobs/uploads/'],
  ])('rejects a repository name with %s as NAME_INVALID and creates nothing', async (_label, url) => {
    const response = await rawRequest(registry.app, 'POST', url);
    expect(response.statusCode).toBe(400);
    expect(errorCode(response.body)).toBe('NAME_INVALID');
    expect(await storedPaths()).toEqual([]);
  });

  it('accepts a repository name of exactly 255 characters', async () => {
    const name = `${'a'.repeat(127)}/${'b'.repeat(127)}`;
    expect(name.length).toBe(255);
    expect((await registry.app.inject({ method: 'POST', url: `/v2/${name}/blobs/uploads/` })).statusCode).toBe(202);
  });

  it.each(['-leading-dash', '.dot', 'a'.repeat(129), 'bad%20space', 'semi;colon'])('rejects the tag "%s" with TAG_INVALID', async (tag) => {
    const config = randomBlob(10);
    await pushBlob(registry.app, 'tags', config);
    const before = await storedPaths();
    const response = await registry.app.inject({
      method: 'PUT',
      url: `/v2/tags/manifests/${tag}`,
      headers: { 'content-type': OCI_MANIFEST },
      payload: imageManifest(config, []),
    });
    expect(response.statusCode).toBe(400);
    expect(['TAG_INVALID', 'DIGEST_INVALID']).toContain(errorCode(response.body));
    expect(await storedPaths()).toEqual(before);
  });

  it('rejects a ?tag= that is not a valid tag before storing anything', async () => {
    const config = randomBlob(10);
    await pushBlob(registry.app, 'tagq', config);
    const before = await storedPaths();
    const manifest = imageManifest(config, []);
    const response = await registry.app.inject({
      method: 'PUT',
      url: `/v2/tagq/manifests/${sha256(manifest)}?tag=ok&tag=-bad`,
      headers: { 'content-type': OCI_MANIFEST },
      payload: manifest,
    });
    expect(errorCode(response.body)).toBe('TAG_INVALID');
    expect(await storedPaths()).toEqual(before);
  });

  it.each([
    ['no algorithm', 'abcdef'],
    ['a short hex', 'sha256:abc'],
    ['upper-case hex', `sha256:${'A'.repeat(64)}`],
    ['an unsupported algorithm', `md5:${'a'.repeat(32)}`],
    ['a sha512 of the wrong length', `sha512:${'a'.repeat(64)}`],
  ])('rejects a digest with %s as DIGEST_INVALID', async (_label, digest) => {
    for (const url of [`/v2/d/blobs/${digest}`, `/v2/d/blobs/uploads/?digest=${digest}`, `/v2/d/referrers/${digest}`]) {
      const response = await registry.app.inject({ method: url.includes('uploads') ? 'POST' : 'GET', url, payload: url.includes('uploads') ? 'x' : undefined });
      expect(response.statusCode, url).toBe(400);
      expect(errorCode(response.body), url).toBe('DIGEST_INVALID');
    }
    expect(await storedPaths()).toEqual([]);
  });

  it('rejects a monolithic upload whose content does not match its digest, leaving no blob and no upload', async () => {
    const response = await registry.app.inject({
      method: 'POST',
      url: `/v2/mismatch/blobs/uploads/?digest=${sha256(Buffer.from('other'))}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: randomBlob(1000),
    });
    expect(response.statusCode).toBe(400);
    expect(errorCode(response.body)).toBe('DIGEST_INVALID');
    expect(await storedPaths()).toEqual([]);
  });

  it('rejects a PUT that finishes an upload with the wrong digest, and stores no blob', async () => {
    const blob = randomBlob(2000);
    const start = await registry.app.inject({ method: 'POST', url: '/v2/wrong/blobs/uploads/' });
    const patch = await registry.app.inject({ method: 'PATCH', url: start.headers['location'] as string, headers: { 'content-type': 'application/octet-stream' }, payload: blob });
    const put = await registry.app.inject({ method: 'PUT', url: `${withQuery(patch.headers['location'] as string, { digest: sha256(Buffer.from('nope')) })}` });
    expect(put.statusCode).toBe(400);
    expect(errorCode(put.body)).toBe('DIGEST_INVALID');
    expect((await storedPaths()).filter((path) => path.includes('/blobs/') || path.includes('_layers'))).toEqual([]);
  });

  it('rejects a PUT without ?digest= with DIGEST_INVALID', async () => {
    const start = await registry.app.inject({ method: 'POST', url: '/v2/nodigest/blobs/uploads/' });
    const put = await registry.app.inject({ method: 'PUT', url: start.headers['location'] as string });
    expect(put.statusCode).toBe(400);
    expect(errorCode(put.body)).toBe('DIGEST_INVALID');
  });

  it('rejects a chunk whose Content-Range does not match its Content-Length with 416', async () => {
    const start = await registry.app.inject({ method: 'POST', url: '/v2/size/blobs/uploads/' });
    const location = start.headers['location'] as string;
    const response = await registry.app.inject({
      method: 'PATCH',
      url: location,
      headers: { 'content-type': 'application/octet-stream', 'content-range': '0-99' },
      payload: randomBlob(50),
    });
    expect(response.statusCode).toBe(416);
    const status = await registry.app.inject({ method: 'GET', url: location });
    expect(status.headers['range']).toBe('0-0');
  });

  it('rejects an out-of-order chunk with 416 and keeps the bytes received so far', async () => {
    const blob = randomBlob(3000);
    const start = await registry.app.inject({ method: 'POST', url: '/v2/order/blobs/uploads/' });
    let location = start.headers['location'] as string;
    const first = await registry.app.inject({ method: 'PATCH', url: location, headers: { 'content-type': 'application/octet-stream', 'content-range': '0-999' }, payload: blob.subarray(0, 1000) });
    location = first.headers['location'] as string;
    const skipped = await registry.app.inject({ method: 'PATCH', url: location, headers: { 'content-type': 'application/octet-stream', 'content-range': '2000-2999' }, payload: blob.subarray(2000) });
    expect(skipped.statusCode).toBe(416);
    expect(errorCode(skipped.body)).toBe('RANGE_INVALID');
    const overlapping = await registry.app.inject({ method: 'PATCH', url: location, headers: { 'content-type': 'application/octet-stream', 'content-range': '500-1499' }, payload: blob.subarray(500, 1500) });
    expect(overlapping.statusCode).toBe(416);
    const status = await registry.app.inject({ method: 'GET', url: location });
    expect(status.headers['range']).toBe('0-999');
    await registry.app.inject({ method: 'PATCH', url: location, headers: { 'content-type': 'application/octet-stream', 'content-range': '1000-2999' }, payload: blob.subarray(1000) });
    const put = await registry.app.inject({ method: 'PUT', url: `${withQuery(location, { digest: sha256(blob) })}` });
    expect(put.statusCode).toBe(201);
  });

  it('rejects a malformed Content-Range with 416', async () => {
    const start = await registry.app.inject({ method: 'POST', url: '/v2/malformed/blobs/uploads/' });
    const response = await registry.app.inject({ method: 'PATCH', url: start.headers['location'] as string, headers: { 'content-type': 'application/octet-stream', 'content-range': 'bytes=abc' }, payload: 'x' });
    expect(response.statusCode).toBe(416);
  });

  it.each([
    ['a random uuid', '/v2/u/blobs/uploads/3f1c1c4e-8f6b-4c1f-9f0f-0e6b2f5e8a11'],
    ['a malformed id', '/v2/u/blobs/uploads/not-an-id'],
    ['an id that climbs', '/v2/u/blobs/uploads/..'],
  ])('answers BLOB_UPLOAD_UNKNOWN for %s on GET, PATCH, PUT and DELETE', async (_label, url) => {
    for (const method of ['GET', 'PATCH', 'PUT', 'DELETE'] as const) {
      const response = await rawRequest(
        registry.app,
        method,
        method === 'PUT' ? `${url}?digest=${sha256(Buffer.from('x'))}` : url,
        method === 'PATCH' ? 'data' : undefined,
      );
      expect(response.statusCode, method).toBe(404);
      expect(errorCode(response.body), method).toBe('BLOB_UPLOAD_UNKNOWN');
    }
    expect(await storedPaths()).toEqual([]);
  });

  it('answers an unsatisfiable blob range with 416 RANGE_INVALID', async () => {
    const digest = await pushBlob(registry.app, 'range', randomBlob(100));
    for (const range of ['bytes=100-200', 'bytes=50-10', 'bytes=x-y', 'bytes=-0']) {
      const response = await registry.app.inject({ method: 'GET', url: `/v2/range/blobs/${digest}`, headers: { range } });
      expect(response.statusCode, range).toBe(416);
      expect(errorCode(response.body), range).toBe('RANGE_INVALID');
    }
  });

  it('answers BLOB_UNKNOWN for a blob that is stored in another repository only', async () => {
    const digest = await pushBlob(registry.app, 'owner', randomBlob(100));
    const response = await registry.app.inject({ method: 'GET', url: `/v2/stranger/blobs/${digest}` });
    expect(response.statusCode).toBe(404);
    expect(errorCode(response.body)).toBe('BLOB_UNKNOWN');
  });

  it.each([
    ['not JSON', '{"schemaVersion": 2,'],
    ['a JSON array', '[]'],
    ['schemaVersion 1', JSON.stringify({ schemaVersion: 1, mediaType: OCI_MANIFEST, config: {}, layers: [] })],
    ['a config without digest', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'x', size: 1 }, layers: [] })],
    ['a negative size', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'x', size: -1, digest: sha256(Buffer.from('a')) }, layers: [] })],
    ['layers that are not a list', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'x', size: 1, digest: sha256(Buffer.from('a')) }, layers: {} })],
    ['a mediaType that contradicts Content-Type', JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] })],
    ['a schema 1 manifest', JSON.stringify({ schemaVersion: 1, mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws' })],
  ])('rejects a manifest that is %s as MANIFEST_INVALID and stores nothing', async (_label, body) => {
    const response = await registry.app.inject({ method: 'PUT', url: '/v2/bad/manifests/latest', headers: { 'content-type': OCI_MANIFEST }, payload: body });
    expect(response.statusCode).toBe(400);
    expect(errorCode(response.body)).toBe('MANIFEST_INVALID');
    expect(await storedPaths()).toEqual([]);
  });

  it('rejects a manifest over the size limit with 413 and stores nothing', async () => {
    const config = randomBlob(10);
    await pushBlob(registry.app, 'big', config);
    const before = await storedPaths();
    const manifest = imageManifest(config, [], { annotations: { padding: 'x'.repeat(70 * 1024) } });
    const response = await registry.app.inject({ method: 'PUT', url: '/v2/big/manifests/latest', headers: { 'content-type': OCI_MANIFEST }, payload: manifest });
    expect(response.statusCode).toBe(413);
    expect(errorCode(response.body)).toBe('MANIFEST_INVALID');
    expect(await storedPaths()).toEqual(before);
  });

  it('rejects a manifest that references a missing blob with MANIFEST_BLOB_UNKNOWN and stores nothing', async () => {
    const config = randomBlob(10);
    await pushBlob(registry.app, 'missing', config);
    const before = await storedPaths();
    const manifest = imageManifest(config, [randomBlob(100)]);
    const response = await registry.app.inject({ method: 'PUT', url: '/v2/missing/manifests/latest', headers: { 'content-type': OCI_MANIFEST }, payload: manifest });
    expect(response.statusCode).toBe(400);
    expect(errorCode(response.body)).toBe('MANIFEST_BLOB_UNKNOWN');
    expect(await storedPaths()).toEqual(before);
  });

  it('rejects an index whose child manifest is not in the repository with MANIFEST_BLOB_UNKNOWN', async () => {
    const { digest, manifest } = await pushImage(registry.app, 'elsewhere', 'v1');
    const index = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: OCI_MANIFEST, digest, size: manifest.length }] });
    const response = await registry.app.inject({ method: 'PUT', url: '/v2/index/manifests/latest', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, payload: index });
    expect(errorCode(response.body)).toBe('MANIFEST_BLOB_UNKNOWN');
  });

  it('rejects a manifest PUT by digest whose content has another digest', async () => {
    const config = randomBlob(10);
    await pushBlob(registry.app, 'bydigest', config);
    const before = await storedPaths();
    const response = await registry.app.inject({ method: 'PUT', url: `/v2/bydigest/manifests/${sha256(Buffer.from('other'))}`, headers: { 'content-type': OCI_MANIFEST }, payload: imageManifest(config, []) });
    expect(response.statusCode).toBe(400);
    expect(errorCode(response.body)).toBe('DIGEST_INVALID');
    expect(await storedPaths()).toEqual(before);
  });

  it('answers MANIFEST_UNKNOWN for unknown tags and digests, and for deleting them', async () => {
    await pushImage(registry.app, 'known', 'v1');
    for (const reference of ['v2', sha256(Buffer.from('nothing'))]) {
      const get = await registry.app.inject({ method: 'GET', url: `/v2/known/manifests/${reference}` });
      expect(get.statusCode).toBe(404);
      expect(errorCode(get.body)).toBe('MANIFEST_UNKNOWN');
      const del = await registry.app.inject({ method: 'DELETE', url: `/v2/known/manifests/${reference}` });
      expect(del.statusCode).toBe(404);
    }
  });

  it('rejects a pagination n that is not a number', async () => {
    await pushImage(registry.app, 'pages', 'v1');
    const response = await registry.app.inject({ method: 'GET', url: '/v2/pages/tags/list?n=ten' });
    expect(response.statusCode).toBe(400);
    expect(errorCode(response.body)).toBe('PAGINATION_NUMBER_INVALID');
  });

  it('answers an unsupported method with 405 UNSUPPORTED and unknown paths with 404', async () => {
    const method = await registry.app.inject({ method: 'PATCH', url: '/v2/x/manifests/latest', payload: '{}' });
    expect(method.statusCode).toBe(405);
    expect(errorCode(method.body)).toBe('UNSUPPORTED');
    const unknown = await registry.app.inject({ method: 'GET', url: '/v2/x/nothing' });
    expect(unknown.statusCode).toBe(404);
    const outside = await registry.app.inject({ method: 'GET', url: '/elsewhere' });
    expect(outside.statusCode).toBe(404);
  });

  it('never answers 500 to a POST with a body but no digest', async () => {
    const response = await registry.app.inject({ method: 'POST', url: '/v2/body/blobs/uploads/', headers: { 'content-type': 'application/octet-stream' }, payload: randomBlob(100) });
    expect(response.statusCode).toBe(400);
    expect(errorCode(response.body)).toBe('BLOB_UPLOAD_INVALID');
    expect(await storedPaths()).toEqual([]);
  });
});
