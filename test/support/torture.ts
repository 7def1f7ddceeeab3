/**
 * The garbage-collection torture workload and its invariant (DESIGN.md §2): concurrent clients push images
 * that share layers from one pool, move and delete tags, delete manifests, push indexes and referrers,
 * each keeping a model of what the registry told it; afterwards every tag, and every manifest a tag or an
 * index still references, must pull completely with verified digests. All choices come from one seed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { seededRandom } from './eventually-consistent-driver.js';
import { sha256, withQuery } from './test-registry.js';

/** Something that answers API requests (a replica set, a load balancer). */
export interface Target {
  request(options: InjectOptions & { url: string }): Promise<LightMyRequestResponse>;
}

/** The shape of a workload. */
export interface TortureOptions {
  readonly seed: number;
  readonly clients: number;
  readonly operationsPerClient: number;
  readonly repositories: readonly string[];
  /** Distinct layers all clients draw from, so images share them and they fall in and out of use. */
  readonly layerPool: number;
  readonly tagsPerClient: number;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const EMPTY = Buffer.from('{}');

interface Pushed {
  readonly repository: string;
  readonly digest: string;
}

/** What the clients were told, merged: the oracle for the check. */
export interface TortureModel {
  /** `repository:tag` → the digest last stored under it, or null when its state is unknown (a failed request). */
  readonly tags: Map<string, string | null>;
  /** Referrers stored, with their subject, until deleted. */
  readonly referrers: { repository: string; subject: string; digest: string }[];
  /** Requests that got a definite answer, by operation. */
  readonly operations: Record<string, number>;
  /** `repository@digest` of manifests the clients deleted (an index may still name one: not the collector's doing). */
  readonly deleted: Set<string>;
}

/** How long a client keeps retrying a request the registry answers 503 (maintenance) before giving up. */
const RETRY_FOR_MS = 30_000;

/**
 * A client's view of `target`: requests answered 503 are retried every 25 ms for up to RETRY_FOR_MS, as
 * clients do with Retry-After; `gaveUp` hears of each one still refused after that.
 */
function retrying(target: Target, gaveUp: () => void): Target {
  return {
    async request(options) {
      const deadline = performance.now() + RETRY_FOR_MS;
      for (;;) {
        const response = await target.request(options);
        if (response.statusCode !== 503) return response;
        if (performance.now() > deadline) {
          gaveUp();
          return response;
        }
        await sleep(25);
      }
    },
  };
}

function layer(index: number): Buffer {
  const random = seededRandom(1_000_003 * (index + 1));
  return Buffer.from(Array.from({ length: 1024 + index * 37 }, () => Math.floor(random() * 256)));
}

/** Makes a blob present in a repository the way a client does: HEAD, then mount or upload if missing. */
async function ensureBlob(target: Target, repository: string, blob: Buffer, others: readonly string[], random: () => number): Promise<boolean> {
  const digest = sha256(blob);
  if ((await target.request({ method: 'HEAD', url: `/v2/${repository}/blobs/${digest}` })).statusCode === 200) return true;
  if (random() < 0.3 && others.length > 0) {
    const from = others[Math.floor(random() * others.length)] as string;
    const mount = await target.request({ method: 'POST', url: `/v2/${repository}/blobs/uploads/?mount=${digest}&from=${from}` });
    if (mount.statusCode === 201) return true;
    if (mount.statusCode === 202) {
      const put = await target.request({ method: 'PUT', url: withQuery(mount.headers['location'] as string, { digest }), payload: blob });
      return put.statusCode === 201;
    }
    return false;
  }
  const put = await target.request({ method: 'POST', url: `/v2/${repository}/blobs/uploads/?digest=${digest}`, payload: blob, headers: { 'content-type': 'application/octet-stream' } });
  return put.statusCode === 201;
}

async function putManifest(target: Target, repository: string, reference: string, body: Buffer, mediaType: string): Promise<LightMyRequestResponse> {
  return target.request({ method: 'PUT', url: `/v2/${repository}/manifests/${reference}`, payload: body, headers: { 'content-type': mediaType } });
}

/** Runs every client to the end (see `keepGoing`), merging what they were told into `model` as they go. */
export async function runClients(target: Target, options: TortureOptions, model: TortureModel, keepGoing: () => boolean = () => false): Promise<void> {
  const count = (operation: string) => (model.operations[operation] = (model.operations[operation] ?? 0) + 1);
  // Requests still refused after half a minute of retries: a window that never lets a write through.
  const registry = retrying(target, () => count('gave up'));
  const client = async (id: number) => {
    const random = seededRandom(options.seed * 7919 + id);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const mine: Pushed[] = [];
    const setTag = (key: string, digest: string | null) => model.tags.set(key, digest);
    // At least operationsPerClient operations, and more while `keepGoing` asks (up to ten times as many).
    for (let op = 0; op < options.operationsPerClient || (keepGoing() && op < 10 * options.operationsPerClient); op++) {
      const repository = pick(options.repositories);
      const others = options.repositories.filter((name) => name !== repository);
      const tag = `c${id}-t${Math.floor(random() * options.tagsPerClient)}`;
      const key = `${repository}:${tag}`;
      const draw = random();
      const ownHere = mine.filter((pushed) => pushed.repository === repository);
      if (draw < 0.5 || ownHere.length === 0) {
        const layers = Array.from({ length: 1 + Math.floor(random() * 3) }, () => layer(Math.floor(random() * options.layerPool)));
        const config = Buffer.from(JSON.stringify({ client: id, op, seed: options.seed }));
        let ready = true;
        for (const blob of [config, ...layers]) ready = (await ensureBlob(registry, repository, blob, others, random)) && ready;
        if (!ready) continue;
        const manifest = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: OCI_MANIFEST,
            config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
            layers: layers.map((blob) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(blob), size: blob.length })),
          }),
        );
        const response = await putManifest(registry, repository, tag, manifest, OCI_MANIFEST);
        if (response.statusCode === 201) {
          setTag(key, sha256(manifest));
          mine.push({ repository, digest: sha256(manifest) });
          count('push');
        } else if (response.statusCode >= 500) setTag(key, null);
      } else if (draw < 0.62) {
        const children = [pick(ownHere), pick(ownHere)];
        const index = Buffer.from(
          JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: children.map((child) => ({ mediaType: OCI_MANIFEST, digest: child.digest, size: 0 })) }),
        );
        // Children sizes are not checked against the store by the registry; the digests are.
        const response = await putManifest(registry, repository, tag, index, OCI_INDEX);
        if (response.statusCode === 201) {
          setTag(key, sha256(index));
          count('index');
        } else if (response.statusCode >= 500) setTag(key, null);
      } else if (draw < 0.72) {
        const subject = pick(ownHere);
        const artifact = layer(Math.floor(random() * options.layerPool));
        if (!(await ensureBlob(registry, repository, EMPTY, others, random)) || !(await ensureBlob(registry, repository, artifact, others, random))) continue;
        const referrer = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: OCI_MANIFEST,
            artifactType: 'application/vnd.example.signature',
            config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(EMPTY), size: 2 },
            layers: [{ mediaType: 'application/octet-stream', digest: sha256(artifact), size: artifact.length }],
            subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: 0 },
            annotations: { client: String(id), op: String(op), seed: String(options.seed) },
          }),
        );
        const response = await putManifest(registry, repository, sha256(referrer), referrer, OCI_MANIFEST);
        if (response.statusCode === 201) {
          model.referrers.push({ repository, subject: subject.digest, digest: sha256(referrer) });
          count('referrer');
        }
      } else if (draw < 0.88) {
        const response = await registry.request({ method: 'DELETE', url: `/v2/${repository}/manifests/${tag}` });
        if (response.statusCode === 202 || response.statusCode === 404) {
          model.tags.delete(key);
          count('untag');
        } else if (response.statusCode >= 500) setTag(key, null);
      } else {
        const victim = pick(ownHere);
        const response = await registry.request({ method: 'DELETE', url: `/v2/${repository}/manifests/${victim.digest}` });
        model.deleted.add(`${repository}@${victim.digest}`);
        if (response.statusCode === 202 || response.statusCode === 404) {
          for (const [taggedKey, digest] of model.tags) if (digest === victim.digest) model.tags.delete(taggedKey);
          mine.splice(mine.indexOf(victim), 1);
          count('delete');
        } else if (response.statusCode >= 500) {
          for (const [taggedKey, digest] of model.tags) if (digest === victim.digest) setTag(taggedKey, null);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: options.clients }, (_, id) => client(id)));
}

/**
 * Pulls a manifest and everything it references, verifying digests; returns what failed. A child manifest
 * that a client deleted itself is not the collector's fault and is passed over.
 */
async function pullCompletely(target: Target, repository: string, reference: string, deleted: ReadonlySet<string>, seen = new Set<string>()): Promise<string[]> {
  const response = await target.request({ method: 'GET', url: `/v2/${repository}/manifests/${reference}`, headers: { accept: `${OCI_MANIFEST}, ${OCI_INDEX}` } });
  if (response.statusCode === 404 && deleted.has(`${repository}@${reference}`)) return [];
  if (response.statusCode !== 200) return [`${repository}@${reference}: manifest GET answered ${response.statusCode}`];
  const digest = sha256(response.rawPayload);
  if (reference.startsWith('sha256:') && digest !== reference) return [`${repository}@${reference}: manifest content has digest ${digest}`];
  if (seen.has(digest)) return [];
  seen.add(digest);
  const parsed = JSON.parse(response.body) as { config?: { digest: string }; layers?: { digest: string }[]; manifests?: { digest: string }[] };
  const failures: string[] = [];
  for (const child of parsed.manifests ?? []) failures.push(...(await pullCompletely(target, repository, child.digest, deleted, seen)));
  for (const blob of [parsed.config, ...(parsed.layers ?? [])]) {
    if (blob === undefined) continue;
    const got = await target.request({ method: 'GET', url: `/v2/${repository}/blobs/${blob.digest}` });
    if (got.statusCode !== 200) failures.push(`${repository}@${digest}: blob ${blob.digest} answered ${got.statusCode}`);
    else if (sha256(got.rawPayload) !== blob.digest) failures.push(`${repository}@${digest}: blob ${blob.digest} has other content`);
  }
  return failures;
}

/**
 * Audits the store between two collections while clients keep writing: every manifest a tag names now must
 * pull completely. A tag that moved or went away in between is passed over (clients do that); a blob or child
 * missing under a manifest that is still there is not (only a collection deletes blobs).
 */
export async function auditTags(target: Target, model: TortureModel, repositories: readonly string[]): Promise<string[]> {
  const violations: string[] = [];
  for (const repository of repositories) {
    const list = await target.request({ method: 'GET', url: `/v2/${repository}/tags/list` });
    if (list.statusCode !== 200) continue;
    for (const tag of (JSON.parse(list.body) as { tags: string[] | null }).tags ?? []) {
      const head = await target.request({ method: 'HEAD', url: `/v2/${repository}/manifests/${tag}`, headers: { accept: `${OCI_MANIFEST}, ${OCI_INDEX}` } });
      const digest = head.headers['docker-content-digest'];
      if (head.statusCode !== 200 || typeof digest !== 'string') continue;
      const failures = await pullCompletely(target, repository, digest, model.deleted);
      // A manifest deleted by a client between the HEAD and the GET is not a failure.
      if (failures.length > 0 && failures[0]?.startsWith(`${repository}@${digest}: manifest GET`) === true) continue;
      violations.push(...failures.map((failure) => `${repository}:${tag} between collections: ${failure}`));
    }
  }
  return violations;
}

/**
 * Checks the invariant: every tag the clients know (and every tag the registry lists) pulls completely,
 * with the digest the client was told; every referrer of a still-tagged manifest is listed and pulls.
 */
export async function checkInvariant(target: Target, model: TortureModel, repositories: readonly string[]): Promise<string[]> {
  const violations: string[] = [];
  const tagged = new Set<string>();
  for (const [key, digest] of model.tags) {
    const [repository, tag] = key.split(':') as [string, string];
    if (digest === null) continue;
    tagged.add(`${repository}@${digest}`);
    const head = await target.request({ method: 'HEAD', url: `/v2/${repository}/manifests/${tag}`, headers: { accept: `${OCI_MANIFEST}, ${OCI_INDEX}` } });
    if (head.statusCode !== 200) violations.push(`${key}: was stored as ${digest}, HEAD answered ${head.statusCode}`);
    else if (head.headers['docker-content-digest'] !== digest) violations.push(`${key}: was stored as ${digest}, the registry has ${String(head.headers['docker-content-digest'])}`);
    violations.push(...(await pullCompletely(target, repository, digest, model.deleted)));
  }
  for (const repository of repositories) {
    const list = await target.request({ method: 'GET', url: `/v2/${repository}/tags/list` });
    if (list.statusCode !== 200) continue;
    for (const tag of (JSON.parse(list.body) as { tags: string[] | null }).tags ?? []) {
      violations.push(...(await pullCompletely(target, repository, tag, model.deleted)));
    }
  }
  for (const referrer of model.referrers) {
    if (!tagged.has(`${referrer.repository}@${referrer.subject}`)) continue;
    const listed = await target.request({ method: 'GET', url: `/v2/${referrer.repository}/referrers/${referrer.subject}` });
    const digests = listed.statusCode === 200 ? (JSON.parse(listed.body) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest) : [];
    if (!digests.includes(referrer.digest)) violations.push(`${referrer.repository}: referrer ${referrer.digest} of tagged ${referrer.subject} is not listed`);
    violations.push(...(await pullCompletely(target, referrer.repository, referrer.digest, model.deleted)));
  }
  return [...new Set(violations)];
}
