/**
 * The `_state` an upload URL carries: the size the registry last reported, signed with the registry's HTTP
 * secret (`http.secret`, as in CNCF Distribution) so that a replica trusts only a hint another replica of the
 * same deployment gave. A hint with a bad signature is ignored, never an error: it only says how long to wait
 * for bytes a store may not show yet.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** A secret for a registry that was given none: good for one process, not shared with any other. */
export const PROCESS_SECRET = randomBytes(32);

function signature(secret: Uint8Array, name: string, id: string, size: number): string {
  return createHmac('sha256', secret).update(`${name}\n${id}\n${size}`).digest('base64url').slice(0, 22);
}

/** Encodes the state for an upload URL: `<size>.<signature>`. */
export function encodeUploadState(secret: Uint8Array, name: string, id: string, size: number): string {
  return `${size}.${signature(secret, name, id, size)}`;
}

/** Returns the size a well-formed, correctly signed state carries; undefined for anything else. */
export function decodeUploadState(secret: Uint8Array, name: string, id: string, state: string | null): number | undefined {
  const match = state === null ? null : /^(\d{1,15})\.([A-Za-z0-9_-]{22})$/.exec(state);
  if (match === null) return undefined;
  const size = Number(match[1]);
  const expected = Buffer.from(signature(secret, name, id, size));
  const given = Buffer.from(match[2] as string);
  return timingSafeEqual(expected, given) ? size : undefined;
}
