/**
 * Configuration: CNCF Distribution's `config.yml` for the parts Berth implements, with `REGISTRY_…`
 * environment overrides named as Distribution names them, validated once at start. An invalid value
 * stops the process with a ConfigError that names the field.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** The configuration could not be read or is invalid; the message names the bad field. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Parses a Go-style duration (`60s`, `1m30s`, `500ms`, `2h`) into milliseconds; a bare number is seconds. */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') return value * 1000;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== value) {
    throw new Error(`"${value}" is not a duration such as 30s, 5m or 1h30m`);
  }
  return parts.reduce((sum, [, amount, unit]) => sum + Number(amount) * (units[unit as string] ?? 0), 0);
}

const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  try {
    return parseDuration(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

const address = z.string().refine((value) => parseAddress(value) !== undefined, {
  message: 'expected an address such as ":5000" or "127.0.0.1:5000"',
});

const enabled = (fallback: boolean) => z.object({ enabled: z.boolean().default(fallback) }).prefault({});

const storageSchema = z
  .object({
    filesystem: z
      .object({
        rootdirectory: z.string().min(1).default('/var/lib/registry'),
        maxthreads: z.number().int().positive().optional(),
      })
      .nullish(),
    inmemory: z.object({}).nullish(),
    s3: z
      .object({
        bucket: z.string().min(1),
        region: z.string().min(1),
        regionendpoint: z.string().min(1).optional(),
        forcepathstyle: z.boolean().default(false),
        rootdirectory: z.string().default(''),
        accesskey: z.string().optional(),
        secretkey: z.string().optional(),
        chunksize: z
          .number()
          .int()
          .min(5 * 1024 * 1024, { message: 'must be at least 5242880 (5 MiB), the smallest S3 part' })
          .default(10 * 1024 * 1024),
        secure: z.boolean().default(true),
        skipverify: z.boolean().default(false),
      })
      .refine((s3) => (s3.accesskey === undefined) === (s3.secretkey === undefined), {
        message: 'accesskey and secretkey must be given together (or neither, for the default credential chain)',
      })
      .nullish(),
    delete: enabled(false),
    redirect: z.object({ disable: z.boolean().default(false) }).prefault({}),
    maintenance: z
      .object({
        readonly: enabled(false),
        uploadpurging: z
          .object({
            enabled: z.boolean().default(true),
            age: duration.default(168 * 3_600_000),
            interval: duration.default(24 * 3_600_000),
            dryrun: z.boolean().default(false),
          })
          .prefault({}),
      })
      .prefault({}),
  })
  .superRefine((storage, ctx) => {
    const drivers = (['filesystem', 'inmemory', 's3'] as const).filter((key) => storage[key] !== undefined && storage[key] !== null);
    if (drivers.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          drivers.length === 0
            ? 'exactly one storage driver must be configured (filesystem, inmemory or s3)'
            : `exactly one storage driver must be configured, found ${drivers.join(' and ')}`,
      });
    }
  });

const schema = z.object({
  version: z.union([z.string(), z.number()]).transform(String).pipe(z.literal('0.1')),
  log: z
    .object({
      level: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
      formatter: z.enum(['json', 'text', 'logstash']).default('json'),
      fields: z.record(z.string(), z.unknown()).default({}),
      accesslog: z.object({ disabled: z.boolean().default(false) }).prefault({}),
    })
    .prefault({}),
  storage: storageSchema,
  http: z
    .object({
      addr: address.default(':5000'),
      host: z.url().optional(),
      prefix: z.string().default('/'),
      secret: z.string().min(16, 'must be at least 16 characters').optional(),
      draintimeout: duration.default(60_000),
      debug: z
        .object({
          addr: address.optional(),
          prometheus: z
            .object({ enabled: z.boolean().default(true), path: z.string().startsWith('/').default('/metrics') })
            .prefault({}),
        })
        .prefault({}),
    })
    .prefault({}),
});

/** The validated configuration, with Distribution's defaults filled in. */
export type RegistryConfig = z.output<typeof schema>;

/** The embedded default used by `npm start` and `berth-registry serve` without a file. */
export const DEFAULT_CONFIG_YAML = `version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: ./data
  delete:
    enabled: true
http:
  addr: :5000
  debug:
    addr: :5001
    prometheus:
      enabled: true
      path: /metrics
`;

/** Splits `host:port` (host optional, IPv6 in brackets); returns undefined when malformed. */
export function parseAddress(value: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/**
 * Applies `REGISTRY_…` environment variables to a raw config object, as Distribution does: each `_` goes
 * one level down (`REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY`), values are read as YAML scalars, and
 * `REGISTRY_STORAGE=<driver>` selects the storage driver, dropping the others.
 */
export function applyEnvironment(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const result = structuredClone(raw);
  const driverNames = ['filesystem', 'inmemory', 's3'];
  const selected = env['REGISTRY_STORAGE'];
  if (selected !== undefined && selected !== '') {
    const storage = (isRecord(result['storage']) ? result['storage'] : {}) as Record<string, unknown>;
    for (const name of driverNames) if (name !== selected) delete storage[name];
    if (storage[selected] === undefined || storage[selected] === null) storage[selected] = {};
    result['storage'] = storage;
  }
  const keys = Object.keys(env)
    .filter((key) => key.startsWith('REGISTRY_') && key !== 'REGISTRY_STORAGE')
    .sort();
  for (const key of keys) {
    const path = key.slice('REGISTRY_'.length).toLowerCase().split('_');
    let node: Record<string, unknown> = result;
    for (const part of path.slice(0, -1)) {
      if (!isRecord(node[part])) node[part] = {};
      node = node[part] as Record<string, unknown>;
    }
    const value = env[key] ?? '';
    let parsed: unknown;
    try {
      parsed = parseYaml(value);
    } catch {
      parsed = value;
    }
    node[path[path.length - 1] as string] = parsed ?? value;
  }
  return result;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Validates a raw config object; throws ConfigError naming the first bad fields. */
export function validateConfig(raw: unknown): RegistryConfig {
  const result = schema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const field = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
      return `${field}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  return result.data;
}

/** Lists the dotted keys of a raw config that Berth does not implement, so they can be reported. */
export function ignoredKeys(raw: unknown, parsed: unknown, prefix = ''): string[] {
  if (!isRecord(raw) || !isRecord(parsed)) return [];
  const ignored: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    const field = prefix === '' ? key : `${prefix}.${key}`;
    if (!(key in parsed)) ignored.push(field);
    else ignored.push(...ignoredKeys(value, parsed[key], field));
  }
  return ignored;
}

/**
 * Loads the configuration from a YAML file (or the embedded default when `path` is undefined), applies
 * the environment, and validates it.
 */
export async function loadConfig(
  path: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ config: RegistryConfig; ignored: string[] }> {
  let text = DEFAULT_CONFIG_YAML;
  if (path !== undefined) {
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw new ConfigError(`cannot read configuration file ${path}: ${(error as Error).message}`);
    }
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new ConfigError(`configuration ${path ?? '(default)'} is not valid YAML: ${(error as Error).message}`);
  }
  if (!isRecord(raw)) throw new ConfigError(`configuration ${path ?? '(default)'} is not a YAML mapping`);
  const withEnv = applyEnvironment(raw, env);
  const config = validateConfig(withEnv);
  return { config, ignored: ignoredKeys(withEnv, config) };
}
