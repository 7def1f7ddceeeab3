/**
 * The project's Dockerfile, built by a real Docker engine and run: the image serves the registry as a
 * non-root user on a read-only root filesystem (as the operator's pods run it), `docker push`/`pull` work
 * against it, `gc` runs from it, and it carries `berth-operator`. Docker Hub is out of reach here, so the
 * build's base is a stand-in made from this machine's Node.js (test/tools/docker.ts importNodeImage).
 */
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importImage, importNodeImage, startDockerd, type Dockerd } from '../../tools/docker.js';
import { runChecked, runCommand, waitUntil } from '../../tools/processes.js';
import { freePort, toolPath } from '../../tools/tools.js';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const IMAGE = 'berth-test/berth:dev';

let dockerd: Dockerd;
let store: string;
const docker = (args: string[], timeoutMs = 60_000) => runChecked(toolPath('docker'), args, { env: dockerd.env, timeoutMs });

beforeAll(async () => {
  dockerd = await startDockerd();
  await importNodeImage(dockerd.env, 'berth-test/node:20');
  // The classic builder: the engine runs without a bridge, so the build's `npm ci` uses the host's network.
  await runChecked(toolPath('docker'), ['build', '--network', 'host', '--build-arg', 'NODE_IMAGE=berth-test/node:20', '-t', IMAGE, ROOT], {
    env: { ...dockerd.env, DOCKER_BUILDKIT: '0' },
    timeoutMs: 600_000,
  });
  store = await mkdtemp(join(tmpdir(), 'berth-image-store-'));
  await chown(store, 65532, 65532);
}, 900_000);
afterAll(async () => {
  await dockerd?.stop();
  await rm(store, { recursive: true, force: true });
});

describe('the Berth container image', () => {
  it('serves the registry as a non-root user on a read-only root filesystem; docker push and pull work against it', async () => {
    const port = await freePort();
    const debugPort = await freePort();
    const name = `berth-image-${port}`;
    const run = [
      'run', '-d', '--name', name, '--network', 'host', '--read-only', '--tmpfs', '/tmp', '-v', `${store}:/var/lib/registry`,
      '-e', `REGISTRY_HTTP_ADDR=127.0.0.1:${port}`, '-e', `REGISTRY_HTTP_DEBUG_ADDR=127.0.0.1:${debugPort}`,
      '-e', 'REGISTRY_STORAGE=filesystem', '-e', 'REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry', '-e', 'REGISTRY_STORAGE_DELETE_ENABLED=true',
      IMAGE,
    ];
    await docker(run);
    try {
      await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined))?.status === 200, {
        timeoutMs: 30_000,
        what: 'the containerised registry',
        describe: async () => (await runCommand(toolPath('docker'), ['logs', name], { env: dockerd.env })).stderr,
      });
      expect((await docker(['inspect', '--format', '{{.Config.User}}', IMAGE])).trim()).toBe('65532:65532');
      expect((await fetch(`http://127.0.0.1:${debugPort}/readyz`)).status).toBe(200);
      const ref = `127.0.0.1:${port}/hello/world:1`;
      const id = await importImage(dockerd.env, ref, { content: 'pushed into the containerised registry\n' });
      await docker(['push', ref], 120_000);
      await docker(['rmi', ref]);
      await docker(['pull', ref], 120_000);
      expect((await docker(['image', 'inspect', '--format', '{{.Id}}', ref])).trim()).toBe(id);

      // gc from the same image, against the same store, beside the serving container.
      const gc = await docker([
        'run', '--rm', '--network', 'host', '--read-only', '-v', `${store}:/var/lib/registry`,
        '-e', 'REGISTRY_STORAGE=filesystem', '-e', 'REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry',
        IMAGE, 'gc', '--dry-run',
      ]);
      expect(JSON.parse(gc.trim().split('\n').at(-1) as string)).toMatchObject({ dryRun: true, blobsDeleted: 0 });
    } finally {
      await runCommand(toolPath('docker'), ['rm', '-f', name], { env: dockerd.env });
    }
  }, 300_000);

  it('carries berth-operator, which names a missing kubeconfig', async () => {
    const result = await runCommand(toolPath('docker'), ['run', '--rm', '--entrypoint', 'berth-operator', IMAGE, '--kubeconfig', '/nonexistent/kubeconfig'], {
      env: dockerd.env,
      timeoutMs: 60_000,
    });
    expect(result.code).not.toBe(0);
    expect(`${result.stdout}${result.stderr}`).toMatch(/\/nonexistent\/kubeconfig/);
  }, 120_000);
});
