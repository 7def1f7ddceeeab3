import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FilesystemDriver } from '../../../registry/driver/filesystem/filesystem-driver.js';
import { runDriverSuite } from './driver-suite.js';

async function create() {
  const root = await mkdtemp(join(tmpdir(), 'berth-fs-'));
  return { driver: new FilesystemDriver({ rootDirectory: root }), root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

runDriverSuite('filesystem', create);

describe('filesystem storage driver on disk', () => {
  it('sees at once a same-sized overwrite made by another process on the same directory', async () => {
    const { driver, root, cleanup } = await create();
    const other = new FilesystemDriver({ rootDirectory: root });
    for (let i = 0; i < 20; i++) {
      const value = Buffer.from(`sha256:${String(i).padStart(64, '0')}`);
      await other.putContent('/link', value);
      expect((await driver.getContent('/link')).equals(value)).toBe(true);
    }
    await cleanup();
  });

  it('leaves no temporary files after putContent', async () => {
    const { driver, root, cleanup } = await create();
    for (let i = 0; i < 10; i++) await driver.putContent('/dir/file', Buffer.from(`v${i}`));
    expect(await readdir(join(root, 'dir'))).toEqual(['file']);
    await cleanup();
  });
});
