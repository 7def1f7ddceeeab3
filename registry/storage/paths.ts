/**
 * Builds every storage key the registry reads or writes. This is the only module that knows the layout.
 *
 * The layout is CNCF Distribution's v2 layout, byte for byte, so that a store written by Distribution is
 * served by Berth and the reverse. Keys that only Berth uses are marked (berth); Distribution ignores them
 * because its catalog skips directories whose names start with `_` and it never lists `_berth`.
 *
 * ```
 * <root>/docker/registry/v2/
 * ├── blobs/
 * │   └── <algorithm>/<first two hex>/<hex>/data          blob bytes (layers, configs and manifests alike)
 * ├── repositories/
 * │   └── <name>/                                          name may contain '/'
 * │       ├── _layers/<algorithm>/<hex>/link               "<algorithm>:<hex>": the blob is in this repository
 * │       ├── _manifests/
 * │       │   ├── revisions/<algorithm>/<hex>/link         the manifest is in this repository
 * │       │   └── tags/<tag>/
 * │       │       ├── current/link                         the digest the tag points at now
 * │       │       └── index/<algorithm>/<hex>/link         every digest the tag has pointed at
 * │       ├── _uploads/<id>/
 * │       │   ├── data                                     bytes received so far
 * │       │   ├── startedat                                RFC 3339 time the upload began
 * │       │   └── hashstates/<algorithm>/<offset>          (Distribution only; Berth never writes these)
 * │       └── _referrers/<algorithm>/<subject hex>/        (berth) one object per referrer:
 * │           └── <algorithm>/<referrer hex>/descriptor    the referrer's OCI descriptor as JSON
 * └── _berth/                                              (berth) registry-wide state:
 *     ├── maintenance                                      the GC window's marker (epoch, TTL), while open
 *     └── replicas/<id>                                    each replica's heartbeat and acknowledged epoch
 * ```
 */
import type { Digest } from './digest.js';

const ROOT = '/docker/registry/v2';

function split(digest: Digest): { algorithm: string; hex: string } {
  const i = digest.indexOf(':');
  return { algorithm: digest.slice(0, i), hex: digest.slice(i + 1) };
}

/** The directory that holds every repository. */
export const repositoriesRoot = (): string => `${ROOT}/repositories`;

/** The directory of one repository. */
export const repositoryPath = (name: string): string => `${ROOT}/repositories/${name}`;

/** The directory that holds every blob. */
export const blobsRoot = (): string => `${ROOT}/blobs`;

/** The directory of one blob (its data, and nothing else). */
export function blobPath(digest: Digest): string {
  const { algorithm, hex } = split(digest);
  return `${ROOT}/blobs/${algorithm}/${hex.slice(0, 2)}/${hex}`;
}

/** The object that holds a blob's bytes. */
export const blobDataPath = (digest: Digest): string => `${blobPath(digest)}/data`;

/** The directory of a repository's blob links, one directory per algorithm. */
export const layersRoot = (name: string): string => `${repositoryPath(name)}/_layers`;

/** The link that says a blob belongs to a repository. */
export function layerLinkPath(name: string, digest: Digest): string {
  const { algorithm, hex } = split(digest);
  return `${repositoryPath(name)}/_layers/${algorithm}/${hex}/link`;
}

/** The directory of a manifest revision's link in a repository. */
export function manifestRevisionPath(name: string, digest: Digest): string {
  const { algorithm, hex } = split(digest);
  return `${repositoryPath(name)}/_manifests/revisions/${algorithm}/${hex}`;
}

/** The link that says a manifest belongs to a repository. */
export const manifestRevisionLinkPath = (name: string, digest: Digest): string =>
  `${manifestRevisionPath(name, digest)}/link`;

/** The directory that holds one directory per algorithm of manifest revisions. */
export const manifestRevisionsRoot = (name: string): string => `${repositoryPath(name)}/_manifests/revisions`;

/** The directory that holds one directory per tag. */
export const tagsRoot = (name: string): string => `${repositoryPath(name)}/_manifests/tags`;

/** The directory of one tag. */
export const tagPath = (name: string, tag: string): string => `${tagsRoot(name)}/${tag}`;

/** The link holding the digest a tag points at now. */
export const tagCurrentLinkPath = (name: string, tag: string): string => `${tagPath(name, tag)}/current/link`;

/** The link recording that a tag has pointed at a digest. */
export function tagIndexLinkPath(name: string, tag: string, digest: Digest): string {
  const { algorithm, hex } = split(digest);
  return `${tagPath(name, tag)}/index/${algorithm}/${hex}/link`;
}

/** The directory that holds a repository's uploads in progress. */
export const uploadsRoot = (name: string): string => `${repositoryPath(name)}/_uploads`;

/** The directory of an upload in progress. */
export const uploadPath = (name: string, id: string): string => `${repositoryPath(name)}/_uploads/${id}`;

/** The object that holds an upload's bytes received so far. */
export const uploadDataPath = (name: string, id: string): string => `${uploadPath(name, id)}/data`;

/** The object that holds the time an upload began. */
export const uploadStartedAtPath = (name: string, id: string): string => `${uploadPath(name, id)}/startedat`;

/** (berth) The maintenance marker: present while a garbage-collection window is open. */
export const maintenanceMarkerPath = (): string => `${ROOT}/_berth/maintenance`;

/** (berth) One replica's heartbeat, with the maintenance epoch it has acknowledged. */
export const replicaHeartbeatPath = (id: string): string => `${ROOT}/_berth/replicas/${id}`;

/** (berth) The directory of every replica's heartbeat. */
export const replicasRoot = (): string => `${ROOT}/_berth/replicas`;

/** (berth) The lock a garbage collection holds for its whole run, so that two runs never overlap. */
export const gcLockPath = (): string => `${ROOT}/_berth/gc-lock`;

/** (berth) The directory of the write journals of one collection epoch, one directory per replica. */
export const journalEpochRoot = (epoch: string): string => `${ROOT}/_berth/journal/${epoch}`;

/** (berth) The directory of all write journals. */
export const journalsRoot = (): string => `${ROOT}/_berth/journal`;

/** (berth) One batch of a replica's write journal; batches are numbered from 1 without gaps. */
export const journalBatchPath = (epoch: string, replicaId: string, seq: number): string =>
  `${journalEpochRoot(epoch)}/${replicaId}/${String(seq).padStart(10, '0')}`;

/** The directory that holds one object per referrer of a subject. */
export function referrersPath(name: string, subject: Digest): string {
  const { algorithm, hex } = split(subject);
  return `${repositoryPath(name)}/_referrers/${algorithm}/${hex}`;
}

/** The object that holds one referrer's descriptor. */
export function referrerDescriptorPath(name: string, subject: Digest, referrer: Digest): string {
  const { algorithm, hex } = split(referrer);
  return `${referrersPath(name, subject)}/${algorithm}/${hex}/descriptor`;
}
