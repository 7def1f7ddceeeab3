/**
 * Domain errors of the registry. Storage services throw these; the HTTP layer maps each one, in one place,
 * to its OCI error code and status. Each carries the OCI code it stands for and an optional detail object.
 */

/** The error codes of the OCI distribution spec, plus the few CNCF Distribution adds. */
export const ErrorCodes = {
  BLOB_UNKNOWN: 'BLOB_UNKNOWN',
  BLOB_UPLOAD_INVALID: 'BLOB_UPLOAD_INVALID',
  BLOB_UPLOAD_UNKNOWN: 'BLOB_UPLOAD_UNKNOWN',
  DIGEST_INVALID: 'DIGEST_INVALID',
  MANIFEST_BLOB_UNKNOWN: 'MANIFEST_BLOB_UNKNOWN',
  MANIFEST_INVALID: 'MANIFEST_INVALID',
  MANIFEST_UNKNOWN: 'MANIFEST_UNKNOWN',
  NAME_INVALID: 'NAME_INVALID',
  NAME_UNKNOWN: 'NAME_UNKNOWN',
  SIZE_INVALID: 'SIZE_INVALID',
  TAG_INVALID: 'TAG_INVALID',
  RANGE_INVALID: 'RANGE_INVALID',
  PAGINATION_NUMBER_INVALID: 'PAGINATION_NUMBER_INVALID',
  UNAUTHORIZED: 'UNAUTHORIZED',
  DENIED: 'DENIED',
  UNSUPPORTED: 'UNSUPPORTED',
  TOOMANYREQUESTS: 'TOOMANYREQUESTS',
  UNAVAILABLE: 'UNAVAILABLE',
  UNKNOWN: 'UNKNOWN',
} as const;

/** One of the error codes. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Base class of every error the registry reports to a client. */
export abstract class RegistryError extends Error {
  /** The OCI error code. */
  abstract readonly code: ErrorCode;
  /** An HTTP status that overrides the code's usual one, for the few codes the spec uses with two. */
  readonly status: number | undefined;
  /** Structured detail for the error body. */
  readonly detail: unknown;

  constructor(message: string, options: { detail?: unknown; status?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.detail = options.detail;
    this.status = options.status;
  }
}

/** The blob is not known to the repository. */
export class BlobUnknownError extends RegistryError {
  readonly code = ErrorCodes.BLOB_UNKNOWN;
}
/** The upload is not in a state that allows the request. */
export class BlobUploadInvalidError extends RegistryError {
  readonly code = ErrorCodes.BLOB_UPLOAD_INVALID;
}
/** The upload id is not known to the repository. */
export class BlobUploadUnknownError extends RegistryError {
  readonly code = ErrorCodes.BLOB_UPLOAD_UNKNOWN;
}
/** A digest is malformed, unsupported, or does not match the content. */
export class DigestInvalidError extends RegistryError {
  readonly code = ErrorCodes.DIGEST_INVALID;
}
/** A manifest references a blob or manifest the repository does not have. */
export class ManifestBlobUnknownError extends RegistryError {
  readonly code = ErrorCodes.MANIFEST_BLOB_UNKNOWN;
}
/** A manifest is malformed, of an unsupported type, or too large (status 413). */
export class ManifestInvalidError extends RegistryError {
  readonly code = ErrorCodes.MANIFEST_INVALID;
}
/** The manifest is not known to the repository. */
export class ManifestUnknownError extends RegistryError {
  readonly code = ErrorCodes.MANIFEST_UNKNOWN;
}
/** A repository name is malformed. */
export class NameInvalidError extends RegistryError {
  readonly code = ErrorCodes.NAME_INVALID;
}
/** The repository does not exist. */
export class NameUnknownError extends RegistryError {
  readonly code = ErrorCodes.NAME_UNKNOWN;
}
/** A declared size does not match the content, or a size is malformed. */
export class SizeInvalidError extends RegistryError {
  readonly code = ErrorCodes.SIZE_INVALID;
}
/** A tag is malformed. */
export class TagInvalidError extends RegistryError {
  readonly code = ErrorCodes.TAG_INVALID;
}
/** A requested or declared byte range cannot be satisfied (status 416). */
export class RangeInvalidError extends RegistryError {
  readonly code = ErrorCodes.RANGE_INVALID;
}
/** A pagination parameter (`n`) is not a valid number. */
export class PaginationNumberInvalidError extends RegistryError {
  readonly code = ErrorCodes.PAGINATION_NUMBER_INVALID;
}
/** The operation is not supported, or not allowed by configuration (status 405). */
export class UnsupportedError extends RegistryError {
  readonly code = ErrorCodes.UNSUPPORTED;
}
/** The registry cannot serve the request right now; the client should retry (status 503). */
export class UnavailableError extends RegistryError {
  readonly code = ErrorCodes.UNAVAILABLE;
  /** Seconds after which a retry may succeed. */
  readonly retryAfterSeconds: number | undefined;

  constructor(message: string, options: { detail?: unknown; cause?: unknown; retryAfterSeconds?: number } = {}) {
    super(message, options);
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}
