import { setTimeout as sleep } from 'node:timers/promises';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { PathNotFoundError } from '../../../registry/driver/errors.js';
import { InMemoryDriver } from '../../../registry/driver/inmemory/inmemory-driver.js';
import { EventuallyConsistentDriver, seededRandom } from '../../support/eventually-consistent-driver.js';
import { runDriverSuite } from './driver-suite.js';

// With no lag the wrapper must keep the whole driver contract.
runDriverSuite('eventually consistent wrapper with zero lag', async () => ({
  driver: new EventuallyConsistentDriver(new InMemoryDriver(), { seed: 1, minLagMs: 0, maxLagMs: 0, listLagMs: 0 }),
  cleanup: async () => undefined,
}));

describe('the eventually consistent driver wrapper', () => {
  const lagging = () => new EventuallyConsistentDriver(new InMemoryDriver(), { seed: 7, minLagMs: 150, maxLagMs: 150, listLagMs: 300 });

  it('hides a new object from reads until its lag has passed', async () => {
    const driver = lagging();
    await driver.putContent('/a/new', Buffer.from('v1'));
    await expect(driver.getContent('/a/new')).rejects.toBeInstanceOf(PathNotFoundError);
    await expect(driver.stat('/a/new')).rejects.toBeInstanceOf(PathNotFoundError);
    await sleep(200);
    expect((await driver.getContent('/a/new')).toString()).toBe('v1');
  });

  it('serves the previous version of an overwritten object, and a deleted object, during the lag', async () => {
    const driver = lagging();
    await driver.putContent('/b/x', Buffer.from('old'));
    await sleep(200);
    await driver.putContent('/b/x', Buffer.from('new'));
    expect((await driver.getContent('/b/x')).toString()).toBe('old');
    await sleep(200);
    expect((await driver.getContent('/b/x')).toString()).toBe('new');
    await driver.delete('/b');
    expect((await driver.getContent('/b/x')).toString()).toBe('new');
    await sleep(200);
    await expect(driver.getContent('/b/x')).rejects.toBeInstanceOf(PathNotFoundError);
  });

  it('shows only the bytes before an append while the append is not visible', async () => {
    const driver = lagging();
    await driver.writeStream('/c/data', Readable.from([Buffer.from('1234')]), { append: false });
    await sleep(200);
    await driver.writeStream('/c/data', Readable.from([Buffer.from('5678')]), { append: true });
    expect((await driver.stat('/c/data')).size).toBe(4);
    await sleep(200);
    expect((await driver.stat('/c/data')).size).toBe(8);
  });

  it('lets listings lag behind creations and deletions', async () => {
    const driver = lagging();
    await driver.putContent('/d/old', Buffer.from('o'));
    await sleep(350);
    await driver.putContent('/d/new/inner', Buffer.from('n'));
    await driver.delete('/d/old');
    expect(await driver.list('/d')).toEqual(['/d/old']);
    await sleep(350);
    expect(await driver.list('/d')).toEqual(['/d/new']);
  });

  it('draws the same lags from the same seed', () => {
    const a = seededRandom(99);
    const b = seededRandom(99);
    expect(Array.from({ length: 5 }, a)).toEqual(Array.from({ length: 5 }, b));
  });
});
