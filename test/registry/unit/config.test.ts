import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, applyEnvironment, loadConfig, parseAddress, parseDuration } from '../../../registry/config.js';

async function configFile(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-config-'));
  const path = join(dir, 'config.yml');
  await writeFile(path, text);
  return path;
}

describe('registry configuration', () => {
  it('uses the embedded default without a file: filesystem under ./data, port 5000, metrics on 5001', async () => {
    const { config } = await loadConfig(undefined, {});
    expect(config.storage.filesystem?.rootdirectory).toBe('./data');
    expect(config.http.addr).toBe(':5000');
    expect(config.http.debug.addr).toBe(':5001');
    expect(config.http.debug.prometheus).toEqual({ enabled: true, path: '/metrics' });
  });

  it('reads a CNCF Distribution config.yml and fills in Distribution defaults', async () => {
    const path = await configFile(`
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
`);
    const { config, ignored } = await loadConfig(path, {});
    expect(config.storage.filesystem?.rootdirectory).toBe('/var/lib/registry');
    expect(config.storage.delete.enabled).toBe(false);
    expect(config.storage.maintenance.readonly.enabled).toBe(false);
    expect(config.http.draintimeout).toBe(60_000);
    expect(ignored).toEqual(expect.arrayContaining(['storage.cache', 'http.headers', 'health']));
  });

  it('applies REGISTRY_ environment overrides as Distribution names them', async () => {
    const { config } = await loadConfig(undefined, {
      REGISTRY_HTTP_ADDR: '127.0.0.1:6000',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv/registry',
      REGISTRY_STORAGE_DELETE_ENABLED: 'false',
      REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED: 'true',
      REGISTRY_LOG_LEVEL: 'debug',
    });
    expect(config.http.addr).toBe('127.0.0.1:6000');
    expect(config.storage.filesystem?.rootdirectory).toBe('/srv/registry');
    expect(config.storage.delete.enabled).toBe(false);
    expect(config.storage.maintenance.readonly.enabled).toBe(true);
    expect(config.log.level).toBe('debug');
  });

  it('switches the storage driver with REGISTRY_STORAGE, dropping the configured one', () => {
    const raw = applyEnvironment({ storage: { filesystem: { rootdirectory: '/x' }, delete: { enabled: true } } }, { REGISTRY_STORAGE: 'inmemory' });
    expect(raw).toEqual({ storage: { inmemory: {}, delete: { enabled: true } } });
  });

  it.each([
    ['a wrong type', 'version: 0.1\nstorage:\n  inmemory: {}\n  delete:\n    enabled: "sometimes"\n', 'storage.delete.enabled'],
    ['a bad address', 'version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  addr: "five thousand"\n', 'http.addr'],
    ['a bad log level', 'version: 0.1\nlog:\n  level: loud\nstorage:\n  inmemory: {}\n', 'log.level'],
    ['a bad duration', 'version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  draintimeout: soon\n', 'http.draintimeout'],
    ['two storage drivers', 'version: 0.1\nstorage:\n  inmemory: {}\n  filesystem:\n    rootdirectory: /x\n', 'storage'],
    ['no storage driver', 'version: 0.1\nstorage:\n  delete:\n    enabled: true\n', 'storage'],
    ['a wrong version', 'version: 0.2\nstorage:\n  inmemory: {}\n', 'version'],
  ])('stops with an error naming the field for %s', async (_label, text, field) => {
    const path = await configFile(text);
    const error = await loadConfig(path, {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(`${field}:`);
  });

  it('names the environment variable field when an override is invalid', async () => {
    const error = await loadConfig(undefined, { REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED: 'maybe' }).catch((e: unknown) => e);
    expect((error as Error).message).toContain('http.debug.prometheus.enabled');
  });

  it('reports a file that is missing or not YAML', async () => {
    await expect(loadConfig('/nonexistent/config.yml', {})).rejects.toThrow(/cannot read configuration file/);
    await expect(loadConfig(await configFile('a: [unclosed'), {})).rejects.toThrow(/not valid YAML/);
  });

  it('parses Go durations and listen addresses', () => {
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration(5)).toBe(5000);
    expect(() => parseDuration('5 minutes')).toThrow();
    expect(parseAddress(':5000')).toEqual({ host: '0.0.0.0', port: 5000 });
    expect(parseAddress('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseAddress('localhost:70000')).toBeUndefined();
  });
});

describe('S3 storage configuration', () => {
  it('reads storage.s3 as Distribution names its fields, with Distribution defaults', async () => {
    const { config } = await loadConfig(undefined, {
      REGISTRY_STORAGE: 's3',
      REGISTRY_STORAGE_S3_BUCKET: 'registry',
      REGISTRY_STORAGE_S3_REGION: 'us-east-1',
      REGISTRY_STORAGE_S3_REGIONENDPOINT: 'http://127.0.0.1:9000',
      REGISTRY_STORAGE_S3_FORCEPATHSTYLE: 'true',
      REGISTRY_STORAGE_S3_ACCESSKEY: 'key',
      REGISTRY_STORAGE_S3_SECRETKEY: 'secret',
    });
    expect(config.storage.filesystem).toBeUndefined();
    expect(config.storage.s3).toMatchObject({
      bucket: 'registry',
      region: 'us-east-1',
      regionendpoint: 'http://127.0.0.1:9000',
      forcepathstyle: true,
      chunksize: 10 * 1024 * 1024,
      secure: true,
      skipverify: false,
      rootdirectory: '',
    });
  });

  it.each([
    ['a missing bucket', { REGISTRY_STORAGE_S3_REGION: 'x' }, 'storage.s3.bucket'],
    ['a part size below 5 MiB', { REGISTRY_STORAGE_S3_BUCKET: 'b', REGISTRY_STORAGE_S3_REGION: 'x', REGISTRY_STORAGE_S3_CHUNKSIZE: '1024' }, 'storage.s3.chunksize'],
    ['an access key without a secret key', { REGISTRY_STORAGE_S3_BUCKET: 'b', REGISTRY_STORAGE_S3_REGION: 'x', REGISTRY_STORAGE_S3_ACCESSKEY: 'k' }, 'storage.s3'],
    ['a short HTTP secret', { REGISTRY_STORAGE_S3_BUCKET: 'b', REGISTRY_STORAGE_S3_REGION: 'x', REGISTRY_HTTP_SECRET: 'short' }, 'http.secret'],
  ])('names the field for %s', async (_label, env, field) => {
    const error = await loadConfig(undefined, { REGISTRY_STORAGE: 's3', ...env }).catch((e: unknown) => e);
    expect((error as Error).message).toContain(`${field}:`);
  });
});
