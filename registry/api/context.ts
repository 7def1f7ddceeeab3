/**
 * What every API handler receives: the storage services, the policy switches, and the request at hand.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RegistryStorage } from '../storage/registry-storage.js';

/** Decides whether writes are allowed right now; throws the error a refused write gets. */
export interface WriteGuard {
  /** Throws (UnsupportedError in read-only mode, UnavailableError during maintenance) when writes are refused. */
  assertWritable(): void;
  /**
   * Registers a write in flight, so a maintenance window can wait for it or abort it; `end` when done.
   * `requestSignal` is the signal the request's storage calls carry, by which the write is recognised.
   */
  beginWrite?(requestSignal?: AbortSignal): { signal: AbortSignal; end(): void };
}

/** The API's dependencies and policy. */
export interface ApiOptions {
  readonly storage: RegistryStorage;
  /** `storage.delete.enabled`: DELETE of manifests, tags and blobs is allowed. */
  readonly deleteEnabled: boolean;
  /** Blob GETs may redirect to a URL the driver offers (`storage.redirect.disable: false`). */
  readonly redirect: boolean;
  readonly writeGuard: WriteGuard;
  /** Signs the upload state in upload URLs; every replica of a deployment must hold the same one. */
  readonly uploadStateSecret: Uint8Array;
  /** The largest manifest accepted, in bytes; larger ones get 413. */
  readonly manifestSizeLimit: number;
  /** Counts bytes received by blob uploads, as they are stored. */
  readonly onBytesReceived?: (route: string, bytes: number) => void;
  /** Tracks upload requests being received. */
  readonly onUploadActive?: (delta: 1 | -1) => void;
}

/** One request, matched and ready for its handler. */
export interface RequestContext {
  readonly api: ApiOptions;
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  /** The validated repository name (empty for base and catalog). */
  readonly name: string;
  /** The tag, digest or upload id from the path, unvalidated. */
  readonly reference: string;
  readonly query: URLSearchParams;
  /** Aborts when the client goes away before the response is finished. */
  readonly signal: AbortSignal;
}

/** Returns a request header as one string (the first when repeated). */
export function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Returns the request's declared body length, or undefined when it has none or is chunked. */
export function contentLength(request: FastifyRequest): number | undefined {
  const value = header(request, 'content-length');
  if (value === undefined) return undefined;
  const length = Number(value);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

/** Returns true when the request carries a body (a length above zero, or chunked transfer). */
export function hasBody(request: FastifyRequest): boolean {
  const length = contentLength(request);
  if (length !== undefined) return length > 0;
  return header(request, 'transfer-encoding') !== undefined;
}
