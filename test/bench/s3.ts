/**
 * `npm run bench:s3`: Berth on S3 (MinIO) against CNCF Distribution 3 on the same MinIO.
 *
 * 1. S3 requests for a docker push and a docker pull of a three-layer image, per S3 API, for both registries.
 * 2. Berth's peak memory (VmHWM) while receiving a 2 GiB blob in one PUT, streamed to S3 in multipart parts.
 *
 * Environment: BENCH_S3_BLOB_MIB (default 2048).
 */
import { createHash, createCipheriv } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { startDistributionV3S3 } from '../tools/distribution.js';
import { buildMultiLayerImage, startDockerd } from '../tools/docker.js';
import { createBucket, diffCounts, s3RequestCounts, startMinio } from '../tools/minio.js';
import { runChecked } from '../tools/processes.js';
import { toolPath } from '../tools/tools.js';
import { startBerth } from '../support/berth-process.js';

const MiB = 1024 * 1024;
const BLOB_MIB = Number(process.env['BENCH_S3_BLOB_MIB'] ?? 2048);
const progress = (message: string) => process.stderr.write(`bench:s3: ${message}\n`);

async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : Number.NaN;
}

/** Upload bytes the replicas read back to hash at commit, summed from their metrics. */
async function rebuiltBytes(debugUrls: string[]): Promise<number> {
  let total = 0;
  for (const url of debugUrls) {
    const text = await (await fetch(`${url}/metrics`)).text();
    total += Number(/^registry_upload_hash_rebuild_bytes_total (\d+)/m.exec(text)?.[1] ?? 0);
  }
  return total;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'berth-bench-s3-'));
  const minio = await startMinio();
  const dockerd = await startDockerd();
  const stops: (() => Promise<void>)[] = [];
  try {
    for (const bucket of ['berth', 'distribution']) await createBucket(minio, bucket);
    const s3 = { endpoint: minio.endpoint, region: minio.region, accessKey: minio.accessKey, secretKey: minio.secretKey };
    const berth = await startBerth({ storage: { s3: { ...s3, bucket: 'berth' } }, workDir: join(work, 'berth') });
    stops.push(() => berth.stop());
    const distribution = await startDistributionV3S3({ minio, bucket: 'distribution' });
    stops.push(() => distribution.stop());
    const docker = (...args: string[]) => runChecked(toolPath('docker'), args, { env: dockerd.env, timeoutMs: 600_000 });

    const table: Record<string, Record<string, number>> = {};
    for (const [label, url] of [['Berth', berth.url], ['Distribution 3', distribution.url]] as const) {
      const ref = `${new URL(url).host}/bench/three-layers:1`;
      await buildMultiLayerImage(dockerd.env, ref, 3, { layerBytes: 4 * MiB, seed: `s3-bench-${label}-${Date.now()}` });
      progress(`${label}: docker push of a three-layer image`);
      let before = await s3RequestCounts(minio);
      await docker('push', ref);
      table[`${label} push`] = diffCounts(before, await s3RequestCounts(minio));
      await docker('rmi', ref);
      progress(`${label}: docker pull`);
      before = await s3RequestCounts(minio);
      await docker('pull', ref);
      table[`${label} pull`] = diffCounts(before, await s3RequestCounts(minio));
      await docker('rmi', ref);
    }
    const apis = [...new Set(Object.values(table).flatMap((counts) => Object.keys(counts)))].sort();
    const columns = Object.keys(table);
    const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
    const lines = [
      '',
      `| S3 API | ${columns.join(' | ')} |`,
      `|---|${columns.map(() => '---').join('|')}|`,
      ...apis.map((api) => `| ${api} | ${columns.map((c) => table[c]?.[api] ?? 0).join(' | ')} |`),
      `| **total** | ${columns.map((c) => total(table[c] ?? {})).join(' | ')} |`,
      '',
    ];
    process.stdout.write(lines.join('\n'));

    progress('a 256 MiB chunked upload in 32 MiB chunks: all on one replica, then alternating between two');
    const second = await startBerth({ storage: { s3: { ...s3, bucket: 'berth' } }, workDir: join(work, 'berth-2') });
    stops.push(() => second.stop());
    const chunkRows: string[] = [];
    for (const [label, targets] of [['all chunks on one replica', [berth, berth]], ['chunks alternating between two replicas', [berth, second]]] as const) {
      const data = createCipheriv('aes-256-ctr', createHash('sha256').update(label).digest(), Buffer.alloc(16)).update(Buffer.alloc(256 * MiB));
      const before = await rebuiltBytes([berth.debugUrl, second.debugUrl]);
      const started = performance.now();
      const post = await fetch(`${targets[0].url}/v2/bench/chunks/blobs/uploads/`, { method: 'POST' });
      let location = post.headers.get('location') as string;
      for (let i = 0, offset = 0; offset < data.length; i++, offset += 32 * MiB) {
        const target = targets[i % 2] as { url: string };
        const body = data.subarray(offset, offset + 32 * MiB);
        const patch = await fetch(new URL(location, target.url), {
          method: 'PATCH',
          headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + body.length - 1}` },
          body,
        });
        if (patch.status !== 202) throw new Error(`PATCH answered ${patch.status}`);
        location = patch.headers.get('location') as string;
      }
      const finish = new URL(location, targets[1].url);
      finish.searchParams.set('digest', `sha256:${createHash('sha256').update(data).digest('hex')}`);
      const put = await fetch(finish, { method: 'PUT' });
      if (put.status !== 201) throw new Error(`PUT answered ${put.status}: ${await put.text()}`);
      const seconds = (performance.now() - started) / 1000;
      const rebuilt = (await rebuiltBytes([berth.debugUrl, second.debugUrl])) - before;
      chunkRows.push(`| ${label} | ${seconds.toFixed(2)} s | ${((256 * MiB) / seconds / 1e6).toFixed(0)} MB/s | ${(rebuilt / MiB).toFixed(0)} MiB |`);
    }
    process.stdout.write(['', '| 256 MiB chunked upload, 32 MiB chunks | time | throughput | bytes read back to hash |', '|---|---|---|---|', ...chunkRows, ''].join('\n'));

    progress(`writing a ${BLOB_MIB} MiB blob`);
    const blobPath = join(work, 'big.bin');
    const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update('s3-bench').digest(), Buffer.alloc(16));
    const hash = createHash('sha256');
    const zeros = Buffer.alloc(MiB);
    await pipeline(
      (function* () {
        for (let i = 0; i < BLOB_MIB; i++) {
          const chunk = cipher.update(zeros);
          hash.update(chunk);
          yield chunk;
        }
      })(),
      createWriteStream(blobPath),
    );
    const digest = `sha256:${hash.digest('hex')}`;
    const pid = berth.child.pid as number;
    const baseline = await peakRss(pid);
    progress(`pushing it to Berth in one PUT (peak RSS before: ${(baseline / MiB).toFixed(0)} MiB)`);
    const post = await fetch(`${berth.url}/v2/bench/big/blobs/uploads/`, { method: 'POST' });
    const location = new URL(post.headers.get('location') as string, berth.url);
    location.searchParams.set('digest', digest);
    const started = performance.now();
    const out = await runChecked(toolPath('curl'), ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'PUT', '-T', blobPath, location.toString()], { timeoutMs: 1_800_000 });
    const seconds = (performance.now() - started) / 1000;
    if (out.trim() !== '201') throw new Error(`the PUT answered ${out}`);
    const peak = await peakRss(pid);
    process.stdout.write(
      [
        '',
        `| ${BLOB_MIB} MiB blob, one PUT, to S3 (10 MiB parts) | value |`,
        '|---|---|',
        `| Berth peak RSS before the push | ${(baseline / MiB).toFixed(0)} MiB |`,
        `| Berth peak RSS after the push | ${(peak / MiB).toFixed(0)} MiB |`,
        `| throughput | ${((BLOB_MIB * MiB) / seconds / 1e6).toFixed(0)} MB/s |`,
        '',
      ].join('\n'),
    );
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await dockerd.stop();
    await minio.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
