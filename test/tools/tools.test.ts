import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseJunit, runConformance } from './conformance.js';
import { startDistribution, type RunningDistribution } from './distribution.js';
import { buildMultiLayerImage, importImage, startDockerd, type Dockerd } from './docker.js';
import { runChecked } from './processes.js';
import { freePort, toolPath, toolsDir } from './tools.js';

describe('toolPath', () => {
  it.each(['docker', 'dockerd', 'skopeo', 'docker-registry', 'busybox', 'nginx', 'promtool', 'oci-conformance', 'crane', 'oras', 'minio', 'distribution-v3', 'etcd', 'kube-apiserver', 'kubectl', 'helm', 'openssl'])(
    'finds the installed tool %s',
    (name) => {
      expect(toolPath(name)).toMatch(/^\//);
    },
  );

  it('prefers Debian docker in /usr/bin over anything in /usr/local', () => {
    expect(toolPath('docker')).toBe('/usr/bin/docker');
  });

  it('finds the Go tools in the tools cache', () => {
    expect(toolPath('crane')).toBe(join(toolsDir(), 'bin', 'crane'));
  });

  it('tells how to install a missing tool', () => {
    expect(() => toolPath('berth-no-such-tool')).toThrow('run `bash test/tools/install.sh`');
  });
});

describe('freePort', () => {
  it('returns a loopback port that can be bound', async () => {
    const port = await freePort();
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
  });
});

describe('parseJunit', () => {
  it.each([
    ['a passed case', '<testcase name="A/b" classname="" status="passed"></testcase>', { name: 'A/b', status: 'passed', systemOut: '' }],
    ['a self-closing case', '<testcase name="A/c" status="skipped"/>', { name: 'A/c', status: 'skipped', systemOut: '' }],
    [
      'a failed case with escaped text',
      '<testcase name="A/&#34;d&#34; &amp; e" status="failure"><system-out>bad &lt;thing&gt;&#xA;again</system-out></testcase>',
      { name: 'A/"d" & e', status: 'failure', systemOut: 'bad <thing>\nagain' },
    ],
    ['a case without a status attribute', '<testcase name="x"><failure message="m"/></testcase>', { name: 'x', status: 'failure', systemOut: '' }],
  ])('reads %s', (_label, xml, expected) => {
    expect(parseJunit(`<testsuites><testsuite name="s">${xml}</testsuite></testsuites>`)).toEqual([expected]);
  });
});

describe('a private dockerd with CNCF Distribution 2.8', () => {
  let dockerd: Dockerd;
  let registry: RunningDistribution;
  let registryRoot: string;
  let host: string;

  beforeAll(async () => {
    registryRoot = await mkdtemp(join(tmpdir(), 'berth-tools-test-'));
    dockerd = await startDockerd();
    registry = await startDistribution({ rootDir: join(registryRoot, 'storage'), deleteEnabled: true });
    host = `127.0.0.1:${String(registry.port)}`;
  }, 120_000);

  afterAll(async () => {
    // beforeAll may have failed part-way: stop what did start.
    const started = [dockerd as Dockerd | undefined, registry as RunningDistribution | undefined];
    for (const peer of started) if (peer) await peer.stop();
    await rm(registryRoot, { recursive: true, force: true });
  }, 60_000);

  it('pushes an imported busybox image and serves its manifest', async () => {
    const ref = `${host}/tools-test/busybox:1`;
    await importImage(dockerd.env, ref);
    await runChecked(toolPath('docker'), ['push', ref], { env: dockerd.env });
    const manifest = JSON.parse(await runChecked(toolPath('crane'), ['manifest', '--insecure', ref])) as { layers: unknown[] };
    expect(manifest.layers).toHaveLength(1);
  }, 60_000);

  it('pushes a multi-layer image made without network, with distinct layers', async () => {
    const ref = `${host}/tools-test/multi:4`;
    const id = await buildMultiLayerImage(dockerd.env, ref, 4, { layerBytes: 64 * 1024 });
    expect(await buildMultiLayerImage(dockerd.env, ref, 4, { layerBytes: 64 * 1024 })).toBe(id);
    await runChecked(toolPath('docker'), ['push', ref], { env: dockerd.env });
    const manifest = JSON.parse(await runChecked(toolPath('crane'), ['manifest', '--insecure', ref])) as { layers: { digest: string }[] };
    expect(new Set(manifest.layers.map((layer) => layer.digest)).size).toBe(4);
  }, 120_000);

  it('runs the conformance suite and reports Distribution 2.8 lacking the referrers API', async () => {
    const result = await runConformance({
      url: registry.url,
      namespace: 'conformance/repo1',
      crossmountNamespace: 'conformance/repo2',
      workdir: join(registryRoot, 'conformance'),
    });
    expect(result.passed).toBeGreaterThan(100);
    expect(result.failed).toBe(result.failures.length);
    expect(result.failures.some((name) => name.endsWith('/referrers'))).toBe(true);
    expect(result.exitCode).toBe(1);
  }, 600_000);
});
