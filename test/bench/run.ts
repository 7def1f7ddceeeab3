/**
 * `npm run bench`: Berth against CNCF Distribution 2.8 on the same machine and filesystem, in one run.
 * Measures blob push (1 GiB, monolithic and chunked), blob pull (1 GiB, page-cached) and manifest GET by
 * tag and by digest (requests/s at 50 connections, wrk), and prints Berth/Distribution ratios.
 *
 * Each blob figure is the median of BENCH_RUNS runs (default 3), each with its own blob; transfers use curl
 * (monolithic push, pull) or Node's http client (chunked push), the same for both registries.
 * Environment: BENCH_BLOB_MIB (default 1024), BENCH_CHUNK_MIB (default 64), BENCH_WRK_SECONDS (default 10).
 */
import { createHash, createCipheriv } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { startBerth, type BerthProcess } from '../support/berth-process.js';
import { startDistribution } from '../tools/distribution.js';
import { runChecked } from '../tools/processes.js';
import { toolPath } from '../tools/tools.js';

const MiB = 1024 * 1024;
const BLOB_MIB = Number(process.env['BENCH_BLOB_MIB'] ?? 1024);
const CHUNK_MIB = Number(process.env['BENCH_CHUNK_MIB'] ?? 64);
const WRK_SECONDS = Number(process.env['BENCH_WRK_SECONDS'] ?? 10);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);

function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

/** Writes `mib` MiB of incompressible bytes (an AES-CTR keystream from `seed`) and returns the file's digest. */
async function makeBlob(path: string, mib: number, seed: string): Promise<string> {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const hash = createHash('sha256');
  const zeros = Buffer.alloc(MiB);
  await pipeline(
    (function* () {
      for (let i = 0; i < mib; i++) {
        const chunk = cipher.update(zeros);
        hash.update(chunk);
        yield chunk;
      }
    })(),
    createWriteStream(path),
  );
  return `sha256:${hash.digest('hex')}`;
}

/** Sends a request whose body is a file range (or nothing) and drains the response; resolves with status and seconds. */
function timedRequest(url: string, method: string, body?: { file: string; start: number; end: number }, headers: Record<string, string> = {}): Promise<{ status: number; seconds: number; location?: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(
      url,
      { method, headers: body ? { 'content-type': 'application/octet-stream', 'content-length': String(body.end - body.start + 1), ...headers } : headers },
      (res) => {
        res.on('data', () => undefined);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, seconds: (performance.now() - started) / 1000, ...(res.headers.location ? { location: res.headers.location } : {}) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (body) createReadStream(body.file, { start: body.start, end: body.end, highWaterMark: MiB }).pipe(req);
    else req.end();
  });
}

/** Runs curl (a C client, so the client's own cost stays small) and returns the status and the seconds it took. */
async function curl(args: string[]): Promise<{ status: number; seconds: number }> {
  const out = await runChecked(toolPath('curl'), ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{time_total}', ...args], { timeoutMs: 600_000 });
  const [status, seconds] = out.trim().split(' ');
  return { status: Number(status), seconds: Number(seconds) };
}

/** The median of some numbers. */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/** Sends one chunk of a file as a PATCH and returns the next upload location. */
async function patchChunk(base: string, location: string, file: string, start: number, end: number): Promise<string> {
  const result = await timedRequest(new URL(location, base).toString(), 'PATCH', { file, start, end }, { 'content-range': `${start}-${end}` });
  if (result.status !== 202 || result.location === undefined) throw new Error(`PATCH answered ${result.status}`);
  return result.location;
}

async function chunkedPush(base: string, repo: string, file: string, digest: string): Promise<number> {
  const size = (await stat(file)).size;
  const started = performance.now();
  const post = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  let location = post.headers.get('location') as string;
  for (let start = 0; start < size; start += CHUNK_MIB * MiB) {
    location = await patchChunk(base, location, file, start, Math.min(size, start + CHUNK_MIB * MiB) - 1);
  }
  const url = new URL(location, base);
  url.searchParams.set('digest', digest);
  const put = await fetch(url, { method: 'PUT' });
  if (put.status !== 201) throw new Error(`chunked PUT answered ${put.status}: ${await put.text()}`);
  return (performance.now() - started) / 1000;
}

async function pushManifest(base: string): Promise<string> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = Buffer.alloc(10_000, 7);
  const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  for (const blob of [config, layer]) {
    const post = await fetch(`${base}/v2/bench/manifests-repo/blobs/uploads/`, { method: 'POST' });
    const url = new URL(post.headers.get('location') as string, base);
    url.searchParams.set('digest', digestOf(blob));
    const put = await fetch(url, { method: 'PUT', body: blob, headers: { 'content-type': 'application/octet-stream' } });
    if (put.status !== 201) throw new Error(`blob push answered ${put.status}`);
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: digestOf(config) },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: digestOf(layer) }],
    }),
  );
  const put = await fetch(`${base}/v2/bench/manifests-repo/manifests/latest`, {
    method: 'PUT',
    body: manifest,
    headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' },
  });
  if (put.status !== 201) throw new Error(`manifest push answered ${put.status}`);
  return digestOf(manifest);
}

async function wrk(url: string): Promise<number> {
  const out = await runChecked(
    toolPath('wrk'),
    ['-t2', '-c50', `-d${WRK_SECONDS}s`, '-H', 'Accept: application/vnd.docker.distribution.manifest.v2+json', url],
    { timeoutMs: (WRK_SECONDS + 60) * 1000 },
  );
  const match = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (match === null) throw new Error(`wrk printed no rate:\n${out}`);
  if (non2xx !== null) throw new Error(`wrk saw ${non2xx[1]} failed responses from ${url}`);
  return Number(match[1]);
}

interface Figures {
  pushMonolithic: number;
  pushChunked: number;
  pull: number;
  manifestByTag: number;
  manifestByDigest: number;
}

/** POST, then one PUT carrying the whole blob (`curl -T`): the monolithic form both registries support. */
async function monolithicPush(base: string, repo: string, blob: { path: string; digest: string }): Promise<number> {
  const started = await timedRequest(`${base}/v2/${repo}/blobs/uploads/`, 'POST');
  if (started.location === undefined) throw new Error(`POST answered ${started.status} without a location`);
  const location = new URL(started.location, base);
  location.searchParams.set('digest', blob.digest);
  const put = await curl(['-X', 'PUT', '-T', blob.path, '-H', 'Content-Type: application/octet-stream', location.toString()]);
  if (put.status !== 201) throw new Error(`monolithic PUT answered ${put.status}`);
  return started.seconds + put.seconds;
}

async function measure(label: string, base: string, blobs: { path: string; digest: string }[]): Promise<Figures> {
  const bytes = BLOB_MIB * MiB;
  const mono: number[] = [];
  const chunked: number[] = [];
  const pulls: number[] = [];
  for (const [i, blob] of blobs.entries()) {
    progress(`${label}: run ${i + 1}/${blobs.length}: monolithic push of ${BLOB_MIB} MiB`);
    mono.push(bytes / (await monolithicPush(base, `bench/mono${i}`, blob)) / 1e6);
    progress(`${label}: run ${i + 1}/${blobs.length}: chunked push of ${BLOB_MIB} MiB in ${CHUNK_MIB} MiB chunks`);
    chunked.push(bytes / (await chunkedPush(base, `bench/chunked${i}`, blob.path, blob.digest)) / 1e6);
    progress(`${label}: run ${i + 1}/${blobs.length}: pull of ${BLOB_MIB} MiB (page-cached)`);
    const pullUrl = `${base}/v2/bench/mono${i}/blobs/${blob.digest}`;
    const pull = await curl([pullUrl]);
    if (pull.status !== 200) throw new Error(`${label}: pull answered ${pull.status}`);
    pulls.push(bytes / pull.seconds / 1e6);
  }
  const digest = await pushManifest(base);
  progress(`${label}: manifest GET by tag, ${WRK_SECONDS}s at 50 connections`);
  const manifestByTag = await wrk(`${base}/v2/bench/manifests-repo/manifests/latest`);
  progress(`${label}: manifest GET by digest, ${WRK_SECONDS}s at 50 connections`);
  const manifestByDigest = await wrk(`${base}/v2/bench/manifests-repo/manifests/${digest}`);
  return { pushMonolithic: median(mono), pushChunked: median(chunked), pull: median(pulls), manifestByTag, manifestByDigest };
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'berth-bench-'));
  let berth: BerthProcess | undefined;
  let distribution: Awaited<ReturnType<typeof startDistribution>> | undefined;
  try {
    progress(`writing ${RUNS} test blobs of ${BLOB_MIB} MiB under ${work}`);
    const blobs: { path: string; digest: string }[] = [];
    for (let i = 0; i < RUNS; i++) {
      const path = join(work, `blob-${i}.bin`);
      blobs.push({ path, digest: await makeBlob(path, BLOB_MIB, `${i}-${Date.now()}`) });
    }

    progress('starting CNCF Distribution 2.8');
    distribution = await startDistribution({ rootDir: join(work, 'distribution'), deleteEnabled: true });
    const reference = await measure('distribution', distribution.url, blobs);
    await distribution.stop();
    distribution = undefined;

    progress('starting Berth (built JavaScript, filesystem driver, fsync on every blob write)');
    await mkdir(join(work, 'berth'), { recursive: true });
    berth = await startBerth({ rootDir: join(work, 'berth'), built: true });
    const berthFigures = await measure('berth', berth.url, blobs);

    const rows: [string, keyof Figures, string][] = [
      [`blob push, monolithic (${BLOB_MIB} MiB)`, 'pushMonolithic', 'MB/s'],
      [`blob push, chunked (${BLOB_MIB} MiB, ${CHUNK_MIB} MiB chunks)`, 'pushChunked', 'MB/s'],
      [`blob pull (${BLOB_MIB} MiB, page-cached)`, 'pull', 'MB/s'],
      ['manifest GET by tag (50 connections)', 'manifestByTag', 'req/s'],
      ['manifest GET by digest (50 connections)', 'manifestByDigest', 'req/s'],
    ];
    const lines = [
      '',
      `| measurement | Berth | Distribution 2.8 | Berth/Distribution |`,
      `|---|---|---|---|`,
      ...rows.map(([name, key, unit]) => {
        const ratio = berthFigures[key] / reference[key];
        return `| ${name} | ${berthFigures[key].toFixed(0)} ${unit} | ${reference[key].toFixed(0)} ${unit} | ${ratio.toFixed(2)} |`;
      }),
      '',
    ];
    process.stdout.write(lines.join('\n'));
  } finally {
    await berth?.stop();
    await distribution?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
