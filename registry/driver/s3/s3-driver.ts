/**
 * A storage driver on an S3-compatible object store (`@aws-sdk/client-s3`), configured as CNCF
 * Distribution's `storage.s3`. Objects are keys below `rootdirectory`; directories are key prefixes.
 *
 * Streamed writes use multipart uploads whose parts are `chunkSize` bytes (at least 5 MiB), with one part
 * being sent while the next one fills, so memory per write is about two parts whatever the object's size.
 * S3 has no append: appending to an object makes a new multipart upload whose first part is a
 * server-side copy of the existing object (or, below the 5 MiB minimum part size, its bytes re-sent).
 * Throttling and 5xx answers are retried by the SDK's standard retry strategy.
 */
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { FileInfo, StorageDriver, WriteOptions, WalkDecision } from '../driver.js';
import { InvalidOffsetError, PathNotFoundError } from '../errors.js';
import { walkByListing } from '../walk.js';

const NAME = 's3';
const MiB = 1024 * 1024;
/** S3's smallest part, except the last one of an upload. */
export const MIN_PART_SIZE = 5 * MiB;
/** S3's largest single copy; larger objects are copied in parts of this size. */
const MAX_COPY_PART = 5 * 1024 * MiB;

/** Settings of the S3 driver (Distribution's `storage.s3`). */
export interface S3DriverOptions {
  readonly bucket: string;
  readonly region: string;
  /** An S3-compatible endpoint (`regionendpoint`), such as MinIO's URL. */
  readonly endpoint?: string;
  /** Address buckets as `endpoint/bucket/key` rather than `bucket.endpoint/key`. */
  readonly forcePathStyle?: boolean;
  /** Keys are stored below this prefix. */
  readonly rootDirectory?: string;
  /** Static credentials; without them the SDK's default credential chain is used. */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** Multipart part size in bytes (at least 5 MiB). */
  readonly chunkSize?: number;
  /** Use https when the endpoint has no scheme. */
  readonly secure?: boolean;
  /** Do not verify the endpoint's TLS certificate. */
  readonly skipVerify?: boolean;
  /** Attempts per request, counting the first, for throttling and 5xx answers. */
  readonly maxAttempts?: number;
  /** Seconds a presigned blob URL stays valid. */
  readonly redirectExpirySeconds?: number;
}

function isNotFound(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

/** A conditional write refused: the object exists (412), or another conditional write to it is in progress (409). */
function isConditionFailed(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  const status = e?.$metadata?.httpStatusCode;
  return e?.name === 'PreconditionFailed' || e?.name === 'ConditionalRequestConflict' || status === 412 || status === 409;
}

function isInvalidRange(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return e?.name === 'InvalidRange' || e?.$metadata?.httpStatusCode === 416;
}

/** Stores objects as keys in an S3 bucket. */
export class S3Driver implements StorageDriver {
  readonly name = NAME;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly root: string;
  private readonly partSize: number;
  private readonly expiry: number;

  constructor(options: S3DriverOptions) {
    let endpoint = options.endpoint;
    if (endpoint !== undefined && !/^https?:\/\//.test(endpoint)) {
      endpoint = `${options.secure === false ? 'http' : 'https'}://${endpoint}`;
    }
    this.client = new S3Client({
      region: options.region,
      ...(endpoint !== undefined ? { endpoint } : {}),
      forcePathStyle: options.forcePathStyle ?? false,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      maxAttempts: options.maxAttempts ?? 5,
      retryMode: 'standard',
      requestHandler: new NodeHttpHandler({
        ...(options.skipVerify ? { httpsAgent: new HttpsAgent({ rejectUnauthorized: false, keepAlive: true }) } : {}),
        // A connection that cannot be made fails (and is retried) instead of waiting forever.
        connectionTimeout: 10_000,
      }),
    });
    this.bucket = options.bucket;
    this.root = (options.rootDirectory ?? '').replace(/^\/+|\/+$/g, '');
    this.partSize = Math.max(MIN_PART_SIZE, options.chunkSize ?? 10 * MiB);
    this.expiry = options.redirectExpirySeconds ?? 20 * 60;
  }

  /** The bucket key of a storage path. */
  private key(path: string): string {
    const relative = path.replace(/^\/+/, '');
    return this.root === '' ? relative : relative === '' ? this.root : `${this.root}/${relative}`;
  }

  /** The key prefix of a directory, with its trailing slash. */
  private prefix(path: string): string {
    const key = this.key(path);
    return key === '' ? '' : `${key}/`;
  }

  async getContent(path: string, signal?: AbortSignal): Promise<Buffer> {
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(path) }), { abortSignal: signal });
      return Buffer.from(await (response.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
    } catch (error) {
      if (isNotFound(error)) throw new PathNotFoundError(path, NAME);
      throw error;
    }
  }

  async putContent(path: string, content: Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: this.key(path), Body: content, ContentLength: content.length }),
      { abortSignal: signal },
    );
  }

  async putContentIfAbsent(path: string, content: Uint8Array, signal?: AbortSignal): Promise<boolean> {
    try {
      // S3's conditional write (If-None-Match: *), also in MinIO; a store that ignores the header overwrites.
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: this.key(path), Body: content, ContentLength: content.length, IfNoneMatch: '*' }),
        { abortSignal: signal },
      );
      return true;
    } catch (error) {
      if (isConditionFailed(error)) return false;
      throw error;
    }
  }

  async reader(path: string, offset = 0, length?: number, signal?: AbortSignal): Promise<Readable> {
    if (length === 0) {
      const info = await this.stat(path, signal);
      if (info.isDir) throw new PathNotFoundError(path, NAME);
      if (offset > info.size) throw new InvalidOffsetError(path, offset, NAME);
      return Readable.from([]);
    }
    const range = `bytes=${offset}-${length === undefined ? '' : offset + length - 1}`;
    try {
      const response = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.key(path), ...(offset > 0 || length !== undefined ? { Range: range } : {}) }),
        { abortSignal: signal },
      );
      return response.Body as Readable;
    } catch (error) {
      if (isNotFound(error)) throw new PathNotFoundError(path, NAME);
      if (isInvalidRange(error)) {
        const info = await this.stat(path, signal);
        if (offset === info.size) return Readable.from([]);
        throw new InvalidOffsetError(path, offset, NAME);
      }
      throw error;
    }
  }

  async writeStream(path: string, source: Readable, options: WriteOptions): Promise<number> {
    let existing: { size: number } | undefined;
    if (options.append) {
      try {
        const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(path) }), { abortSignal: options.signal });
        existing = { size: head.ContentLength ?? 0 };
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
    return this.writeParts(path, source, existing, options.signal, options.append ? undefined : options.verify);
  }

  /**
   * Uploads `source` to `path` in parts of `partSize`, after the object's current bytes when `existing` is
   * given, and returns the bytes taken from `source`. Small results go in one PutObject.
   */
  private async writeParts(
    path: string,
    source: Readable,
    existing: { size: number } | undefined,
    signal?: AbortSignal,
    verify?: () => void | Promise<void>,
  ): Promise<number> {
    const Key = this.key(path);
    const Bucket = this.bucket;
    const abort = { abortSignal: signal };
    let uploadId: string | undefined;
    const parts: CompletedPart[] = [];
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let received = 0;
    let inFlight: Promise<void> | undefined;

    const start = async (): Promise<string> => {
      uploadId ??= (await this.client.send(new CreateMultipartUploadCommand({ Bucket, Key }), abort)).UploadId;
      if (uploadId === undefined) throw new Error('CreateMultipartUpload returned no upload id');
      return uploadId;
    };
    const sendPart = async (body: Buffer): Promise<void> => {
      const id = await start();
      const PartNumber = parts.length + 1;
      parts.push({ PartNumber });
      const previous = inFlight;
      inFlight = (async () => {
        const result = await this.client.send(
          new UploadPartCommand({ Bucket, Key, UploadId: id, PartNumber, Body: body, ContentLength: body.length }),
          abort,
        );
        parts[PartNumber - 1] = { PartNumber, ETag: result.ETag };
      })();
      // At most one part travels while the next one fills: memory stays near two parts.
      await previous;
    };
    const takePending = (size: number): Buffer => {
      const all = Buffer.concat(pending, pendingBytes);
      const part = all.subarray(0, size);
      const rest = all.subarray(size);
      pending = rest.length > 0 ? [rest] : [];
      pendingBytes = rest.length;
      return part;
    };

    try {
      if (existing !== undefined && existing.size > 0) {
        if (existing.size >= MIN_PART_SIZE) {
          const id = await start();
          for (let offset = 0; offset < existing.size; offset += MAX_COPY_PART) {
            const end = Math.min(existing.size, offset + MAX_COPY_PART) - 1;
            const PartNumber = parts.length + 1;
            const result = await this.client.send(
              new UploadPartCopyCommand({
                Bucket,
                Key,
                UploadId: id,
                PartNumber,
                CopySource: `${Bucket}/${encodeURIComponent(Key).replace(/%2F/g, '/')}`,
                CopySourceRange: `bytes=${offset}-${end}`,
              }),
              abort,
            );
            parts.push({ PartNumber, ETag: result.CopyPartResult?.ETag });
          }
        } else {
          // Below S3's minimum part size the existing bytes cannot be a copied part; send them again.
          const bytes = await this.getContent(path, signal);
          pending.push(bytes);
          pendingBytes += bytes.length;
        }
      }
      for await (const chunk of source) {
        const buffer = chunk as Buffer;
        pending.push(buffer);
        pendingBytes += buffer.length;
        received += buffer.length;
        while (pendingBytes >= this.partSize) await sendPart(takePending(this.partSize));
      }
      if (uploadId === undefined) {
        const body = Buffer.concat(pending, pendingBytes);
        await verify?.();
        await this.client.send(new PutObjectCommand({ Bucket, Key, Body: body, ContentLength: body.length }), abort);
        return received;
      }
      if (pendingBytes > 0) await sendPart(takePending(pendingBytes));
      await inFlight;
      // The parts are invisible until the upload completes: verify first, and abort below if that fails.
      await verify?.();
      await this.client.send(
        new CompleteMultipartUploadCommand({ Bucket, Key, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
        abort,
      );
      return received;
    } catch (error) {
      await inFlight?.catch(() => undefined);
      if (uploadId !== undefined) {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: uploadId })).catch(() => undefined);
      }
      throw error;
    }
  }

  async stat(path: string, signal?: AbortSignal): Promise<FileInfo> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(path) }), { abortSignal: signal });
      return { path, size: head.ContentLength ?? 0, modTime: head.LastModified ?? new Date(0), isDir: false };
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const listed = await this.client.send(
      new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix(path), MaxKeys: 1 }),
      { abortSignal: signal },
    );
    if ((listed.KeyCount ?? 0) > 0) return { path, size: 0, modTime: new Date(0), isDir: true };
    throw new PathNotFoundError(path, NAME);
  }

  async list(path: string, signal?: AbortSignal): Promise<string[]> {
    const prefix = this.prefix(path);
    const base = path === '/' ? '' : path;
    const children = new Set<string>();
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token }),
        { abortSignal: signal },
      );
      for (const common of page.CommonPrefixes ?? []) {
        if (common.Prefix) children.add(`${base}/${common.Prefix.slice(prefix.length, -1)}`);
      }
      for (const object of page.Contents ?? []) {
        if (object.Key) children.add(`${base}/${object.Key.slice(prefix.length)}`);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    if (children.size === 0) throw new PathNotFoundError(path, NAME);
    return [...children].sort();
  }

  async move(source: string, destination: string, signal?: AbortSignal): Promise<void> {
    const Key = this.key(destination);
    const CopySource = `${this.bucket}/${encodeURIComponent(this.key(source)).replace(/%2F/g, '/')}`;
    try {
      // One CopyObject serves every object up to 5 GiB; only a refusal sends us to the multipart copy.
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key, CopySource }), { abortSignal: signal });
    } catch (error) {
      if (isNotFound(error)) throw new PathNotFoundError(source, NAME);
      const info = await this.stat(source, signal);
      if (info.isDir) throw new PathNotFoundError(source, NAME);
      if (info.size <= MAX_COPY_PART) throw error;
      await this.multipartCopy(CopySource, Key, info.size, signal);
    }
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(source) }), { abortSignal: signal });
  }

  /** Copies an object larger than one CopyObject allows, in 5 GiB parts. */
  private async multipartCopy(CopySource: string, Key: string, size: number, signal?: AbortSignal): Promise<void> {
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key }), { abortSignal: signal });
    const parts: CompletedPart[] = [];
    try {
      for (let offset = 0; offset < size; offset += MAX_COPY_PART) {
        const PartNumber = parts.length + 1;
        const result = await this.client.send(
          new UploadPartCopyCommand({
            Bucket: this.bucket,
            Key,
            UploadId,
            PartNumber,
            CopySource,
            CopySourceRange: `bytes=${offset}-${Math.min(size, offset + MAX_COPY_PART) - 1}`,
          }),
          { abortSignal: signal },
        );
        parts.push({ PartNumber, ETag: result.CopyPartResult?.ETag });
      }
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (error) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId })).catch(() => undefined);
      throw error;
    }
  }

  async delete(path: string, signal?: AbortSignal): Promise<void> {
    // Registry deletes are nearly always directories (a link's directory, an upload), so list first and
    // look for a single object only when the prefix is empty.
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix(path), ContinuationToken: token }),
        { abortSignal: signal },
      );
      for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    if (keys.length === 0) {
      try {
        await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(path) }), { abortSignal: signal });
      } catch (error) {
        if (isNotFound(error)) throw new PathNotFoundError(path, NAME);
        throw error;
      }
      keys.push(this.key(path));
    }
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      if (batch.length === 1) {
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: batch[0] }), { abortSignal: signal });
      } else {
        await this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
          { abortSignal: signal },
        );
      }
    }
  }

  async redirectURL(method: 'GET' | 'HEAD', path: string): Promise<string | null> {
    const input = { Bucket: this.bucket, Key: this.key(path) };
    const command = method === 'GET' ? new GetObjectCommand(input) : new HeadObjectCommand(input);
    return getSignedUrl(this.client, command, { expiresIn: this.expiry });
  }

  walk(path: string, visit: (info: FileInfo) => Promise<WalkDecision> | WalkDecision, signal?: AbortSignal): Promise<void> {
    return walkByListing(this, path, visit, signal);
  }

  /**
   * Aborts multipart uploads under the root directory that were started before `before` and never completed.
   * The bucket's uploads are listed without a prefix and filtered here: MinIO lists by exact key only.
   * (On AWS, a lifecycle rule with AbortIncompleteMultipartUpload does the same without a registry.)
   */
  async purgeOrphans(before: Date, dryRun: boolean): Promise<string[]> {
    const purged: string[] = [];
    const prefix = this.prefix('/');
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({ Bucket: this.bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
      );
      for (const upload of page.Uploads ?? []) {
        if (upload.Key?.startsWith(prefix) !== true || upload.UploadId === undefined || upload.Initiated === undefined || upload.Initiated >= before) continue;
        purged.push(`multipart upload of ${upload.Key} started ${upload.Initiated.toISOString()}`);
        if (!dryRun) await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId }));
      }
      if (page.IsTruncated !== true) return purged;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  /** Releases the client's sockets. */
  destroy(): void {
    this.client.destroy();
  }
}
