/**
 * The storage-driver contract as one test suite that every driver runs: call `runDriverSuite` with a
 * factory that returns a fresh, empty driver.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BaseDriver } from '../../../registry/driver/base.js';
import type { StorageDriver } from '../../../registry/driver/driver.js';
import { InvalidOffsetError, InvalidPathError, PathNotFoundError } from '../../../registry/driver/errors.js';

/** A driver under test and how to dispose of it. */
export interface DriverFixture {
  readonly driver: StorageDriver;
  cleanup(): Promise<void>;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function* generateChunks(total: number, chunkSize: number, seed: number): Generator<Buffer> {
  let produced = 0;
  let counter = seed;
  while (produced < total) {
    const size = Math.min(chunkSize, total - produced);
    const chunk = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4) chunk.writeUInt32LE((counter++ * 2654435761) >>> 0, Math.min(i, size - 4));
    produced += size;
    yield chunk;
  }
}

/** Runs the driver contract against drivers made by `create`. */
export function runDriverSuite(label: string, create: () => Promise<DriverFixture>): void {
  describe(`${label} storage driver`, () => {
    let fixture: DriverFixture;
    let driver: StorageDriver;

    beforeEach(async () => {
      fixture = await create();
      driver = new BaseDriver(fixture.driver);
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    it('returns what putContent stored, and replaces it on a second put', async () => {
      await driver.putContent('/a/b/c', Buffer.from('first'));
      expect((await driver.getContent('/a/b/c')).toString()).toBe('first');
      await driver.putContent('/a/b/c', Buffer.from('second, longer'));
      expect((await driver.getContent('/a/b/c')).toString()).toBe('second, longer');
    });

    it('sees every overwrite of a same-sized object at once, read after read', async () => {
      for (let i = 0; i < 50; i++) {
        const value = Buffer.from(`sha256:${String(i).padStart(64, '0')}`);
        await driver.putContent('/same/size', value);
        expect((await driver.getContent('/same/size')).equals(value)).toBe(true);
      }
    });

    it('stores empty objects', async () => {
      await driver.putContent('/empty', new Uint8Array(0));
      expect((await driver.getContent('/empty')).length).toBe(0);
      expect((await driver.stat('/empty')).size).toBe(0);
    });

    it('throws PathNotFoundError for a missing object on every read operation', async () => {
      await expect(driver.getContent('/missing')).rejects.toBeInstanceOf(PathNotFoundError);
      await expect(driver.stat('/missing')).rejects.toBeInstanceOf(PathNotFoundError);
      await expect(driver.reader('/missing')).rejects.toBeInstanceOf(PathNotFoundError);
      await expect(driver.list('/missing')).rejects.toBeInstanceOf(PathNotFoundError);
      await expect(driver.delete('/missing')).rejects.toBeInstanceOf(PathNotFoundError);
      await expect(driver.move('/missing', '/elsewhere')).rejects.toBeInstanceOf(PathNotFoundError);
    });

    it('rejects paths that are relative, empty, or climb with ..', async () => {
      for (const path of ['', 'relative', '/a//b', '/a/../b', '/a/./b', '/a/', '/with space']) {
        await expect(driver.getContent(path), path).rejects.toBeInstanceOf(InvalidPathError);
        await expect(driver.putContent(path, Buffer.from('x')), path).rejects.toBeInstanceOf(InvalidPathError);
      }
    });

    it('describes objects and directories with stat', async () => {
      await driver.putContent('/dir/file', Buffer.from('12345'));
      const file = await driver.stat('/dir/file');
      expect(file).toMatchObject({ path: '/dir/file', size: 5, isDir: false });
      expect(file.modTime.getTime()).toBeGreaterThan(Date.now() - 60_000);
      expect((await driver.stat('/dir')).isDir).toBe(true);
    });

    it('lists the sorted full paths of direct children only', async () => {
      await driver.putContent('/list/b', Buffer.from('b'));
      await driver.putContent('/list/a/deep/x', Buffer.from('x'));
      await driver.putContent('/list/c', Buffer.from('c'));
      expect(await driver.list('/list')).toEqual(['/list/a', '/list/b', '/list/c']);
      expect(await driver.list('/list/a')).toEqual(['/list/a/deep']);
    });

    it('streams a large object through writeStream and reads it back identically', async () => {
      const size = 9 * 1024 * 1024 + 123;
      const hash = createHash('sha256');
      const written = await driver.writeStream(
        '/large',
        Readable.from(generateChunks(size, 64 * 1024, 7)),
        { append: false },
      );
      for (const chunk of generateChunks(size, 64 * 1024, 7)) hash.update(chunk);
      expect(written).toBe(size);
      expect((await driver.stat('/large')).size).toBe(size);
      const back = createHash('sha256');
      for await (const chunk of await driver.reader('/large')) back.update(chunk as Buffer);
      expect(back.digest('hex')).toBe(hash.digest('hex'));
    });

    it('appends to an object with writeStream and append', async () => {
      await driver.writeStream('/append', Readable.from([Buffer.from('hello ')]), { append: true });
      await driver.writeStream('/append', Readable.from([Buffer.from('world')]), { append: true });
      expect((await driver.getContent('/append')).toString()).toBe('hello world');
      await driver.writeStream('/append', Readable.from([Buffer.from('new')]), { append: false });
      expect((await driver.getContent('/append')).toString()).toBe('new');
    });

    it('leaves no object behind when a non-appending writeStream fails', async () => {
      const failing = new Readable({
        read() {
          this.push(randomBytes(1024));
          this.destroy(new Error('client went away'));
        },
      });
      await expect(driver.writeStream('/failed', failing, { append: false })).rejects.toThrow();
      await expect(driver.stat('/failed')).rejects.toBeInstanceOf(PathNotFoundError);
    });

    it('publishes a new object only after verify passes, and never when it throws', async () => {
      await driver.putContent('/verified', Buffer.from('old'));
      const refused = new Error('digest mismatch');
      await expect(
        driver.writeStream('/verified', Readable.from([Buffer.alloc(6 * 1024 * 1024, 1)]), {
          append: false,
          verify: () => {
            throw refused;
          },
        }),
      ).rejects.toBe(refused);
      expect((await driver.getContent('/verified')).toString()).toBe('old');
      await expect(
        driver.writeStream('/fresh', Readable.from([Buffer.from('x')]), { append: false, verify: () => Promise.reject(refused) }),
      ).rejects.toBe(refused);
      await expect(driver.stat('/fresh')).rejects.toBeInstanceOf(PathNotFoundError);
      let verified = false;
      await driver.writeStream('/verified', Readable.from([Buffer.from('new')]), {
        append: false,
        verify: () => {
          verified = true;
        },
      });
      expect(verified).toBe(true);
      expect((await driver.getContent('/verified')).toString()).toBe('new');
    });

    it('reads from an offset for a length, and refuses an offset past the end', async () => {
      await driver.putContent('/ranged', Buffer.from('0123456789'));
      expect((await readAll(await driver.reader('/ranged', 3))).toString()).toBe('3456789');
      expect((await readAll(await driver.reader('/ranged', 2, 4))).toString()).toBe('2345');
      expect((await readAll(await driver.reader('/ranged', 10))).toString()).toBe('');
      await expect(driver.reader('/ranged', 11)).rejects.toBeInstanceOf(InvalidOffsetError);
    });

    it('moves an object, replacing the destination and removing the source', async () => {
      await driver.putContent('/from/x', Buffer.from('moved'));
      await driver.putContent('/to/y', Buffer.from('old'));
      await driver.move('/from/x', '/to/y');
      expect((await driver.getContent('/to/y')).toString()).toBe('moved');
      await expect(driver.getContent('/from/x')).rejects.toBeInstanceOf(PathNotFoundError);
    });

    it('deletes an object, or a directory with everything below it', async () => {
      await driver.putContent('/tree/a/1', Buffer.from('1'));
      await driver.putContent('/tree/a/2', Buffer.from('2'));
      await driver.putContent('/tree/b', Buffer.from('b'));
      await driver.delete('/tree/b');
      await expect(driver.stat('/tree/b')).rejects.toBeInstanceOf(PathNotFoundError);
      await driver.delete('/tree/a');
      await expect(driver.getContent('/tree/a/1')).rejects.toBeInstanceOf(PathNotFoundError);
      await expect(driver.list('/tree/a')).rejects.toBeInstanceOf(PathNotFoundError);
    });

    it('walks every object and directory depth first in sorted order, and can skip a directory', async () => {
      for (const path of ['/w/b/2', '/w/a/1', '/w/c', '/w/b/1']) await driver.putContent(path, Buffer.from(path));
      const seen: string[] = [];
      await driver.walk('/w', (info) => {
        seen.push(`${info.path}${info.isDir ? '/' : ''}`);
      });
      expect(seen).toEqual(['/w/a/', '/w/a/1', '/w/b/', '/w/b/1', '/w/b/2', '/w/c']);
      const skipped: string[] = [];
      await driver.walk('/w', (info) => {
        skipped.push(info.path);
        return info.path === '/w/b' ? 'skip' : undefined;
      });
      expect(skipped).toEqual(['/w/a', '/w/a/1', '/w/b', '/w/c']);
    });

    it('keeps many concurrent putContent calls to one key whole: the last read is one of the values written', async () => {
      const values = Array.from({ length: 20 }, (_, i) => Buffer.from(`value-${i}-${'x'.repeat(i * 100)}`));
      await Promise.all(values.map((value) => driver.putContent('/race', value)));
      const final = (await driver.getContent('/race')).toString();
      expect(values.map(String)).toContain(final);
    });

    it('creates an object with putContentIfAbsent only when none is there: of concurrent calls exactly one wins', async () => {
      const values = Array.from({ length: 10 }, (_, i) => Buffer.from(`owner-${i}`));
      const created = await Promise.all(values.map((value) => driver.putContentIfAbsent('/lock/one', value)));
      expect(created.filter(Boolean)).toHaveLength(1);
      expect((await driver.getContent('/lock/one')).toString()).toBe(`owner-${created.indexOf(true)}`);
      expect(await driver.putContentIfAbsent('/lock/one', Buffer.from('late'))).toBe(false);
      expect((await driver.getContent('/lock/one')).toString()).toBe(`owner-${created.indexOf(true)}`);
      await driver.delete('/lock/one');
      expect(await driver.putContentIfAbsent('/lock/one', Buffer.from('after delete'))).toBe(true);
      expect((await driver.getContent('/lock/one')).toString()).toBe('after delete');
      await expect(driver.putContentIfAbsent('../escape', Buffer.from('x'))).rejects.toBeInstanceOf(InvalidPathError);
    });

    it('offers no redirect URL, or a URL string', async () => {
      await driver.putContent('/r', Buffer.from('r'));
      const url = await driver.redirectURL('GET', '/r');
      expect(url === null || typeof url === 'string').toBe(true);
    });
  });
}
