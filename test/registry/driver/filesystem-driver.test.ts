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
  it('leaves no temporary files after putContent', async () => {
    const { driver, root, cleanup } = await create();
    for (let i = 0; i < 10; i++) await driver.putContent('/dir/file', Buffer.from(`v${i}`));
    expect(await readdir(join(root, 'dir'))).toEqual(['file']);
    await cleanup();
  });
});
