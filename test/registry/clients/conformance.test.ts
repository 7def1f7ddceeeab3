import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBerthConformance } from '../../support/conformance.js';
import { startBerth, type BerthProcess } from '../../support/berth-process.js';

describe('the OCI distribution-spec conformance suite', () => {
  let root: string;
  let registry: BerthProcess;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'berth-conformance-'));
    registry = await startBerth({ rootDir: join(root, 'store') });
  });
  afterAll(async () => {
    await registry?.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('passes every test of pull, push, content discovery and content management, with referrers, automatic cross-mount and sha512', async () => {
    const result = await runBerthConformance(registry.url, join(root, 'results'));
    expect(result.failures, result.failures.join('\n')).toEqual([]);
    expect(result.failed).toBe(0);
    expect(result.passed).toBeGreaterThan(500);
  }, 600_000);
});
