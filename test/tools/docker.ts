/**
 * A private Docker engine for tests, and test images made without any network.
 *
 * Each `startDockerd()` call runs its own `dockerd` on its own unix socket. Daemons never share
 * a data root: the data roots live in numbered slots under `toolsDir()/docker/slot-N/data`, and a
 * daemon holds an exclusive flock on its slot's `lock` file for as long as it runs, so concurrent
 * test files each get a different slot, and a slot left by a finished run is reused with its images.
 * The slot also records the Node process that owns the daemon: a daemon whose owner died without
 * stopping it (a killed test worker) is stopped by the next `startDockerd()` that finds its slot busy.
 * Socket, exec-root, pidfile, log and CLI config are in a fresh temporary directory per daemon
 * (unix socket paths must stay short); the next daemon in the slot removes a directory left behind.
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, mkdtemp, readFile, realpath, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pipeline } from 'node:stream/promises';
import { runChecked, runCommand, stopProcess, tailFile, waitUntil } from './processes.js';
import { toolPath, toolsDir } from './tools.js';

/** How many daemons may run at once from one tools dir (one per concurrent test file is plenty). */
const MAX_SLOTS = 8;

/** Exit status of the lock wrapper when another daemon holds the slot. */
const SLOT_BUSY = 75;

/** A running private Docker engine. */
export interface Dockerd {
  /** `unix:///…/docker.sock`, the value of DOCKER_HOST. */
  host: string;
  /** `process.env` plus DOCKER_HOST and a private DOCKER_CONFIG; pass it to every `docker` call (run `toolPath('docker')`). */
  env: NodeJS.ProcessEnv;
  /** The daemon's data root (kept between runs, so images survive). */
  dataRoot: string;
  /** The daemon's log file (deleted by stop()). */
  logFile: string;
  /** Stops the daemon (SIGTERM, waits for it and its containerd to exit) and removes its temporary files; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts a private `dockerd` (`--iptables=false --bridge=none --storage-driver=vfs`, private data root,
 * exec root, pidfile and socket) in the first free slot and resolves once `docker info` answers.
 */
export async function startDockerd(opts: { signal?: AbortSignal } = {}): Promise<Dockerd> {
  const dockerd = toolPath('dockerd');
  const docker = toolPath('docker');
  toolPath('flock');
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    opts.signal?.throwIfAborted();
    let started = await startInSlot(dockerd, docker, slot, opts.signal);
    if (started === undefined && (await stopOrphan(slotDirOf(slot)))) {
      started = await startInSlot(dockerd, docker, slot, opts.signal);
    }
    if (started !== undefined) return started;
  }
  throw new Error(`All ${String(MAX_SLOTS)} dockerd slots under ${join(toolsDir(), 'docker')} are in use (is a stray dockerd still running?)`);
}

function slotDirOf(slot: number): string {
  return join(toolsDir(), 'docker', `slot-${String(slot)}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readPid(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt(await readFile(path, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** If the daemon holding `slotDir` lost its owning Node process, stops it (SIGTERM, then SIGKILL) and resolves true. */
async function stopOrphan(slotDir: string): Promise<boolean> {
  const owner = await readPid(join(slotDir, 'owner'));
  if (owner === undefined || isAlive(owner)) return false;
  let runDir: string;
  try {
    runDir = (await readFile(join(slotDir, 'run'), 'utf8')).trim();
  } catch {
    return false;
  }
  const pid = await readPid(join(runDir, 'dockerd.pid'));
  if (pid === undefined || !isAlive(pid)) return false;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 30_000;
  while (isAlive(pid) && Date.now() < deadline) await sleep(200);
  if (isAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    await killLeftoverContainerd(join(runDir, 'exec'));
  }
  return true;
}

/**
 * The lock wrapper run by bash: take the slot's lock on fd 9 (or exit SLOT_BUSY), remove the run dir an earlier
 * holder left, record ours and our owner, then become dockerd, which keeps fd 9, and so the lock, until it exits.
 */
const LOCK_SCRIPT = `
slot=$1 owner=$2 run=$3; shift 3
exec 9>>"$slot/lock"
flock --nonblock 9 || exit ${String(SLOT_BUSY)}
old=$(cat "$slot/run" 2>/dev/null || true)
case "$old" in */berth-dockerd-*) [ "$old" = "$run" ] || rm -rf -- "$old" ;; esac
printf '%s\n' "$run" >"$slot/run"
printf '%s\n' "$owner" >"$slot/owner"
exec "$@"
`;

/** Starts dockerd in `slot`; resolves undefined when another daemon holds that slot. */
async function startInSlot(dockerd: string, docker: string, slot: number, signal: AbortSignal | undefined): Promise<Dockerd | undefined> {
  const slotDir = slotDirOf(slot);
  const dataRoot = join(slotDir, 'data');
  await mkdir(slotDir, { recursive: true });
  const runDir = await mkdtemp(join(tmpdir(), 'berth-dockerd-'));
  const socket = join(runDir, 'docker.sock');
  const execRoot = join(runDir, 'exec');
  const logFile = join(runDir, 'dockerd.log');
  const daemonConfig = join(runDir, 'daemon.json');
  const cliConfig = join(runDir, 'cli');
  // Our own daemon.json, so a machine's /etc/docker/daemon.json (mirrors, proxies) never applies; the daemon's
  // identity key goes in the slot, not /etc/docker/key.json, where daemons starting together on a new machine would race.
  await writeFile(daemonConfig, `${JSON.stringify({ 'deprecated-key-path': join(slotDir, 'key.json') })}\n`);
  await mkdir(cliConfig);
  const args = [
    `--data-root=${dataRoot}`,
    `--exec-root=${execRoot}`,
    `--pidfile=${join(runDir, 'dockerd.pid')}`,
    `--host=unix://${socket}`,
    `--config-file=${daemonConfig}`,
    '--iptables=false',
    '--ip6tables=false',
    '--ip-masq=false',
    '--bridge=none',
    '--storage-driver=vfs',
    // If a system containerd runs, dockerd uses it instead of its own: keep each slot in its own namespaces there.
    `--containerd-namespace=berth-slot-${String(slot)}`,
    `--containerd-plugins-namespace=berth-slot-${String(slot)}-plugins`,
  ];
  const log = createWriteStream(logFile);
  await once(log, 'open');
  const child = spawn('bash', ['-c', LOCK_SCRIPT, 'berth-dockerd', slotDir, String(process.pid), runDir, dockerd, ...args], {
    stdio: ['ignore', log, log],
  });
  // If this process exits without stop(), do not leave the daemon running (a later start would reclaim it anyway).
  const onExit = (): void => {
    child.kill('SIGTERM');
  };
  process.once('exit', onExit);
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  // The caller's DOCKER_CONTEXT / DOCKER_TLS_* would point the CLI elsewhere.
  const inherited = Object.entries(process.env).filter(([key]) => !['DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH'].includes(key));
  const env: NodeJS.ProcessEnv = { ...Object.fromEntries(inherited), DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: cliConfig };

  let stopped: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    stopped ??= (async () => {
      process.off('exit', onExit);
      await stopProcess(child, 30_000);
      if (child.signalCode === 'SIGKILL') await killLeftoverContainerd(execRoot);
      log.close();
      // A container run with the host's network leaves the default network namespace bind-mounted here.
      await runCommand('umount', ['-l', join(execRoot, 'netns', 'default')]).catch(() => undefined);
      await rm(runDir, { recursive: true, force: true });
    })();
    await stopped;
  };

  const outcome = { busy: false };
  try {
    await waitUntil(
      async () => {
        signal?.throwIfAborted();
        if (spawnError) throw spawnError;
        if (child.exitCode === SLOT_BUSY) {
          outcome.busy = true;
          return true;
        }
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`dockerd exited (${String(child.exitCode ?? child.signalCode)}) before it was ready:\n${await tailFile(logFile)}`);
        }
        if (!existsSync(socket)) return false;
        const info = await runCommand(docker, ['info', '--format', '{{.ServerVersion}}'], { env, timeoutMs: 10_000 });
        return info.code === 0;
      },
      { timeoutMs: 60_000, intervalMs: 200, what: `dockerd on ${socket}`, describe: () => tailFile(logFile) },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  if (outcome.busy) {
    await stop();
    return undefined;
  }
  // Untagged leftovers of earlier runs only cost disk (vfs copies every layer in full).
  await runChecked(docker, ['image', 'prune', '--force'], { env });
  return { host: `unix://${socket}`, env, dataRoot, logFile, stop };
}

/** After a forced stop, dockerd's managed containerd may outlive it; end it by its pidfile. */
async function killLeftoverContainerd(execRoot: string): Promise<void> {
  const pid = await readPid(join(execRoot, 'containerd', 'containerd.pid'));
  if (pid === undefined) return;
  // The pidfile may be stale and its PID reused: only a containerd is ours to kill.
  const comm = await readFile(`/proc/${String(pid)}/comm`, 'utf8').catch(() => '');
  if (comm.trim() !== 'containerd') return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/** GNU tar flags that make an archive depend only on file names and contents. */
const DETERMINISTIC_TAR = ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner'] as const;

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/**
 * Makes the single-layer image `ref` with `docker import` of a tiny rootfs: /bin/busybox (Debian busybox-static)
 * and /etc/berth-image.txt (`content`, by default a line naming `ref`); entrypoint busybox, cmd `sh`.
 * Resolves with the image ID (`sha256:…`).
 */
export async function importImage(env: NodeJS.ProcessEnv, ref: string, opts: { content?: string } = {}): Promise<string> {
  const docker = toolPath('docker');
  const busybox = toolPath('busybox');
  const dir = await mkdtemp(join(tmpdir(), 'berth-import-'));
  try {
    const rootfs = join(dir, 'rootfs');
    await mkdir(join(rootfs, 'bin'), { recursive: true });
    await mkdir(join(rootfs, 'etc'));
    await copyFile(busybox, join(rootfs, 'bin', 'busybox'));
    await chmod(join(rootfs, 'bin', 'busybox'), 0o755);
    await writeFile(join(rootfs, 'etc', 'berth-image.txt'), opts.content ?? `Berth test image ${ref}\n`);
    const tarball = join(dir, 'rootfs.tar');
    await runChecked('tar', [...DETERMINISTIC_TAR, '-C', rootfs, '-cf', tarball, '.']);
    const out = await runChecked(
      docker,
      ['import', '--change', 'ENTRYPOINT ["/bin/busybox"]', '--change', 'CMD ["sh"]', tarball, ref],
      { env },
    );
    return out.trim();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Makes `ref` a stand-in for a Debian Node.js image (Docker Hub is out of reach here) with `docker import`: this
 * machine's `node` binary and the shared libraries it links, its npm, busybox as `sh`, `env` and the usual
 * tools, /tmp and /root, and this machine's CA bundle. Enough for the project's Dockerfile to build and run on
 * it. Reused when the engine already has it for this Node.js version. Resolves with the image ID.
 */
export async function importNodeImage(env: NodeJS.ProcessEnv, ref: string): Promise<string> {
  // The engine's data root outlives it: an image already made for this Node.js version is reused.
  const existing = await runCommand(toolPath('docker'), ['image', 'inspect', '--format', '{{.Id}} {{index .Config.Labels "node-version"}}', ref], { env });
  const [id, version] = existing.stdout.trim().split(' ');
  if (existing.code === 0 && id !== undefined && version === process.version) return id;
  const dir = await mkdtemp(join(tmpdir(), 'berth-node-image-'));
  try {
    const rootfs = join(dir, 'rootfs');
    const put = async (source: string, target: string) => {
      await mkdir(join(rootfs, dirname(target)), { recursive: true });
      await cp(source, join(rootfs, target), { recursive: true, dereference: true });
    };
    await put(process.execPath, '/usr/local/bin/node');
    const libraries = (await runChecked('ldd', [process.execPath])).matchAll(/(\/\S+\.so[.\d]*)/g);
    for (const [library] of libraries) await put(library, library);
    const npmRoot = resolve(dirname(await realpath(toolPath('npm'))), '..');
    await put(npmRoot, '/usr/local/lib/node_modules/npm');
    await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(rootfs, 'usr/local/bin/npm'));
    await put(toolPath('busybox'), '/bin/busybox');
    for (const applet of ['sh', 'ln', 'chmod', 'chown', 'mkdir', 'rm', 'cp', 'mv', 'cat', 'ls']) await symlink('busybox', join(rootfs, 'bin', applet));
    await mkdir(join(rootfs, 'usr/bin'), { recursive: true });
    await symlink('/bin/busybox', join(rootfs, 'usr/bin/env'));
    for (const path of ['tmp', 'root', 'etc']) await mkdir(join(rootfs, path), { recursive: true });
    // This machine's trust store, as a site's own base image would carry it (npm goes through it to the registry).
    await put('/etc/ssl/certs/ca-certificates.crt', '/etc/ssl/certs/ca-certificates.crt');
    await chmod(join(rootfs, 'tmp'), 0o1777);
    await writeFile(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/home/nonroot:/bin/sh\n');
    await writeFile(join(rootfs, 'etc/group'), 'root:x:0:\nnonroot:x:65532:\n');
    const tarball = join(dir, 'rootfs.tar');
    await runChecked('tar', [...DETERMINISTIC_TAR, '-C', rootfs, '-cf', tarball, '.']);
    const out = await runChecked(toolPath('docker'), ['import', '--change', 'ENV PATH=/usr/local/bin:/usr/bin:/bin', '--change', 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt', '--change', `LABEL node-version=${process.version}`, '--change', 'CMD ["node"]', tarball, ref], { env });
    return out.trim();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Options for `buildMultiLayerImage`. */
export interface MultiLayerImageOptions {
  /** Bytes of (incompressible) data in each layer's file; default 1024. */
  layerBytes?: number;
  /** Seed for the layer data; default `ref`, so different refs get different layers and the same ref the same image. */
  seed?: string;
}

/** Deterministic incompressible bytes: the AES-256-CTR keystream for a key derived from `seed`. */
function pseudoRandomStream(seed: string, length: number): Readable {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const chunk = Buffer.alloc(1024 * 1024);
  let remaining = length;
  return Readable.from(
    (function* () {
      while (remaining > 0) {
        const n = Math.min(remaining, chunk.length);
        remaining -= n;
        yield cipher.update(chunk.subarray(0, n));
      }
    })(),
  );
}

function dockerArch(): string {
  switch (process.arch) {
    case 'x64':
      return 'amd64';
    case 'ia32':
      return '386';
    default:
      return process.arch;
  }
}

/**
 * Makes the image `ref` with `layers` distinct layers (layer i holds /berth/layer-i.bin) and no base image,
 * by writing a docker-archive (manifest.json, config, layer tars) and `docker load`ing it: no network, no builder.
 * The result depends only on `ref` (or `seed`), `layers` and `layerBytes`. Resolves with the image ID (`sha256:…`).
 */
export async function buildMultiLayerImage(
  env: NodeJS.ProcessEnv,
  ref: string,
  layers: number,
  opts: MultiLayerImageOptions = {},
): Promise<string> {
  if (!Number.isInteger(layers) || layers < 1) throw new Error(`layers must be a positive integer, got ${String(layers)}`);
  const layerBytes = opts.layerBytes ?? 1024;
  const seed = opts.seed ?? ref;
  const docker = toolPath('docker');
  const dir = await mkdtemp(join(tmpdir(), 'berth-image-'));
  try {
    const archive = join(dir, 'archive');
    await mkdir(archive);
    const diffIds: string[] = [];
    const layerPaths: string[] = [];
    for (let i = 0; i < layers; i++) {
      const layerDir = join(dir, `layer-${String(i)}`);
      await mkdir(join(layerDir, 'berth'), { recursive: true });
      await pipeline(
        pseudoRandomStream(`${seed}\0${String(i)}`, layerBytes),
        createWriteStream(join(layerDir, 'berth', `layer-${String(i)}.bin`)),
      );
      const tarball = join(dir, `layer-${String(i)}.tar`);
      await runChecked('tar', [...DETERMINISTIC_TAR, '-C', layerDir, '-cf', tarball, '.']);
      await rm(layerDir, { recursive: true });
      const diffId = await sha256File(tarball);
      await mkdir(join(archive, diffId), { recursive: true });
      await rename(tarball, join(archive, diffId, 'layer.tar'));
      diffIds.push(`sha256:${diffId}`);
      layerPaths.push(`${diffId}/layer.tar`);
    }
    const created = '1970-01-01T00:00:00Z';
    const config = JSON.stringify({
      architecture: dockerArch(),
      os: 'linux',
      created,
      config: {},
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: diffIds.map((_, i) => ({ created, created_by: `berth test layer ${String(i)}` })),
    });
    const configId = createHash('sha256').update(config).digest('hex');
    await writeFile(join(archive, `${configId}.json`), config);
    await writeFile(join(archive, 'manifest.json'), JSON.stringify([{ Config: `${configId}.json`, RepoTags: [ref], Layers: layerPaths }]));
    const image = join(dir, 'image.tar');
    await runChecked('tar', [...DETERMINISTIC_TAR, '-C', archive, '-cf', image, '.']);
    await rm(archive, { recursive: true });
    const out = await runChecked(docker, ['load', '--input', image], { env, timeoutMs: 600_000 });
    if (!out.includes('Loaded image')) {
      throw new Error(`docker load did not report loading ${ref}:\n${out}`);
    }
    return `sha256:${configId}`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
