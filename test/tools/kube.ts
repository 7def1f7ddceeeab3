/**
 * A real Kubernetes control plane for the operator's integration tests, started as envtest starts it:
 * etcd and kube-apiserver (both built from their Go modules by install.sh) on free loopback ports, a test CA
 * that signs the serving certificate and an admin client certificate (organisation `system:masters`), RBAC
 * authorization, and ServiceAccount tokens from the TokenRequest API, so that an operator acting as its own
 * ServiceAccount is held to its RBAC rules. There are no controllers, scheduler or kubelet: objects are
 * stored and validated, never run.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ManagedProcess, runChecked } from './processes.js';
import { freePort, toolPath } from './tools.js';

/** The Service CIDR the API server allocates ClusterIPs from (its first address is the `kubernetes` Service). */
const SERVICE_CLUSTER_IP_RANGE = '10.0.0.0/24';

/** Issuer of ServiceAccount tokens (kubeadm's default); the API audience defaults to it. */
const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

/** Lifetime asked for in each TokenRequest: longer than any test run. */
const TOKEN_EXPIRATION_SECONDS = 24 * 60 * 60;

/** Options for `startKubeApiServer`. */
export interface KubeOptions {
  /** etcd's data directory (created if missing, kept by stop()); when absent, a temporary one that stop() removes. */
  dataDir?: string;
  /** More kube-apiserver flags, such as `--watch-cache=false`. */
  apiServerArgs?: readonly string[];
}

/** A ServiceAccount by namespace and name. */
export interface ServiceAccountRef {
  namespace: string;
  name: string;
}

/** Options for `RunningKube.kubectl` and `RunningKube.helm`. */
export interface KubeCommandOptions {
  /** Written to the command's stdin (for `apply -f -`). */
  input?: string;
  /** Kill the command after this long; default 120 s. */
  timeoutMs?: number;
}

/** A running etcd + kube-apiserver pair on loopback. */
export interface RunningKube {
  /** `https://127.0.0.1:PORT`, no trailing slash: the API server's URL. */
  server: string;
  port: number;
  /** PEM file of the test CA that signed the serving certificate (and the client certificates). */
  caCertFile: string;
  /** Path of a kubeconfig (context `berth-test`) whose client certificate is in group `system:masters`: allowed everything. */
  adminKubeconfig: string;
  /** etcd's data directory. */
  dataDir: string;
  /** `http://127.0.0.1:PORT`: etcd's client URL. */
  etcdEndpoint: string;
  /** etcd's output (removed by stop()). */
  etcdLogFile: string;
  /** kube-apiserver's output across restarts (removed by stop()). */
  apiServerLogFile: string;
  /**
   * Creates the namespace and the ServiceAccount if missing, asks the TokenRequest API for a token valid 24 h,
   * and resolves with the path of a kubeconfig that authenticates as `system:serviceaccount:NS:NAME` with it
   * (a new token and file content on each call; the file is removed by stop()).
   */
  kubeconfigFor(serviceAccount: ServiceAccountRef): Promise<string>;
  /** Runs `kubectl ARGS` with the admin kubeconfig and a private cache dir; resolves with stdout, rejects with stderr on a non-zero exit. */
  kubectl(args: readonly string[], opts?: KubeCommandOptions): Promise<string>;
  /** Runs `helm ARGS` with the admin kubeconfig and private cache, config and data dirs; resolves with stdout, rejects on a non-zero exit. */
  helm(args: readonly string[], opts?: KubeCommandOptions): Promise<string>;
  /** Stops kube-apiserver, then etcd (SIGTERM, then SIGKILL after a grace period), and removes the temporary files; safe to call twice. */
  stop(): Promise<void>;
  /** Stops kube-apiserver and starts it again on the same port with the same certificates, keys and etcd (kept running); resolves once it is ready. */
  restart(): Promise<void>;
}

/** Files of the test PKI, all in one directory. */
interface Pki {
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  /** The ServiceAccount token signing key (RSA private key; the API server derives the public key from it). */
  serviceAccountKey: string;
}

/** The caller's environment minus ETCD_* (etcd reads every ETCD_<FLAG> as a flag) and KUBECONFIG. */
function childEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('ETCD_') && key !== 'KUBECONFIG'));
}

/** `openssl ARGS`, rejecting with its stderr on failure. */
async function openssl(args: readonly string[]): Promise<void> {
  await runChecked(toolPath('openssl'), args, { env: childEnv() });
}

/** Writes DIR/NAME.key (P-256) and DIR/NAME.crt for `subject`, signed by `ca`, with the X.509 extensions in `extensions`. */
async function issueCertificate(dir: string, name: string, subject: string, extensions: string, ca: { cert: string; key: string }): Promise<void> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  await writeFile(ext, extensions);
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-noenc', '-keyout', key, '-out', csr, '-subj', subject]);
  await openssl([
    'x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key,
    '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', '3650', '-extfile', ext, '-out', join(dir, `${name}.crt`),
  ]);
  await rm(csr);
  await rm(ext);
}

/**
 * Makes a CA, the serving pair apiserver.crt/.key (127.0.0.1, localhost, the in-cluster names) where kube-apiserver's
 * --cert-dir looks for it, an admin client certificate and the ServiceAccount key.
 */
async function createPki(dir: string): Promise<Pki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  const serviceAccountKey = join(dir, 'service-account.key');
  await Promise.all([
    openssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-noenc', '-keyout', ca.key, '-out', ca.cert,
      '-days', '3650', '-subj', '/CN=berth-test-ca',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]),
    openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', serviceAccountKey]),
  ]);
  const leaf = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n';
  await Promise.all([
    issueCertificate(
      dir,
      'apiserver',
      '/CN=kube-apiserver',
      `${leaf}extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n`,
      ca,
    ),
    issueCertificate(dir, 'admin', '/O=system:masters/CN=berth-admin', `${leaf}extendedKeyUsage=clientAuth\n`, ca),
  ]);
  return {
    caCert: ca.cert,
    caKey: ca.key,
    servingCert: join(dir, 'apiserver.crt'),
    servingKey: join(dir, 'apiserver.key'),
    adminCert: join(dir, 'admin.crt'),
    adminKey: join(dir, 'admin.key'),
    serviceAccountKey,
  };
}

/** A kubeconfig with one cluster, one user and one context `berth-test`, as JSON (valid YAML). */
function kubeconfig(server: string, caCertFile: string, user: Record<string, string>): string {
  return `${JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'berth-test', cluster: { server, 'certificate-authority': caCertFile } }],
      users: [{ name: 'berth-test', user }],
      contexts: [{ name: 'berth-test', context: { cluster: 'berth-test', user: 'berth-test' } }],
      'current-context': 'berth-test',
    },
    null,
    2,
  )}\n`;
}

/** An HTTPS client of the API server authenticated by the admin client certificate. */
class AdminClient {
  constructor(
    private readonly server: string,
    private readonly tls: { ca: Buffer; cert: Buffer; key: Buffer },
  ) {}

  /** Sends one request; resolves with the status and body text (any status), rejects on a network error or after `timeoutMs`. */
  async send(method: string, path: string, body?: unknown, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return await new Promise((resolvePromise, reject) => {
      const req = request(
        new URL(path, this.server),
        {
          method,
          ...this.tls,
          agent: false,
          timeout: timeoutMs,
          headers: { accept: 'application/json', ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out after ${String(timeoutMs)} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Sends one request and resolves with the parsed JSON body when the status is one of `ok`; rejects otherwise. */
  async json(method: string, path: string, body: unknown, ok: readonly number[]): Promise<unknown> {
    const res = await this.send(method, path, body);
    if (!ok.includes(res.status)) throw new Error(`${method} ${path} answered ${String(res.status)}: ${res.body.slice(0, 1000)}`);
    return JSON.parse(res.body) as unknown;
  }
}

/** True when `err` says a port was taken (between freePort() and bind). */
function isAddressInUse(err: unknown): boolean {
  return err instanceof Error && /address already in use/i.test(err.message);
}

/** Starts `make(port)` on a free port, trying another one (up to three in all) when the chosen port was taken meanwhile. */
async function startOnFreePort<T extends { start(): Promise<void> }>(make: (port: number) => T | Promise<T>): Promise<[T, number]> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const server = await make(port);
    try {
      await server.start();
      return [server, port];
    } catch (err) {
      lastError = err;
      if (!isAddressInUse(err)) break;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

/** Opens `path` for appending and resolves once it is open. */
async function openLog(path: string): Promise<WriteStream> {
  const log = createWriteStream(path, { flags: 'a' });
  await once(log, 'open');
  return log;
}

/**
 * Starts etcd (its own data dir, client and peer URLs on free loopback ports, fsync off as in envtest) and
 * kube-apiserver on `https://127.0.0.1:PORT` with envtest's flags (DESIGN.md §5): RBAC, the ServiceAccount
 * admission plugin off, ServiceAccount tokens signed with a generated key, a generated CA for the serving and
 * client certificates. Resolves once `/readyz` answers 200 to the admin and namespace `default` exists;
 * rejects (with the log's tail) if either process exits or is not ready in time, having stopped both.
 */
export async function startKubeApiServer(opts: KubeOptions = {}): Promise<RunningKube> {
  const etcdBinary = toolPath('etcd');
  const apiServerBinary = toolPath('kube-apiserver');
  const kubectlBinary = toolPath('kubectl');
  const workDir = await mkdtemp(join(tmpdir(), 'berth-kube-'));
  const dataDir = opts.dataDir === undefined ? join(workDir, 'etcd') : resolve(opts.dataDir);
  const etcdLogFile = join(workDir, 'etcd.log');
  const apiServerLogFile = join(workDir, 'kube-apiserver.log');
  const logs: WriteStream[] = [];
  let etcd: ManagedProcess | undefined;
  let apiServer: ManagedProcess | undefined;
  const cleanUp = async (): Promise<void> => {
    await apiServer?.stop();
    await etcd?.stop();
    for (const log of logs) log.close();
    await rm(workDir, { recursive: true, force: true });
  };

  try {
    // etcd refuses a data dir that others can read.
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const pki = await createPki(join(workDir, 'pki'));

    const etcdLog = await openLog(etcdLogFile);
    logs.push(etcdLog);
    let etcdEndpoint = '';
    [etcd] = await startOnFreePort(async (clientPort) => {
      const peerUrl = `http://127.0.0.1:${String(await freePort())}`;
      etcdEndpoint = `http://127.0.0.1:${String(clientPort)}`;
      const endpoint = etcdEndpoint;
      const args = [
        '--name=default',
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${endpoint}`,
        `--advertise-client-urls=${endpoint}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=default=${peerUrl}`,
        '--unsafe-no-fsync=true',
      ];
      return new ManagedProcess({
        what: `etcd on ${endpoint}`,
        binary: etcdBinary,
        args: () => args,
        env: childEnv(),
        log: etcdLog,
        logFile: etcdLogFile,
        ready: async () => await etcdHealthy(endpoint),
        timeoutMs: 30_000,
        intervalMs: 200,
        stopGraceMs: 30_000,
      });
    });

    const apiServerLog = await openLog(apiServerLogFile);
    logs.push(apiServerLog);
    const tls = {
      ca: await readFile(pki.caCert),
      cert: await readFile(pki.adminCert),
      key: await readFile(pki.adminKey),
    };
    let admin: AdminClient | undefined;
    let port: number;
    [apiServer, port] = await startOnFreePort((securePort) => {
      const server = `https://127.0.0.1:${String(securePort)}`;
      const client = new AdminClient(server, tls);
      admin = client;
      const args = [
        `--etcd-servers=${etcdEndpoint}`,
        // As in envtest: the serving pair is apiserver.crt/.key in the cert dir, so no --tls-cert-file.
        `--cert-dir=${join(workDir, 'pki')}`,
        `--secure-port=${String(securePort)}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
        '--authorization-mode=RBAC',
        '--disable-admission-plugins=ServiceAccount',
        `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
        `--service-account-key-file=${pki.serviceAccountKey}`,
        `--service-account-signing-key-file=${pki.serviceAccountKey}`,
        `--client-ca-file=${pki.caCert}`,
        '--allow-privileged=true',
        ...(opts.apiServerArgs ?? []),
      ];
      return new ManagedProcess({
        what: `kube-apiserver on ${server}`,
        binary: apiServerBinary,
        args: () => args,
        env: childEnv(),
        log: apiServerLog,
        logFile: apiServerLogFile,
        ready: async () => await apiServerReady(client),
        timeoutMs: 120_000,
        intervalMs: 200,
        stopGraceMs: 30_000,
      });
    });
    if (admin === undefined) throw new Error('kube-apiserver started without a client');
    const adminClient = admin;
    const server = `https://127.0.0.1:${String(port)}`;
    const runningApiServer = apiServer;

    const adminKubeconfig = join(workDir, 'admin.kubeconfig');
    await writeFile(adminKubeconfig, kubeconfig(server, pki.caCert, { 'client-certificate': pki.adminCert, 'client-key': pki.adminKey }), { mode: 0o600 });
    const kubeconfigDir = join(workDir, 'kubeconfigs');
    await mkdir(kubeconfigDir, { mode: 0o700 });
    const kubectlCacheDir = join(workDir, 'kubectl-cache');
    const helmHome = join(workDir, 'helm');

    let stopped: Promise<void> | undefined;
    return {
      server,
      port,
      caCertFile: pki.caCert,
      adminKubeconfig,
      dataDir,
      etcdEndpoint,
      etcdLogFile,
      apiServerLogFile,
      kubeconfigFor: async ({ namespace, name }) => {
        await adminClient.json('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }, [201, 409]);
        await adminClient.json(
          'POST',
          `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts`,
          { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } },
          [201, 409],
        );
        const tokenRequest = (await adminClient.json(
          'POST',
          `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}/token`,
          { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: TOKEN_EXPIRATION_SECONDS } },
          [200, 201],
        )) as { status?: { token?: unknown } };
        const token = tokenRequest.status?.token;
        if (typeof token !== 'string' || token === '') throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
        const file = join(kubeconfigDir, `${namespace}.${name}.kubeconfig`);
        await writeFile(file, kubeconfig(server, pki.caCert, { token }), { mode: 0o600 });
        return file;
      },
      kubectl: async (args, commandOpts = {}) =>
        await runChecked(kubectlBinary, ['--kubeconfig', adminKubeconfig, '--cache-dir', kubectlCacheDir, ...args], {
          env: childEnv(),
          ...commandOpts,
        }),
      helm: async (args, commandOpts = {}) =>
        await runChecked(toolPath('helm'), ['--kubeconfig', adminKubeconfig, ...args], {
          env: {
            ...childEnv(),
            HELM_CACHE_HOME: join(helmHome, 'cache'),
            HELM_CONFIG_HOME: join(helmHome, 'config'),
            HELM_DATA_HOME: join(helmHome, 'data'),
          },
          ...commandOpts,
        }),
      stop: async () => {
        stopped ??= cleanUp();
        await stopped;
      },
      restart: async () => {
        if (stopped) throw new Error(`kube-apiserver on ${server} was stopped; start a new one`);
        await runningApiServer.stop();
        await runningApiServer.start();
      },
    };
  } catch (err) {
    await cleanUp();
    throw err;
  }
}

/** True when etcd's `/health` says it is healthy. */
async function etcdHealthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(2_000) });
    const body = (await res.json()) as { health?: unknown };
    return res.status === 200 && body.health === 'true';
  } catch {
    return false;
  }
}

/** True when `/readyz` answers 200 and namespace `default` exists (the API server creates it just after it is ready). */
async function apiServerReady(admin: AdminClient): Promise<boolean> {
  try {
    const readyz = await admin.send('GET', '/readyz', undefined, 5_000);
    if (readyz.status !== 200) return false;
    const defaultNamespace = await admin.send('GET', '/api/v1/namespaces/default', undefined, 5_000);
    return defaultNamespace.status === 200;
  } catch {
    return false;
  }
}
