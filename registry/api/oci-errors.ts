/**
 * The one place errors become HTTP: maps every error a handler throws to an OCI error code, status and
 * JSON body. Handlers throw; they never format error bodies themselves.
 */
import { DriverError, InvalidOffsetError, InvalidPathError } from '../driver/errors.js';
import {
  ErrorCodes,
  RegistryError,
  UnavailableError,
  type ErrorCode,
} from '../storage/errors.js';

/** The usual HTTP status of each code. */
const STATUS: Record<ErrorCode, number> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  TAG_INVALID: 400,
  RANGE_INVALID: 416,
  PAGINATION_NUMBER_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  UNAVAILABLE: 503,
  UNKNOWN: 500,
};

/** An error ready to be sent: status, extra headers and the OCI JSON body. */
export interface HttpError {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: { errors: { code: ErrorCode; message: string; detail?: unknown }[] };
  /** True when the cause is the server's, so it is logged as an error rather than a client mistake. */
  readonly serverFault: boolean;
}

function body(code: ErrorCode, message: string, detail?: unknown): HttpError['body'] {
  return { errors: [{ code, message, ...(detail === undefined ? {} : { detail }) }] };
}

/** Maps any thrown value to the HTTP error a client receives. */
export function toHttpError(error: unknown): HttpError {
  // A write stopped by the server (a maintenance window) carries the reason it was stopped.
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  if ((error as Error | undefined)?.name === 'AbortError' && cause instanceof RegistryError) return toHttpError(cause);
  if (error instanceof RegistryError) {
    const headers: Record<string, string> = {};
    if (error instanceof UnavailableError && error.retryAfterSeconds !== undefined) {
      headers['retry-after'] = String(Math.max(1, Math.ceil(error.retryAfterSeconds)));
    }
    const status = error.status ?? STATUS[error.code];
    return { status, headers, body: body(error.code, error.message, error.detail), serverFault: status >= 500 };
  }
  if (error instanceof InvalidPathError || error instanceof InvalidOffsetError) {
    return { status: 400, headers: {}, body: body(ErrorCodes.UNSUPPORTED, 'the request names an invalid location'), serverFault: false };
  }
  if (error instanceof DriverError) {
    return {
      status: 503,
      headers: { 'retry-after': '1' },
      body: body(ErrorCodes.UNAVAILABLE, 'the storage backend failed; retry the request'),
      serverFault: true,
    };
  }
  const fastifyCode = (error as { code?: unknown } | undefined)?.code;
  const statusCode = (error as { statusCode?: unknown } | undefined)?.statusCode;
  if (typeof fastifyCode === 'string' && fastifyCode.startsWith('FST_') && typeof statusCode === 'number' && statusCode < 500) {
    const code = statusCode === 413 ? ErrorCodes.SIZE_INVALID : ErrorCodes.UNSUPPORTED;
    return { status: statusCode, headers: {}, body: body(code, (error as Error).message), serverFault: false };
  }
  if ((error as Error | undefined)?.name === 'AbortError' || (error as { code?: unknown } | undefined)?.code === 'ECONNRESET') {
    return { status: 400, headers: {}, body: body(ErrorCodes.UNKNOWN, 'the request was aborted by the client'), serverFault: false };
  }
  return { status: 500, headers: {}, body: body(ErrorCodes.UNKNOWN, 'an internal error occurred'), serverFault: true };
}
