/**
 * Parsing and validation of manifests, over the exact bytes received. Pure: no storage, no HTTP.
 */
import { parseDigest, type Digest } from './digest.js';
import { ManifestInvalidError } from './errors.js';

/** The manifest media types the registry stores. */
export const ManifestMediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

/** One of the manifest media types the registry stores. */
export type ManifestMediaType = (typeof ManifestMediaTypes)[keyof typeof ManifestMediaTypes];

const SUPPORTED = new Set<string>(Object.values(ManifestMediaTypes));
const INDEX_TYPES = new Set<string>([ManifestMediaTypes.ociIndex, ManifestMediaTypes.dockerManifestList]);
const SCHEMA1 = new Set([
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
]);

/** An OCI content descriptor, as found in manifests and in the referrers response. */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly artifactType?: string;
  readonly annotations?: Record<string, string>;
  readonly urls?: readonly string[];
  readonly platform?: unknown;
}

/** What the registry needs to know of a manifest it stores. */
export interface ParsedManifest {
  readonly mediaType: ManifestMediaType;
  /** Blobs the manifest references that must exist in the repository (config and layers). */
  readonly blobs: readonly Descriptor[];
  /** Manifests the manifest references that must exist in the repository (children of an index). */
  readonly manifests: readonly Descriptor[];
  readonly subject?: Descriptor;
  /** The artifact type the referrers API reports: `artifactType`, else the config's media type. */
  readonly artifactType?: string;
  readonly annotations?: Record<string, string>;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseDescriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw new ManifestInvalidError(`${where} is not a descriptor object`);
  const { mediaType, digest, size, artifactType, annotations, urls } = value;
  if (typeof mediaType !== 'string' || mediaType.length === 0) {
    throw new ManifestInvalidError(`${where}.mediaType is missing or not a string`);
  }
  if (typeof digest !== 'string') throw new ManifestInvalidError(`${where}.digest is missing or not a string`);
  let parsed: Digest;
  try {
    parsed = parseDigest(digest);
  } catch {
    throw new ManifestInvalidError(`${where}.digest "${digest.slice(0, 80)}" is not a valid digest`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new ManifestInvalidError(`${where}.size is missing or not a non-negative integer`);
  }
  if (artifactType !== undefined && typeof artifactType !== 'string') {
    throw new ManifestInvalidError(`${where}.artifactType is not a string`);
  }
  if (urls !== undefined && (!Array.isArray(urls) || urls.some((u) => typeof u !== 'string'))) {
    throw new ManifestInvalidError(`${where}.urls is not a list of strings`);
  }
  return {
    ...value,
    mediaType,
    digest: parsed,
    size,
    ...(annotations !== undefined ? { annotations: parseAnnotations(annotations, `${where}.annotations`) } : {}),
  } as Descriptor;
}

function parseAnnotations(value: unknown, where: string): Record<string, string> {
  if (!isObject(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    throw new ManifestInvalidError(`${where} is not a map of strings`);
  }
  return value as Record<string, string>;
}

function parseDescriptors(value: unknown, where: string): Descriptor[] {
  if (!Array.isArray(value)) throw new ManifestInvalidError(`${where} is missing or not a list`);
  return value.map((item, i) => parseDescriptor(item, `${where}[${i}]`));
}

/**
 * Parses and validates a manifest. `contentType` is the request's Content-Type; when the manifest has a
 * `mediaType` field the two must agree. Throws ManifestInvalidError saying what is wrong.
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (error) {
    throw new ManifestInvalidError(`manifest is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(json)) throw new ManifestInvalidError('manifest is not a JSON object');
  const declared = contentType?.split(';')[0]?.trim().toLowerCase();
  const field = json['mediaType'];
  if (field !== undefined && typeof field !== 'string') throw new ManifestInvalidError('mediaType is not a string');
  if (SCHEMA1.has(field ?? '') || SCHEMA1.has(declared ?? '')) {
    throw new ManifestInvalidError('Docker schema 1 manifests are not supported; push schema 2 or OCI manifests');
  }
  if (field !== undefined && declared !== undefined && SUPPORTED.has(declared) && field !== declared) {
    throw new ManifestInvalidError(`mediaType "${field}" does not match the Content-Type "${declared}"`);
  }
  const mediaType = field ?? (declared !== undefined && SUPPORTED.has(declared) ? declared : detect(json));
  if (!SUPPORTED.has(mediaType)) {
    throw new ManifestInvalidError(`unsupported manifest media type "${mediaType.slice(0, 120)}"`);
  }
  if (json['schemaVersion'] !== 2) throw new ManifestInvalidError('schemaVersion must be 2');

  const subject = json['subject'] === undefined ? undefined : parseDescriptor(json['subject'], 'subject');
  const artifactType = json['artifactType'];
  if (artifactType !== undefined && typeof artifactType !== 'string') {
    throw new ManifestInvalidError('artifactType is not a string');
  }
  const annotations =
    json['annotations'] === undefined ? undefined : parseAnnotations(json['annotations'], 'annotations');
  const common = {
    mediaType: mediaType as ManifestMediaType,
    ...(subject ? { subject } : {}),
    ...(annotations ? { annotations } : {}),
  };

  if (INDEX_TYPES.has(mediaType)) {
    const manifests = parseDescriptors(json['manifests'], 'manifests');
    return { ...common, blobs: [], manifests, ...(artifactType ? { artifactType } : {}) };
  }
  const config = parseDescriptor(json['config'], 'config');
  const layers = parseDescriptors(json['layers'], 'layers');
  // Foreign layers (with `urls`) live outside the registry, as Distribution allows.
  const blobs = [config, ...layers.filter((layer) => layer.urls === undefined || layer.urls.length === 0)];
  return { ...common, blobs, manifests: [], artifactType: artifactType ?? config.mediaType };
}

function detect(json: Json): string {
  if (Array.isArray(json['manifests'])) return ManifestMediaTypes.ociIndex;
  if (isObject(json['config'])) return ManifestMediaTypes.ociManifest;
  return 'unknown';
}

/**
 * Returns the media type of a stored manifest for the Content-Type of a GET, from its `mediaType` field or
 * its shape. It never throws: stored manifests were validated when they were pushed.
 */
export function storedMediaType(bytes: Uint8Array): string {
  try {
    const json: unknown = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
    if (!isObject(json)) return ManifestMediaTypes.ociManifest;
    const field = json['mediaType'];
    return typeof field === 'string' ? field : detect(json) === 'unknown' ? ManifestMediaTypes.ociManifest : detect(json);
  } catch {
    return ManifestMediaTypes.ociManifest;
  }
}
