/**
 * Starts Debian's nginx as a round-robin load balancer on loopback: the ingress in front of registry replicas.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tailFile, waitUntilExited, waitUntil } from './processes.js';
import { freePort, toolPath } from './tools.js';

/** Path nginx answers itself (200 "ready"), never passing it upstream: the readiness probe, which must not take a round-robin turn. */
export const BALANCER_READY_PATH = '/.berth-balancer/ready';

/** Options for `startBalancer`. */
export interface BalancerOptions {
  /** Upstream base URLs, `http://127.0.0.1:PORT` (no path); at least one. */
  upstreams: string[];
  /** Port on 127.0.0.1; a free one is picked when absent. */
  port?: number;
}

/** A running nginx balancer. Its files are in a temporary prefix directory that stop() removes. */
export interface RunningBalancer {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  url: string;
  port: number;
  configFile: string;
  /** nginx's error log (and its stderr). */
  logFile: string;
  /** One line per request: `METHOD URI STATUS upstream=ADDR[, ADDR…] upstream_status=…` (a retried request lists each upstream tried). */
  accessLogFile: string;
  /** Stops nginx (SIGTERM, workers included) and removes its prefix directory; safe to call twice. */
  stop(): Promise<void>;
}

function upstreamAddress(upstream: string): string {
  const url = new URL(upstream);
  if (url.protocol !== 'http:' || url.host === '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '') {
    throw new Error(`Balancer upstreams are http://HOST:PORT URLs without a path, got ${JSON.stringify(upstream)}`);
  }
  return url.port === '' ? `${url.hostname}:80` : url.host;
}

/**
 * Builds nginx.conf for a balancer on 127.0.0.1:`port` in front of `upstreams`, every path relative to
 * `prefix`: one worker (so round-robin alternates strictly), plain round-robin without stickiness,
 * unbuffered streaming both ways with no body size limit, HTTP/1.1 keep-alive to the upstreams, the
 * client's Host passed through, long timeouts, and nginx's default `proxy_next_upstream error timeout`
 * (a dead upstream makes idempotent requests try the next one; POST, PATCH and LOCK, and any request
 * whose unbuffered body has started, are never retried).
 */
export function balancerConfig(prefix: string, port: number, upstreams: readonly string[]): string {
  if (upstreams.length === 0) throw new Error('A balancer needs at least one upstream');
  const servers = upstreams.map((upstream) => `    server ${upstreamAddress(upstream)};`);
  return [
    'daemon off;',
    'worker_processes 1;',
    `pid ${join(prefix, 'nginx.pid')};`,
    `error_log ${join(prefix, 'error.log')} notice;`,
    'events {',
    '  worker_connections 1024;',
    '}',
    'http {',
    "  log_format berth '$request_method $request_uri $status upstream=$upstream_addr upstream_status=$upstream_status';",
    `  access_log ${join(prefix, 'access.log')} berth;`,
    // The compiled-in temp paths are under /var/lib/nginx.
    `  client_body_temp_path ${join(prefix, 'client-body')};`,
    `  proxy_temp_path ${join(prefix, 'proxy')};`,
    `  fastcgi_temp_path ${join(prefix, 'fastcgi')};`,
    `  uwsgi_temp_path ${join(prefix, 'uwsgi')};`,
    `  scgi_temp_path ${join(prefix, 'scgi')};`,
    '  upstream berth_replicas {',
    ...servers,
    '    keepalive 32;',
    '  }',
    '  server {',
    `    listen 127.0.0.1:${String(port)};`,
    '    client_max_body_size 0;',
    `    location = ${BALANCER_READY_PATH} {`,
    '      access_log off;',
    '      return 200 "ready\\n";',
    '    }',
    '    location / {',
    '      proxy_pass http://berth_replicas;',
    '      proxy_http_version 1.1;',
    // An empty Connection header lets nginx keep upstream connections alive.
    '      proxy_set_header Connection "";',
    '      proxy_set_header Host $http_host;',
    '      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '      proxy_set_header X-Forwarded-Proto $scheme;',
    '      proxy_request_buffering off;',
    '      proxy_buffering off;',
    '      proxy_next_upstream error timeout;',
    '      proxy_connect_timeout 10s;',
    '      proxy_send_timeout 600s;',
    '      proxy_read_timeout 600s;',
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** PIDs of the processes whose parent is `pid` (nginx's workers), read from /proc. */
async function childPids(pid: number): Promise<number[]> {
  const children: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // Field 4 is the parent PID; field 2 (comm) is in parentheses and may contain spaces.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) children.push(Number(entry));
  }
  return children;
}

/**
 * Starts `nginx -p PREFIX -e PREFIX/error.log -c PREFIX/nginx.conf` (config from `balancerConfig`, prefix a fresh
 * temporary directory) and resolves once it answers on 127.0.0.1; rejects (with the log's tail) if it exits or is
 * not ready within 15 s.
 */
export async function startBalancer(opts: BalancerOptions): Promise<RunningBalancer> {
  const binary = toolPath('nginx');
  // A port we picked may be taken between freePort() and bind: then try another one.
  const attempts = opts.port === undefined ? 3 : 1;
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = opts.port ?? (await freePort());
    try {
      return await startOnce(binary, port, opts.upstreams);
    } catch (err) {
      lastError = err as Error;
      if (!/address already in use/i.test(lastError.message)) break;
    }
  }
  throw lastError ?? new Error('nginx did not start');
}

async function startOnce(binary: string, port: number, upstreams: readonly string[]): Promise<RunningBalancer> {
  const prefix = await mkdtemp(join(tmpdir(), 'berth-nginx-'));
  // When nginx starts as root its workers run as nobody, and may need the temp paths in here.
  await chmod(prefix, 0o755);
  const configFile = join(prefix, 'nginx.conf');
  const logFile = join(prefix, 'error.log');
  const accessLogFile = join(prefix, 'access.log');
  await writeFile(configFile, balancerConfig(prefix, port, upstreams));
  const log = createWriteStream(logFile, { flags: 'a' });
  await once(log, 'open');
  // -e: the error log nginx uses before it has read its config (else its compiled-in one).
  const child = spawn(binary, ['-p', `${prefix}/`, '-e', logFile, '-c', configFile], { stdio: ['ignore', log, log] });
  // If this process exits without stop(), do not leave nginx running.
  const onExit = (): void => {
    child.kill('SIGTERM');
  };
  process.once('exit', onExit);
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  const url = `http://127.0.0.1:${String(port)}`;
  let stopped: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    stopped ??= (async () => {
      process.off('exit', onExit);
      if (child.exitCode === null && child.signalCode === null) {
        // SIGTERM is nginx's fast shutdown: the master stops its workers, then exits.
        child.kill('SIGTERM');
        if (!(await waitUntilExited(child, 10_000)) && child.pid !== undefined) {
          // Workers outlive a killed master and keep the port: kill them too.
          const workers = await childPids(child.pid);
          child.kill('SIGKILL');
          for (const worker of workers) {
            try {
              process.kill(worker, 'SIGKILL');
            } catch {
              // Already gone.
            }
          }
          await waitUntilExited(child, 5_000);
        }
      }
      log.close();
      await rm(prefix, { recursive: true, force: true });
    })();
    await stopped;
  };
  try {
    await waitUntil(
      async () => {
        if (spawnError) throw spawnError;
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`nginx exited (${String(child.exitCode ?? child.signalCode)}) before it was ready:\n${await tailFile(logFile)}`);
        }
        try {
          const res = await fetch(`${url}${BALANCER_READY_PATH}`, { signal: AbortSignal.timeout(2_000) });
          await res.body?.cancel();
          return res.status === 200;
        } catch {
          return false;
        }
      },
      { timeoutMs: 15_000, what: `nginx on ${url}`, describe: () => tailFile(logFile) },
    );
  } catch (err) {
    // The error names the log's tail; the prefix directory goes.
    await stop();
    throw err;
  }
  return { url, port, configFile, logFile, accessLogFile, stop };
}
