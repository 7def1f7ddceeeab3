/**
 * An in-process registry for API tests: the real server, storage and driver, driven with `inject`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { BaseDriver } from '../../registry/driver/base.js';
import type { StorageDriver } from '../../registry/driver/driver.js';
import { FilesystemDriver } from '../../registry/driver/filesystem/filesystem-driver.js';
import { InMemoryDriver } from '../../registry/driver/inmemory/inmemory-driver.js';
import { createRegistryMetrics, type RegistryMetrics } from '../../registry/metrics.js';
import { buildServer } from '../../registry/server.js';
import { RegistryStorage } from '../../registry/storage/registry-storage.js';
import { SwitchableWriteGuard } from '../../registry/write-guard.js';

/** The drivers API tests run against. */
export const TEST_DRIVERS = ['filesystem', 'inmemory'] as const;

/** A registry under test. */
export interface TestRegistry {
  readonly app: FastifyInstance;
  readonly driver: StorageDriver;
  readonly storage: RegistryStorage;
  readonly metrics: RegistryMetrics;
  readonly writeGuard: SwitchableWriteGuard;
  /** The filesystem root, for the filesystem driver. */
  readonly root: string | undefined;
  close(): Promise<void>;
}

/** Starts an in-process registry (not listening) on a fresh store. */
export async function createTestRegistry(
  kind: (typeof TEST_DRIVERS)[number],
  options: { deleteEnabled?: boolean; readOnly?: boolean; manifestSizeLimit?: number } = {},
): Promise<TestRegistry> {
  const root = kind === 'filesystem' ? await mkdtemp(join(tmpdir(), 'berth-api-')) : undefined;
  const metrics = createRegistryMetrics();
  const inner = root !== undefined ? new FilesystemDriver({ rootDirectory: root }) : new InMemoryDriver();
  const driver = new BaseDriver(inner, metrics);
  const storage = new RegistryStorage(driver);
  const writeGuard = new SwitchableWriteGuard(options.readOnly ?? false);
  const app = await buildServer({
    storage,
    metrics,
    writeGuard,
    deleteEnabled: options.deleteEnabled ?? true,
    redirect: true,
    accessLog: false,
    ...(options.manifestSizeLimit !== undefined ? { manifestSizeLimit: options.manifestSizeLimit } : {}),
  });
  await app.ready();
  return {
    app,
    driver,
    storage,
    metrics,
    writeGuard,
    root,
    async close() {
      await app.close();
      if (root !== undefined) await rm(root, { recursive: true, force: true });
    },
  };
}

/** The sha256 digest of bytes. */
export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The sha512 digest of bytes. */
export function sha512(bytes: Uint8Array): string {
  return `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
}

/** Random bytes of a given size. */
export function randomBlob(size: number): Buffer {
  return randomBytes(size);
}

/** Pushes a blob in one POST and expects success. */
export async function pushBlob(app: FastifyInstance, name: string, blob: Buffer, digest = sha256(blob)): Promise<string> {
  const response = await app.inject({
    method: 'POST',
    url: `/v2/${name}/blobs/uploads/?digest=${digest}`,
    headers: { 'content-type': 'application/octet-stream' },
    payload: blob,
  });
  if (response.statusCode !== 201) throw new Error(`blob push failed: ${response.statusCode} ${response.body}`);
  return digest;
}

/** Builds an OCI image manifest over a config and layers (pushing nothing). */
export function imageManifest(config: Buffer, layers: Buffer[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: layers.map((layer) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: sha256(layer),
        size: layer.length,
      })),
      ...extra,
    }),
  );
}

/** Pushes a config, layers and an image manifest under a reference; returns the manifest and its digest. */
export async function pushImage(
  app: FastifyInstance,
  name: string,
  reference: string,
  options: { layers?: number; extra?: Record<string, unknown> } = {},
): Promise<{ manifest: Buffer; digest: string; config: Buffer; layers: Buffer[] }> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', nonce: randomBytes(8).toString('hex') }));
  const layers = Array.from({ length: options.layers ?? 2 }, () => randomBlob(1024 + Math.floor(Math.random() * 4096)));
  await pushBlob(app, name, config);
  for (const layer of layers) await pushBlob(app, name, layer);
  const manifest = imageManifest(config, layers, options.extra);
  const response = await app.inject({
    method: 'PUT',
    url: `/v2/${name}/manifests/${reference}`,
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    payload: manifest,
  });
  if (response.statusCode !== 201) throw new Error(`manifest push failed: ${response.statusCode} ${response.body}`);
  return { manifest, digest: sha256(manifest), config, layers };
}

/** Returns the OCI error code of an error response. */
export function errorCode(body: string): string | undefined {
  try {
    return (JSON.parse(body) as { errors?: { code?: string }[] }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}

/**
 * Sends a request over real HTTP with the path exactly as given. `inject` parses URLs with WHATWG rules,
 * which resolve `..` and `%2e%2e` before the server sees them; a real client may send them raw.
 */
export async function rawRequest(
  app: FastifyInstance,
  method: string,
  path: string,
  body?: Buffer | string,
): Promise<{ statusCode: number; body: string; headers: Record<string, unknown> }> {
  if (app.server.address() === null) await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: body === undefined ? {} : { 'content-type': 'application/octet-stream' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Adds query parameters to a (possibly relative) URL that may already have some, as an upload Location does. */
export function withQuery(location: string, params: Record<string, string>): string {
  const url = new URL(location, 'http://registry.invalid');
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  return location.startsWith('http') ? url.toString() : `${url.pathname}${url.search}`;
}
