/**
 * Typed storage-driver errors, the only errors a driver (through the base wrapper) lets escape. Callers
 * branch on these classes; anything else a driver throws is wrapped in DriverError.
 */

/** No object or directory exists at the path. */
export class PathNotFoundError extends Error {
  constructor(readonly path: string, readonly driver: string) {
    super(`${driver}: path not found: ${path}`);
    this.name = 'PathNotFoundError';
  }
}

/** The path does not have the shape every storage path must have. */
export class InvalidPathError extends Error {
  constructor(readonly path: string, readonly driver: string) {
    super(`${driver}: invalid path: ${path}`);
    this.name = 'InvalidPathError';
  }
}

/** A read was asked to start past the end of the object. */
export class InvalidOffsetError extends Error {
  constructor(readonly path: string, readonly offset: number, readonly driver: string) {
    super(`${driver}: invalid offset ${offset} for ${path}`);
    this.name = 'InvalidOffsetError';
  }
}

/** Any other failure of the backend, with the original error as its cause. */
export class DriverError extends Error {
  constructor(readonly driver: string, readonly operation: string, cause: unknown) {
    super(`${driver}: ${operation} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'DriverError';
  }
}

/** Returns true when an error is one the driver contract lets through unwrapped. */
export function isDriverContractError(error: unknown): boolean {
  return (
    error instanceof PathNotFoundError ||
    error instanceof InvalidPathError ||
    error instanceof InvalidOffsetError ||
    error instanceof DriverError ||
    (error instanceof Error && error.name === 'AbortError')
  );
}
