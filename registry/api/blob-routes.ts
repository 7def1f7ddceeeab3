/**
 * Blob endpoints: GET/HEAD/DELETE of blobs, and the upload protocol (POST, PATCH, PUT, GET, DELETE).
 */
import { parseDigest } from '../storage/digest.js';
import { BlobUploadInvalidError, DigestInvalidError, UnsupportedError } from '../storage/errors.js';
import { assertRepositoryName } from '../storage/reference.js';
import { contentLength, hasBody, header, type RequestContext } from './context.js';
import { parseContentRange, parseRange } from './http-ranges.js';
import { decodeUploadState, encodeUploadState } from './upload-state.js';

/**
 * The URL of an upload, carrying in `_state` the size the registry last reported, signed. Clients echo the
 * URL, so any replica can tell an upload whose last bytes it cannot see yet (eventual consistency) from a
 * short one.
 */
function uploadLocation(ctx: RequestContext, id: string, size: number): string {
  return `/v2/${ctx.name}/blobs/uploads/${id}?_state=${encodeUploadState(ctx.api.uploadStateSecret, ctx.name, id, size)}`;
}

/** The size recorded in the upload URL's `_state`, if the client sent one this deployment signed. */
function expectedSize(ctx: RequestContext): number | undefined {
  return decodeUploadState(ctx.api.uploadStateSecret, ctx.name, ctx.reference, ctx.query.get('_state'));
}

function blobLocation(name: string, digest: string): string {
  return `/v2/${name}/blobs/${digest}`;
}

/** Answers 201 Created for a blob now stored in the repository. */
function sendBlobCreated(ctx: RequestContext, digest: string): void {
  ctx.reply.code(201).header('location', blobLocation(ctx.name, digest)).header('docker-content-digest', digest).header('content-length', '0').send();
}

/** Runs an upload step while counting it as in progress. */
async function receiving<T>(ctx: RequestContext, fn: () => Promise<T>): Promise<T> {
  ctx.api.onUploadActive?.(1);
  try {
    return await fn();
  } finally {
    ctx.api.onUploadActive?.(-1);
  }
}

/** GET and HEAD /v2/<name>/blobs/<digest>: serve a blob, whole or one byte range. */
export async function getBlob(ctx: RequestContext): Promise<void> {
  const { storage } = ctx.api;
  const digest = parseDigest(ctx.reference);
  const isHead = ctx.request.method === 'HEAD';
  // A HEAD is how pushers ask whether to upload: answer at once. A GET is a pull: wait out lag.
  const info = await storage.blobs.stat(ctx.name, digest, ctx.signal, !isHead);
  if (ctx.api.redirect && !isHead) {
    const url = await storage.blobs.redirectURL('GET', digest);
    if (url !== null) {
      ctx.reply.code(307).header('location', url).header('docker-content-digest', digest).send();
      return;
    }
  }
  const range = parseRange(header(ctx.request, 'range'), info.size);
  const start = range?.start ?? 0;
  const length = range === undefined ? info.size : range.end - range.start + 1;
  ctx.reply
    .code(range === undefined ? 200 : 206)
    .header('content-type', 'application/octet-stream')
    .header('content-length', String(length))
    .header('docker-content-digest', digest)
    .header('etag', `"${digest}"`)
    .header('accept-ranges', 'bytes')
    .header('cache-control', 'max-age=31536000');
  if (range !== undefined) ctx.reply.header('content-range', `bytes ${range.start}-${range.end}/${info.size}`);
  if (isHead || length === 0) {
    ctx.reply.send();
    return;
  }
  const stream = await storage.blobs.open(digest, start, length, ctx.signal);
  await ctx.reply.send(stream);
}

/** DELETE /v2/<name>/blobs/<digest>: unlink a blob from the repository. */
export async function deleteBlob(ctx: RequestContext): Promise<void> {
  if (!ctx.api.deleteEnabled) throw new UnsupportedError('deletion is disabled (storage.delete.enabled is false)');
  const digest = parseDigest(ctx.reference);
  await ctx.api.storage.blobs.unlink(ctx.name, digest, ctx.signal);
  ctx.reply.code(202).header('content-length', '0').send();
}

/**
 * POST /v2/<name>/blobs/uploads/: mount a blob from another repository (or from anywhere in the store
 * when `from` is absent and the blob exists), receive a whole blob (`?digest=`), or start an upload.
 */
export async function startUpload(ctx: RequestContext): Promise<void> {
  const { storage } = ctx.api;
  const mount = ctx.query.get('mount');
  if (mount !== null) {
    const digest = parseDigest(mount);
    const from = ctx.query.get('from');
    let mountable: boolean;
    if (from !== null) {
      assertRepositoryName(from);
      mountable = await storage.blobs.exists(from, digest, ctx.signal);
    } else {
      mountable = (await storage.blobs.statData(digest, ctx.signal)) !== undefined;
    }
    if (mountable) {
      await storage.blobs.link(ctx.name, digest, ctx.signal);
      sendBlobCreated(ctx, digest);
      return;
    }
  }
  const digestParam = ctx.query.get('digest');
  if (digestParam !== null) {
    const digest = parseDigest(digestParam);
    const info = await receiving(ctx, () =>
      storage.uploads.putMonolithic(ctx.name, digest, ctx.request.raw, contentLength(ctx.request), ctx.signal),
    );
    ctx.api.onBytesReceived?.('blob_upload_start', info.size);
    sendBlobCreated(ctx, digest);
    return;
  }
  if (hasBody(ctx.request)) {
    throw new BlobUploadInvalidError('a POST with a body must name the blob with ?digest=');
  }
  const upload = await storage.uploads.start(ctx.name, ctx.signal);
  ctx.reply
    .code(202)
    .header('location', uploadLocation(ctx, upload.id, 0))
    .header('docker-upload-uuid', upload.id)
    .header('range', '0-0')
    .header('content-length', '0')
    .send();
}

function rangeHeader(size: number): string {
  // Distribution reports an empty upload as 0-0; the spec's inclusive end is size-1 otherwise.
  return `0-${Math.max(0, size - 1)}`;
}

/** GET /v2/<name>/blobs/uploads/<id>: report how many bytes an upload has. */
export async function uploadStatus(ctx: RequestContext): Promise<void> {
  const status = await ctx.api.storage.uploads.status(ctx.name, ctx.reference, ctx.signal, expectedSize(ctx));
  ctx.reply
    .code(204)
    .header('location', uploadLocation(ctx, status.id, status.size))
    .header('docker-upload-uuid', status.id)
    .header('range', rangeHeader(status.size))
    .send();
}

/** PATCH /v2/<name>/blobs/uploads/<id>: append a chunk (with Content-Range) or a stream (without). */
export async function patchUpload(ctx: RequestContext): Promise<void> {
  const range = parseContentRange(header(ctx.request, 'content-range'));
  const length = contentLength(ctx.request);
  const status = await receiving(ctx, () =>
    ctx.api.storage.uploads.append(ctx.name, ctx.reference, ctx.request.raw, {
      ...(range ? { range } : {}),
      ...(length !== undefined ? { length } : {}),
      ...(expectedSize(ctx) !== undefined ? { expected: expectedSize(ctx) } : {}),
      signal: ctx.signal,
    }),
  );
  ctx.api.onBytesReceived?.('blob_upload', status.received);
  ctx.reply
    .code(202)
    .header('location', uploadLocation(ctx, status.id, status.size))
    .header('docker-upload-uuid', status.id)
    .header('range', rangeHeader(status.size))
    .header('content-length', '0')
    .send();
}

/** PUT /v2/<name>/blobs/uploads/<id>?digest=: finish an upload, with an optional last chunk. */
export async function finishUpload(ctx: RequestContext): Promise<void> {
  const digestParam = ctx.query.get('digest');
  if (digestParam === null) throw new DigestInvalidError('the digest query parameter is required to finish an upload');
  const digest = parseDigest(digestParam);
  const range = parseContentRange(header(ctx.request, 'content-range'));
  const length = contentLength(ctx.request);
  const last = hasBody(ctx.request)
    ? { source: ctx.request.raw, ...(range ? { range } : {}), ...(length !== undefined ? { length } : {}) }
    : undefined;
  const info = await receiving(ctx, () =>
    ctx.api.storage.uploads.commit(ctx.name, ctx.reference, digest, last, ctx.signal, expectedSize(ctx)),
  );
  if (last !== undefined && length !== undefined) ctx.api.onBytesReceived?.('blob_upload', length);
  sendBlobCreated(ctx, info.digest);
}

/** DELETE /v2/<name>/blobs/uploads/<id>: cancel an upload. */
export async function cancelUpload(ctx: RequestContext): Promise<void> {
  await ctx.api.storage.uploads.cancel(ctx.name, ctx.reference, ctx.signal);
  ctx.reply.code(204).send();
}
