/**
 * The operator's watch against a real API server whose history is compacted under it: resuming from a
 * resourceVersion etcd no longer has gets `410 Gone`, and the watch must list again and carry on, reporting
 * what changed meanwhile. The API server runs without its watch cache, so watches read etcd directly and
 * an etcd compaction (through etcd's HTTP gateway) is what makes a version too old.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient, type KubeObject } from '../../../operator/kube/client.js';
import { startKubeApiServer, type RunningKube } from '../../tools/kube.js';
import { waitUntil } from '../../tools/processes.js';

let kube: RunningKube;
let client: KubeClient;

beforeAll(async () => {
  kube = await startKubeApiServer({ apiServerArgs: ['--watch-cache=false'] });
  client = KubeClient.fromKubeconfig(kube.adminKubeconfig, 'berth-watch-test');
}, 180_000);
afterAll(async () => {
  await kube?.stop();
});

/** etcd's current revision and a compaction up to it, through etcd's v3 HTTP gateway. */
async function compactEtcd(): Promise<number> {
  const range = await fetch(`${kube.etcdEndpoint}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/').toString('base64') }) });
  const revision = Number(((await range.json()) as { header: { revision: string } }).header.revision);
  const compaction = await fetch(`${kube.etcdEndpoint}/v3/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision: String(revision), physical: true }) });
  expect(compaction.status).toBe(200);
  return revision;
}

const configMap = (name: string, value: string): KubeObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default' }, data: { value } }) as KubeObject;

describe('a watch whose resourceVersion etcd has compacted away', () => {
  it('gets 410 Gone on resuming, lists again, and reports what changed while it was away', async () => {
    await client.create(configMap('watched-a', '1'));
    const events: { type: string; name: string; resourceVersion: string | undefined }[] = [];
    const errors: unknown[] = [];
    const watch = await client.watch<KubeObject>(
      'v1',
      'ConfigMap',
      (type, object) => events.push({ type, name: object.metadata.name, resourceVersion: object.metadata.resourceVersion as string | undefined }),
      (error) => errors.push(error),
      200,
      // The server ends each watch after 2-4 s; the watch then resumes from the last version it saw.
      2,
    );
    try {
      await waitUntil(async () => events.some((event) => event.name === 'watched-a'), { timeoutMs: 10_000, what: 'the first list' });
      const seenVersion = events.find((event) => event.name === 'watched-a')?.resourceVersion;
      // Move etcd's revision past the watch's version with objects of another kind, then compact it all.
      for (let i = 0; i < 5; i++) await client.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: `filler-${i}`, namespace: 'default' } } as KubeObject);
      const compactedAt = await compactEtcd();
      expect(compactedAt).toBeGreaterThan(Number(seenVersion));
      const before = events.length;
      // When the stream ends, resuming from `seenVersion` fails with 410; the relist reports watched-a again
      // with the same version (nothing changed it), which only a relist does.
      await waitUntil(async () => events.slice(before).some((event) => event.name === 'watched-a' && event.type === 'update' && event.resourceVersion === seenVersion), {
        timeoutMs: 20_000,
        what: 'a relist after 410 Gone',
      });
      // And the watch carries on: a change after the relist arrives as an event.
      await client.create(configMap('watched-b', '2'));
      await waitUntil(async () => events.some((event) => event.name === 'watched-b' && event.type === 'add'), { timeoutMs: 10_000, what: 'an event after the relist' });
      // 410 is handled as an expected end of history, not reported as a failure.
      expect(errors).toEqual([]);
    } finally {
      await watch.stop();
    }
  }, 60_000);
});
