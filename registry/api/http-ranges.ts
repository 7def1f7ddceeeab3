/**
 * Parsing of the byte ranges clients send: `Range` on blob GETs and `Content-Range` on upload chunks. Pure.
 */
import { RangeInvalidError } from '../storage/errors.js';
import type { ChunkRange } from '../storage/upload-store.js';

/** A satisfiable byte range of a blob, `start` and `end` inclusive. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/**
 * Parses a `Range` header against a blob of `size` bytes. Returns undefined when the whole blob should be
 * served (no header, another unit, or several ranges, which RFC 9110 lets a server ignore); throws
 * RangeInvalidError (416) for a malformed or unsatisfiable byte range.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (!value.toLowerCase().startsWith('bytes=')) return undefined;
  const spec = value.slice(6).trim();
  if (spec.includes(',')) return undefined;
  const match = /^(\d*)-(\d*)$/.exec(spec);
  const invalid = () =>
    new RangeInvalidError(`range "${value.slice(0, 60)}" cannot be satisfied for ${size} bytes`, {
      status: 416,
      detail: { size },
    });
  if (match === null) throw invalid();
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') throw invalid();
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) throw invalid();
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (!Number.isSafeInteger(start) || start >= size || (last !== '' && Number(last) < start)) throw invalid();
  return { start, end };
}

/** Parses an upload chunk's `Content-Range` (`<start>-<end>`, optionally with a `bytes ` prefix). */
export function parseContentRange(header: string | undefined): ChunkRange | undefined {
  if (header === undefined) return undefined;
  const match = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (match === null) {
    throw new RangeInvalidError(`Content-Range "${header.slice(0, 60)}" is not of the form <start>-<end>`, { status: 416 });
  }
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) {
    throw new RangeInvalidError(`Content-Range "${header.slice(0, 60)}" is not a valid range`, { status: 416 });
  }
  return { start, end };
}
