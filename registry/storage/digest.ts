/**
 * Digests: parsing, validation, and streaming hashers for the algorithms the registry supports.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DigestInvalidError } from './errors.js';

/** A validated digest string, `<algorithm>:<encoded>`. */
export type Digest = string & { readonly __digest: unique symbol };

/** The digest algorithms the registry stores and verifies, with the length of their hex encoding. */
export const DigestAlgorithms = { sha256: 64, sha512: 128 } as const;

/** A supported digest algorithm. */
export type DigestAlgorithm = keyof typeof DigestAlgorithms;

const GRAMMAR = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Returns true for a supported algorithm name. */
export function isDigestAlgorithm(value: string): value is DigestAlgorithm {
  return Object.hasOwn(DigestAlgorithms, value);
}

/**
 * Parses a digest string; throws DigestInvalidError when it is malformed and UnsupportedError when its
 * algorithm is well formed but not one the registry supports.
 */
export function parseDigest(value: string): Digest {
  if (value.length > 256 || !GRAMMAR.test(value)) throw new DigestInvalidError(`invalid digest "${truncate(value)}"`);
  const i = value.indexOf(':');
  const algorithm = value.slice(0, i);
  const hex = value.slice(i + 1);
  if (!isDigestAlgorithm(algorithm)) throw new DigestInvalidError(`unsupported digest algorithm "${truncate(algorithm)}"`);
  if (hex.length !== DigestAlgorithms[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw new DigestInvalidError(`invalid ${algorithm} digest "${truncate(value)}"`);
  }
  return value as Digest;
}

/** Returns the algorithm of a validated digest. */
export function digestAlgorithm(digest: Digest): DigestAlgorithm {
  return digest.slice(0, digest.indexOf(':')) as DigestAlgorithm;
}

/** Computes the digest of bytes held in memory (manifests, never blobs). */
export function digestOf(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}` as Digest;
}

/** Finishes a hash into a digest. */
export function digestFromHash(hash: Hash, algorithm: DigestAlgorithm): Digest {
  return `${algorithm}:${hash.digest('hex')}` as Digest;
}

/**
 * A pass-through stream that counts every byte that flows through it and hashes it when given a hash, so a
 * blob is verified while it streams and is never held in memory.
 */
export class HashingStream extends Transform {
  /** Bytes seen so far. */
  bytes = 0;

  constructor(readonly hash: Hash | undefined) {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash?.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

function truncate(value: string): string {
  return value.length > 80 ? `${value.slice(0, 80)}…` : value;
}
