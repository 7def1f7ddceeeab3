/**
 * Manifest endpoints: GET/HEAD/PUT/DELETE of manifests by tag or digest.
 */
import type { Readable } from 'node:stream';
import { parseDigest } from '../storage/digest.js';
import { ManifestInvalidError, UnsupportedError } from '../storage/errors.js';
import { assertTag, isTag } from '../storage/reference.js';
import { contentLength, header, type RequestContext } from './context.js';

/** Reads a request body of at most `limit` bytes; a larger one gets 413. */
async function readLimited(source: Readable, limit: number, declared: number | undefined): Promise<Buffer> {
  const tooLarge = () => new ManifestInvalidError(`the manifest is larger than the limit of ${limit} bytes`, { status: 413 });
  if (declared !== undefined && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of source) {
    total += (chunk as Buffer).length;
    if (total > limit) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, total);
}

/** Validates a manifest reference: a tag, or a digest. */
function checkReference(reference: string): void {
  if (isTag(reference)) return;
  if (reference.includes(':')) parseDigest(reference);
  else assertTag(reference);
}

/** GET and HEAD /v2/<name>/manifests/<reference>. */
export async function getManifest(ctx: RequestContext): Promise<void> {
  checkReference(ctx.reference);
  const manifest = await ctx.api.storage.manifests.get(ctx.name, ctx.reference, ctx.signal);
  ctx.reply
    .code(200)
    .header('content-type', manifest.mediaType)
    .header('content-length', String(manifest.bytes.length))
    .header('docker-content-digest', manifest.digest)
    .header('etag', `"${manifest.digest}"`);
  if (ctx.request.method === 'HEAD') ctx.reply.send();
  else ctx.reply.send(manifest.bytes);
}

/** PUT /v2/<name>/manifests/<reference>[?tag=…]: store a manifest. */
export async function putManifest(ctx: RequestContext): Promise<void> {
  checkReference(ctx.reference);
  const tags = ctx.query.getAll('tag');
  for (const tag of tags) assertTag(tag);
  const bytes = await readLimited(ctx.request.raw, ctx.api.manifestSizeLimit, contentLength(ctx.request));
  ctx.api.onBytesReceived?.('manifest', bytes.length);
  const result = await ctx.api.storage.manifests.put(ctx.name, ctx.reference, bytes, header(ctx.request, 'content-type'), tags, ctx.signal);
  ctx.reply
    .code(201)
    .header('location', `/v2/${ctx.name}/manifests/${result.digest}`)
    .header('docker-content-digest', result.digest)
    .header('content-length', '0');
  if (result.subject !== undefined) ctx.reply.header('oci-subject', result.subject);
  // The spec's main branch: each tag given with ?tag= is confirmed in an OCI-Tag header.
  if (tags.length > 0) ctx.reply.header('oci-tag', [...new Set(tags)]);
  ctx.reply.send();
}

/** DELETE /v2/<name>/manifests/<reference>: delete a manifest (by digest) or a tag. */
export async function deleteManifest(ctx: RequestContext): Promise<void> {
  if (!ctx.api.deleteEnabled) throw new UnsupportedError('deletion is disabled (storage.delete.enabled is false)');
  checkReference(ctx.reference);
  if (isTag(ctx.reference)) await ctx.api.storage.manifests.deleteTag(ctx.name, ctx.reference, ctx.signal);
  else await ctx.api.storage.manifests.delete(ctx.name, parseDigest(ctx.reference), ctx.signal);
  ctx.reply.code(202).header('content-length', '0').send();
}
