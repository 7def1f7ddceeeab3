/**
 * Runs the OCI distribution-spec conformance suite (built by install.sh as `oci-conformance`) against a registry.
 *
 * The pinned suite is the redesigned one (configured by OCI_REGISTRY, OCI_REPO1, OCI_API_*, OCI_DATA_*;
 * the old OCI_ROOT_URL / OCI_TEST_* / OCI_HIDE_SKIPPED_WORKFLOWS variables are deprecated or ignored there).
 * It writes results.yaml, junit.xml and report.html into its results directory.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { toolPath } from './tools.js';

/** Options for `runConformance`. */
export interface ConformanceOptions {
  /** Registry base URL, `http://host:port` (plain HTTP) or `https://host:port`. */
  url: string;
  /** First repository the suite pushes to (OCI_REPO1). */
  namespace: string;
  /** Second repository, the target of cross-repository mounts (OCI_REPO2). */
  crossmountNamespace: string;
  /** Working and results directory (created if missing); junit.xml, report.html, results.yaml and output.txt land here. */
  workdir: string;
  /** Extra OCI_* settings, applied last (for example `{ OCI_VERSION: 'dev' }` or `{ OCI_API_BLOBS_UPLOAD_CANCEL: 'true' }`). */
  env?: Record<string, string>;
  /** Aborts the run (the suite is killed). */
  signal?: AbortSignal;
  /** Kill the suite after this long; default 15 minutes. */
  timeoutMs?: number;
}

/**
 * Test-case counts from junit.xml (skipped includes tests disabled by configuration), failing test names,
 * and the suite's console output. The suite's own console summary counts checks, several per test case,
 * so its numbers are larger than these.
 */
export interface ConformanceResult {
  passed: number;
  failed: number;
  skipped: number;
  /** Full names of failed test cases (junit `failure` or `error`), e.g. `OCI Conformance Test/sha512 blobs/post+put/blob-post-put`; a name repeats when the suite runs that check on several blobs. */
  failures: string[];
  /** The failed test cases, with their error text. */
  failedCases: JunitTestCase[];
  /** The suite's stdout and stderr, interleaved. */
  output: string;
  /** The suite's exit code (1 when any test failed). */
  exitCode: number | null;
  /** Path of the junit.xml that was parsed. */
  junitFile: string;
}

/** One `<testcase>` of the suite's junit.xml. */
export interface JunitTestCase {
  name: string;
  /** `passed`, `skipped`, `failure` or `error`. */
  status: string;
  /** The case's `<system-out>` text: the suite puts a failed test's errors there. */
  systemOut: string;
}

/** The settings that turn every workflow on: pull, push, content discovery (tags list, referrers), content management (deletes), cross-mount without `from`, sha512. */
export function conformanceEnv(opts: Pick<ConformanceOptions, 'url' | 'namespace' | 'crossmountNamespace' | 'workdir'>): Record<string, string> {
  const url = new URL(opts.url);
  return {
    OCI_REGISTRY: url.host,
    OCI_TLS: url.protocol === 'http:' ? 'disabled' : 'enabled',
    OCI_REPO1: opts.namespace,
    OCI_REPO2: opts.crossmountNamespace,
    OCI_RESULTS_DIR: resolve(opts.workdir),
    OCI_VERSION: '1.1',
    OCI_LOG: 'warn',
    OCI_API_PULL: 'true',
    OCI_API_PUSH: 'true',
    OCI_API_TAGS_LIST: 'true',
    OCI_API_REFERRER: 'true',
    OCI_API_TAGS_DELETE: 'true',
    OCI_API_MANIFESTS_DELETE: 'true',
    OCI_API_BLOBS_DELETE: 'true',
    OCI_API_BLOBS_MOUNT_ANONYMOUS: 'true',
    OCI_DATA_SHA512: 'true',
  };
}

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decodeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, entity: string) => {
    if (entity.startsWith('#x')) return String.fromCodePoint(Number.parseInt(entity.slice(2), 16));
    if (entity.startsWith('#')) return String.fromCodePoint(Number.parseInt(entity.slice(1), 10));
    return XML_ENTITIES[entity] ?? whole;
  });
}

/** Parses the `<testcase>` elements of the suite's junit.xml (the flat shape its encoder writes; not a general XML parser). */
export function parseJunit(xml: string): JunitTestCase[] {
  const cases: JunitTestCase[] = [];
  const testcase = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const match of xml.matchAll(testcase)) {
    const attrs: Record<string, string> = {};
    for (const attr of (match[1] ?? '').matchAll(/([\w:-]+)="([^"]*)"/g)) {
      attrs[attr[1] ?? ''] = decodeXml(attr[2] ?? '');
    }
    const body = match[3] ?? '';
    const out = /<system-out>([\s\S]*?)<\/system-out>/.exec(body);
    // The suite records the outcome in a status attribute; fall back to child elements for other junit writers.
    let status = attrs['status'];
    if (status === undefined) {
      status = /<failure\b/.test(body) ? 'failure' : /<error\b/.test(body) ? 'error' : /<skipped\b/.test(body) ? 'skipped' : 'passed';
    }
    cases.push({ name: attrs['name'] ?? '', status, systemOut: decodeXml(out?.[1] ?? '') });
  }
  return cases;
}

/**
 * Runs the conformance suite with every workflow on against `url` in `workdir` and resolves with the counts
 * and failing test names from its junit.xml; a failing registry is a result, not a rejection. Rejects when the
 * suite cannot run or writes no junit.xml (for example an unreachable registry or a bad setting), with its output.
 */
export async function runConformance(opts: ConformanceOptions): Promise<ConformanceResult> {
  const binary = toolPath('oci-conformance');
  const workdir = resolve(opts.workdir);
  await mkdir(workdir, { recursive: true });
  // Drop the caller's OCI_* variables (and OCI_CONFIGURATION): the suite would read them.
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('OCI_')));
  Object.assign(env, conformanceEnv({ ...opts, workdir }), opts.env);

  const junitFile = join(workdir, 'junit.xml');
  await rm(junitFile, { force: true });

  const chunks: Buffer[] = [];
  const exitCode = await new Promise<number | null>((resolvePromise, reject) => {
    const child = spawn(binary, [], {
      cwd: workdir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: opts.signal,
      timeout: opts.timeoutMs ?? 15 * 60_000,
    });
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (signal !== null) reject(new Error(`oci-conformance was killed by ${signal}:\n${Buffer.concat(chunks).toString('utf8')}`));
      else resolvePromise(code);
    });
  });
  const output = Buffer.concat(chunks).toString('utf8');
  await writeFile(join(workdir, 'output.txt'), output);

  let xml: string;
  try {
    xml = await readFile(junitFile, 'utf8');
  } catch {
    throw new Error(`oci-conformance (exit ${String(exitCode)}) wrote no ${junitFile}:\n${output}`);
  }
  const cases = parseJunit(xml);
  if (cases.length === 0) throw new Error(`No test cases in ${junitFile}:\n${output}`);
  const failedCases = cases.filter((c) => c.status === 'failure' || c.status === 'error');
  return {
    passed: cases.filter((c) => c.status === 'passed').length,
    failed: failedCases.length,
    skipped: cases.filter((c) => c.status === 'skipped').length,
    failures: failedCases.map((c) => c.name),
    failedCases,
    output,
    exitCode,
    junitFile,
  };
}
