import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { distributionV3S3Config, startDistributionV3S3, type RunningDistribution } from './distribution.js';
import { createBucket, diffCounts, minioClient, parseS3RequestMetrics, s3RequestCounts, startMinio, type RunningMinio } from './minio.js';
import { balancerConfig, startBalancer, type RunningBalancer } from './nginx.js';
import { runChecked } from './processes.js';
import { toolPath } from './tools.js';

describe('parseS3RequestMetrics', () => {
  it('sums S3 request counts by S3 operation name and ignores other series', () => {
    const text = [
      '# HELP minio_api_requests_total Total number of requests',
      '# TYPE minio_api_requests_total counter',
      'minio_api_requests_total{name="PutObject",server="127.0.0.1:9000",type="s3"} 3',
      'minio_api_requests_total{name="NewMultipartUpload",server="127.0.0.1:9000",type="s3"} 1',
      'minio_api_requests_total{name="PutObjectPart",server="127.0.0.1:9000",type="s3"} 2',
      'minio_api_requests_total{name="ListObjectsV2",server="127.0.0.1:9000",type="s3"} 1',
      'minio_api_requests_total{name="ListObjectsV2M",server="127.0.0.1:9000",type="s3"} 1',
      'minio_api_requests_inflight_total{name="GetObject",server="127.0.0.1:9000",type="s3"} 1',
      'minio_api_requests_errors_total{name="PutObject",server="127.0.0.1:9000",type="s3"} 1',
      'minio_api_requests_incoming_total{server="127.0.0.1:9000",type="s3"} 0',
    ].join('\n');
    expect(parseS3RequestMetrics(text)).toEqual({
      counts: { PutObject: 3, CreateMultipartUpload: 1, UploadPart: 2, ListObjectsV2: 2 },
      inflight: 1,
    });
  });
});

describe('diffCounts', () => {
  it('keeps only the operations whose count changed', () => {
    expect(diffCounts({ PutObject: 2, GetObject: 1 }, { PutObject: 3, GetObject: 1, HeadObject: 2 })).toEqual({ PutObject: 1, HeadObject: 2 });
  });
});

describe('balancerConfig', () => {
  it('balances round-robin over the upstreams, streaming, with keep-alive, the client Host and no body limit', () => {
    const config = balancerConfig('/tmp/p', 8080, ['http://127.0.0.1:1001', 'http://127.0.0.1:1002/']);
    expect(config).toContain('server 127.0.0.1:1001;\n    server 127.0.0.1:1002;\n    keepalive 32;');
    expect(config).not.toMatch(/ip_hash|hash |least_conn|sticky/);
    for (const directive of [
      'listen 127.0.0.1:8080;',
      'client_max_body_size 0;',
      'proxy_request_buffering off;',
      'proxy_buffering off;',
      'proxy_http_version 1.1;',
      'proxy_set_header Host $http_host;',
      'proxy_next_upstream error timeout;',
      'daemon off;',
      'pid /tmp/p/nginx.pid;',
    ]) {
      expect(config).toContain(directive);
    }
    expect(config).not.toContain('/var/');
  });

  it('rejects an upstream with a path', () => {
    expect(() => balancerConfig('/tmp/p', 8080, ['http://127.0.0.1:1001/v2/'])).toThrow('without a path');
  });
});

describe('distributionV3S3Config', () => {
  it('points storage.s3 at the peer, path-style over plain HTTP, with redirects off unless asked', () => {
    const peer = { endpoint: 'http://127.0.0.1:9000', accessKey: 'a', secretKey: 's', region: 'us-east-1' as const };
    const config = distributionV3S3Config({ minio: peer, bucket: 'b', rootDirectory: '/r' }, 5000);
    for (const line of [
      '    regionendpoint: "http://127.0.0.1:9000"',
      '    forcepathstyle: true',
      '    secure: false',
      '    region: "us-east-1"',
      '    bucket: "b"',
      '    rootdirectory: "/r"',
      '  redirect:\n    disable: true',
      '  addr: 127.0.0.1:5000',
    ]) {
      expect(config).toContain(line);
    }
    expect(distributionV3S3Config({ minio: peer, bucket: 'b', redirect: true }, 5000)).toContain('  redirect:\n    disable: false');
  });
});

/** Starts a tiny HTTP server that answers every request with its name and the Host it was sent. */
async function startNamedServer(name: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ name, host: req.headers.host ?? '', method: req.method }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return { server, url: `http://127.0.0.1:${String(address.port)}` };
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
}

describe('an nginx balancer in front of two upstreams', () => {
  const upstreams: { server: Server; url: string }[] = [];
  let balancer: RunningBalancer;

  beforeAll(async () => {
    upstreams.push(await startNamedServer('a'), await startNamedServer('b'));
    balancer = await startBalancer({ upstreams: upstreams.map((upstream) => upstream.url) });
  }, 30_000);

  afterAll(async () => {
    await (balancer as RunningBalancer | undefined)?.stop();
    for (const upstream of upstreams) if (upstream.server.listening) await closeServer(upstream.server);
  });

  /** GET /v2/ through the balancer with a Host of our own (fetch would not send one). */
  async function ask(): Promise<{ name: string; host: string }> {
    return await new Promise((resolve, reject) => {
      const req = request(`${balancer.url}/v2/`, { headers: { host: 'registry.example:5000' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          if (res.statusCode === 200) resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as { name: string; host: string });
          else reject(new Error(`Balancer answered ${String(res.statusCode)}`));
        });
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('alternates between the upstreams and passes the client Host through', async () => {
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await ask());
    const names = answers.map((answer) => answer.name).join('');
    expect(['ababab', 'bababa']).toContain(names);
    expect(new Set(answers.map((answer) => answer.host))).toEqual(new Set(['registry.example:5000']));
    expect(await readFile(balancer.accessLogFile, 'utf8')).toContain('GET /v2/ 200 upstream=127.0.0.1:');
  });

  it('streams a request body of any size to an upstream', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024, 7);
    const res = await fetch(`${balancer.url}/v2/upload`, { method: 'PUT', body });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { method: string }).method).toBe('PUT');
  });

  it('retries a GET on the other upstream when one is down', async () => {
    const [down] = upstreams;
    if (!down) throw new Error('no upstream');
    await closeServer(down.server);
    for (let i = 0; i < 4; i++) expect((await ask()).name).toBe('b');
  });
});

describe('MinIO and CNCF Distribution 3 on it', () => {
  let minio: RunningMinio;
  let client: S3Client;
  let registry: RunningDistribution;
  let workDir: string;

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'berth-s3-peers-test-'));
    minio = await startMinio();
    client = minioClient(minio);
    await createBucket(minio, 'tools-test');
    await createBucket(minio, 'distribution');
    registry = await startDistributionV3S3({ minio, bucket: 'distribution', rootDirectory: '/dist3' });
  }, 120_000);

  afterAll(async () => {
    await (registry as RunningDistribution | undefined)?.stop();
    (client as S3Client | undefined)?.destroy();
    await (minio as RunningMinio | undefined)?.stop();
    await rm(workDir, { recursive: true, force: true });
  }, 60_000);

  it('listens on loopback with the fixed credentials and region', () => {
    expect(minio.endpoint).toBe(`http://127.0.0.1:${String(minio.port)}`);
    expect(minio.region).toBe('us-east-1');
  });

  it('counts S3 requests by operation, failed ones included', async () => {
    const before = await s3RequestCounts(minio);
    await client.send(new PutObjectCommand({ Bucket: 'tools-test', Key: 'hello.txt', Body: 'hello' }));
    const got = await client.send(new GetObjectCommand({ Bucket: 'tools-test', Key: 'hello.txt' }));
    expect(await got.Body?.transformToString()).toBe('hello');
    await expect(client.send(new HeadObjectCommand({ Bucket: 'tools-test', Key: 'missing' }))).rejects.toThrow();
    expect(diffCounts(before, await s3RequestCounts(minio))).toEqual({ PutObject: 1, GetObject: 1, HeadObject: 1 });
  });

  it('keeps its data and port across a kill and a restart', async () => {
    await minio.kill();
    await expect(fetch(`${minio.endpoint}/minio/health/live`)).rejects.toThrow();
    await minio.restart();
    const got = await client.send(new GetObjectCommand({ Bucket: 'tools-test', Key: 'hello.txt' }));
    expect(await got.Body?.transformToString()).toBe('hello');
    await minio.restart();
    expect(await s3RequestCounts(minio)).toEqual({});
  }, 60_000);

  it('stores an image pushed to Distribution 3 in the bucket under its root directory', async () => {
    const layerDir = join(workDir, 'layer');
    const layer = join(workDir, 'layer.tar');
    await runChecked('mkdir', ['-p', layerDir]);
    await writeFile(join(layerDir, 'hello.txt'), 'hello from Distribution 3\n');
    await runChecked('tar', ['-C', layerDir, '-cf', layer, '.']);
    const ref = `127.0.0.1:${String(registry.port)}/tools-test/hello:1`;
    const before = await s3RequestCounts(minio);
    await runChecked(toolPath('crane'), ['append', '--insecure', '--new_layer', layer, '--new_tag', ref]);
    const push = diffCounts(before, await s3RequestCounts(minio));
    expect(push['PutObject']).toBeGreaterThan(0);

    const manifest = JSON.parse(await runChecked(toolPath('crane'), ['manifest', '--insecure', ref])) as { layers: { digest: string }[] };
    expect(manifest.layers).toHaveLength(1);
    const listed = await client.send(new ListObjectsV2Command({ Bucket: 'distribution', Prefix: 'dist3/docker/registry/v2/repositories/tools-test/hello/' }));
    expect(listed.KeyCount).toBeGreaterThan(0);
    const pulled = await runChecked('bash', ['-c', '"$1" export --insecure "$2" - | tar -xOf - --wildcards "*hello.txt"', 'pull', toolPath('crane'), ref]);
    expect(pulled).toBe('hello from Distribution 3\n');
  }, 60_000);
});
