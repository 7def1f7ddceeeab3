import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { BaseDriver } from '../../../registry/driver/base.js';
import { InMemoryDriver } from '../../../registry/driver/inmemory/inmemory-driver.js';
import { readJournals, ReplicaJournal } from '../../../registry/gc/journal.js';
import { parseDigest } from '../../../registry/storage/digest.js';
import { STRONGLY_CONSISTENT } from '../../../registry/storage/visibility.js';
import { sha256 } from '../../support/test-registry.js';

/** An in-memory store whose every write takes a while, so batches overlap the way they do on S3. */
class SlowDriver extends BaseDriver {
  override async putContent(path: string, content: Uint8Array, signal?: AbortSignal): Promise<void> {
    await sleep(30);
    return super.putContent(path, content, signal);
  }
}

const blob = (text: string) => ({ kind: 'blob' as const, name: 'app', digest: parseDigest(sha256(Buffer.from(text))) });

describe("a replica's write journal", () => {
  it('loses no entry when a flush and a recorded write store batches at the same time', async () => {
    const driver = new SlowDriver(new InMemoryDriver());
    const journal = new ReplicaJournal(driver, 'r1');
    journal.begin('e1');
    journal.observe(blob('seen'));
    const flushed = journal.flush();
    const recorded = journal.record(blob('written'));
    await Promise.all([flushed, recorded]);
    const entries = await readJournals(driver, 'e1', new Map([['r1', journal.state?.batches ?? 0]]), STRONGLY_CONSISTENT);
    expect(entries.map((entry) => entry.digest).sort()).toEqual([blob('seen').digest, blob('written').digest].sort());
  });

  it('numbers batches without gaps while writes keep arriving, and flush waits for all of them', async () => {
    const driver = new SlowDriver(new InMemoryDriver());
    const journal = new ReplicaJournal(driver, 'r1');
    journal.begin('e1');
    const writes = Array.from({ length: 20 }, (_, i) => sleep(i * 7).then(() => journal.record(blob(`w${i}`))));
    await sleep(50);
    await journal.flush();
    await Promise.all(writes);
    await journal.flush();
    const batches = journal.state?.batches ?? 0;
    expect(batches).toBeGreaterThan(1);
    const entries = await readJournals(driver, 'e1', new Map([['r1', batches]]), STRONGLY_CONSISTENT);
    expect(new Set(entries.map((entry) => entry.digest)).size).toBe(20);
  });
});
