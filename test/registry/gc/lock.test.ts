import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { BaseDriver } from '../../../registry/driver/base.js';
import { InMemoryDriver } from '../../../registry/driver/inmemory/inmemory-driver.js';
import { CollectionBusyError, runCollection } from '../../../registry/gc/collector.js';
import { OBJECT_STORE } from '../../../registry/storage/visibility.js';
import { EventuallyConsistentDriver } from '../../support/eventually-consistent-driver.js';

/** A collection with no replicas to wait for, on a store whose reads lag its writes by 150–200 ms. */
const collectOn = (driver: EventuallyConsistentDriver, pace?: () => Promise<void>) =>
  runCollection(driver, {
    ...(pace !== undefined ? { pace } : {}),
    deleteUntagged: false,
    dryRun: false,
    gracePeriodMs: 0,
    readOnlyTimeoutMs: 30_000,
    pollMs: 20,
    lockSettleMs: 50,
    visibility: OBJECT_STORE,
  });

const laggingStore = (seed: number) => new EventuallyConsistentDriver(new BaseDriver(new InMemoryDriver()), { seed, minLagMs: 150, maxLagMs: 200 });

describe("the store's garbage-collection lock on an eventually consistent store", () => {
  it('is taken by a collection whose own lock is not visible yet when it reads it back', async () => {
    const result = await collectOn(laggingStore(1));
    expect(result.blobsDeleted).toEqual([]);
  });

  it('is taken by the next collection right after the previous one released it', async () => {
    const driver = laggingStore(2);
    await collectOn(driver);
    await expect(collectOn(driver)).resolves.toMatchObject({ blobsDeleted: [] });
  });

  it('still keeps a second collection out while the first holds it', async () => {
    const driver = laggingStore(3);
    // The first holds the lock for over five seconds (it pauses after its mark and its re-mark), longer than the
    // second looks again for a lagging view of a released lock; the second starts meanwhile.
    const first = collectOn(driver, () => sleep(2500));
    const results = await Promise.allSettled([first, sleep(600).then(() => collectOn(driver))]);
    expect(results[0].status).toBe('fulfilled');
    expect(results[1].status).toBe('rejected');
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(CollectionBusyError);
  });

  it('lets only one of two collections starting together run, even when one write of the lock lands late', async () => {
    // The second write of the lock reaches the store after the first run's read-back pause: read-back alone
    // would let both runs think they hold it; the store's atomic create does not.
    let lockWrites = 0;
    const late = <T>(path: string, write: () => Promise<T>): Promise<T> =>
      path.endsWith('/_berth/gc-lock') && ++lockWrites === 2 ? sleep(300).then(write) : write();
    class LateSecondLockWrite extends BaseDriver {
      override putContent(path: string, content: Uint8Array, signal?: AbortSignal): Promise<void> {
        return late(path, () => super.putContent(path, content, signal));
      }
      override putContentIfAbsent(path: string, content: Uint8Array, signal?: AbortSignal): Promise<boolean> {
        return late(path, () => super.putContentIfAbsent(path, content, signal));
      }
    }
    const driver = new LateSecondLockWrite(new InMemoryDriver());
    const collect = () =>
      runCollection(driver, { deleteUntagged: false, dryRun: false, gracePeriodMs: 0, readOnlyTimeoutMs: 30_000, pollMs: 20, lockSettleMs: 50, pace: () => sleep(500) });
    const results = await Promise.allSettled([collect(), collect()]);
    expect(results.map((result) => result.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect((results.find((result) => result.status === 'rejected') as PromiseRejectedResult).reason).toBeInstanceOf(CollectionBusyError);
  });
});
