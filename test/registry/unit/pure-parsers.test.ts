import { describe, expect, it } from 'vitest';
import { parseContentRange, parseRange } from '../../../registry/api/http-ranges.js';
import { matchRoute } from '../../../registry/api/route-table.js';
import { parseDigest } from '../../../registry/storage/digest.js';
import { parseManifest } from '../../../registry/storage/manifest.js';
import { assertRepositoryName } from '../../../registry/storage/reference.js';

const digest = `sha256:${'a'.repeat(64)}`;

describe('route matching', () => {
  it.each([
    ['/v2/', { endpoint: 'base' }],
    ['/v2/_catalog', { endpoint: 'catalog' }],
    ['/v2/a/b/c/tags/list', { endpoint: 'tags', name: 'a/b/c' }],
    ['/v2/a/manifests/latest', { endpoint: 'manifest', name: 'a', reference: 'latest' }],
    ['/v2/a/blobs/uploads/', { endpoint: 'blob_upload_start', name: 'a' }],
    ['/v2/a/blobs/uploads/id', { endpoint: 'blob_upload', name: 'a', reference: 'id' }],
    [`/v2/a/blobs/${digest}`, { endpoint: 'blob', name: 'a', reference: digest }],
    [`/v2/x/referrers/${digest}`, { endpoint: 'referrers', name: 'x', reference: digest }],
    ['/v2/a/blobs', { endpoint: 'unknown' }],
    ['/v3/a/manifests/x', { endpoint: 'unknown' }],
  ])('matches %s', (path, expected) => {
    expect(matchRoute(path)).toEqual(expected);
  });
});

describe('byte ranges', () => {
  it.each([
    ['bytes=0-9', 100, { start: 0, end: 9 }],
    ['bytes=90-', 100, { start: 90, end: 99 }],
    ['bytes=-5', 100, { start: 95, end: 99 }],
    ['bytes=50-1000', 100, { start: 50, end: 99 }],
    ['bytes=0-1,5-6', 100, undefined],
    ['items=0-1', 100, undefined],
  ])('reads Range %s of %i bytes', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });

  it.each(['bytes=100-', 'bytes=5-1', 'bytes=-', 'bytes=a-b'])('refuses Range %s with RANGE_INVALID', (header) => {
    expect(() => parseRange(header, 100)).toThrow(expect.objectContaining({ code: 'RANGE_INVALID' }));
  });

  it('reads chunk Content-Range with and without a unit', () => {
    expect(parseContentRange('0-99')).toEqual({ start: 0, end: 99 });
    expect(parseContentRange('bytes 100-199/*')).toEqual({ start: 100, end: 199 });
    expect(() => parseContentRange('9-1')).toThrow();
  });
});

describe('names and digests', () => {
  it.each(['a', 'library/ubuntu', 'a.b_c__d---e/f', 'x'.repeat(255)])('accepts the name %s', (name) => {
    expect(() => assertRepositoryName(name)).not.toThrow();
  });
  it.each(['', 'A', '-a', 'a-', 'a//b', '../a', 'a/..', 'a b', 'x'.repeat(256), 'a___b'])('rejects the name "%s"', (name) => {
    expect(() => assertRepositoryName(name)).toThrow(expect.objectContaining({ code: 'NAME_INVALID' }));
  });
  it('accepts sha256 and sha512 digests and rejects the rest', () => {
    expect(parseDigest(digest)).toBe(digest);
    expect(parseDigest(`sha512:${'b'.repeat(128)}`)).toBeTruthy();
    for (const bad of ['sha256:', `sha256:${'a'.repeat(63)}`, `SHA256:${'a'.repeat(64)}`, `sha384:${'a'.repeat(96)}`]) {
      expect(() => parseDigest(bad)).toThrow(expect.objectContaining({ code: 'DIGEST_INVALID' }));
    }
  });
});

describe('manifest parsing', () => {
  const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: 2 };
  it('takes the artifact type from artifactType, else from the config media type', () => {
    const plain = parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers: [] })), 'application/vnd.oci.image.manifest.v1+json');
    expect(plain.artifactType).toBe(config.mediaType);
    const artifact = parseManifest(
      Buffer.from(JSON.stringify({ schemaVersion: 2, artifactType: 'application/x', config, layers: [] })),
      'application/vnd.oci.image.manifest.v1+json',
    );
    expect(artifact.artifactType).toBe('application/x');
  });
  it('leaves foreign layers (with urls) out of the blobs that must exist', () => {
    const parsed = parseManifest(
      Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers: [{ mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', digest, size: 1, urls: ['https://example.com/l'] }] })),
      'application/vnd.oci.image.manifest.v1+json',
    );
    expect(parsed.blobs).toHaveLength(1);
  });
  it('detects an index without mediaType from its manifests list', () => {
    const parsed = parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] })), undefined);
    expect(parsed.mediaType).toBe('application/vnd.oci.image.index.v1+json');
  });
});
