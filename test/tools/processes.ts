/**
 * Small process helpers shared by the tools that start real peers (dockerd, Distribution, MinIO, etcd and
 * kube-apiserver, the conformance suite).
 */
import { execFile, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { WriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** Result of a finished command: its exit code (null when killed by a signal) and its decoded output. */
export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Options for `runCommand`. */
export interface RunCommandOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  signal?: AbortSignal;
  /** Kill the command after this long; default 120 s. */
  timeoutMs?: number;
  /** Written to the command's stdin, which is then closed; when absent, stdin is a pipe that stays open and empty. */
  input?: string;
}

/** Runs `file args` to completion and resolves with its exit code and output; never rejects on a non-zero exit (the caller decides). */
export async function runCommand(file: string, args: readonly string[], opts: RunCommandOptions = {}): Promise<CommandResult> {
  return await new Promise<CommandResult>((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        signal: opts.signal,
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err && typeof err.code === 'string') {
          // Spawn failure or abort (ENOENT, ABORT_ERR), not an exit status.
          reject(new Error(`Cannot run ${file}: ${err.message}`, { cause: err }));
          return;
        }
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
      },
    );
    if (opts.input !== undefined) {
      // A command that exits before reading its input closes the pipe: that EPIPE is not our failure.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(opts.input);
    }
  });
}

/** Runs `file args` and resolves with its stdout; rejects with the command line, exit code and stderr when it exits non-zero. */
export async function runChecked(file: string, args: readonly string[], opts: RunCommandOptions = {}): Promise<string> {
  const result = await runCommand(file, args, opts);
  if (result.code !== 0) {
    throw new Error(`Command failed (exit ${String(result.code)}): ${[file, ...args].join(' ')}\n${result.stderr || result.stdout}`);
  }
  return result.stdout;
}

/** Resolves true when `child` has exited (now or within `timeoutMs`), false on time-out. */
export async function waitUntilExited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** Stops `child`: SIGTERM, then SIGKILL if it has not exited after `graceMs`; resolves once it has exited. */
export async function stopProcess(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (await waitUntilExited(child, graceMs)) return;
  child.kill('SIGKILL');
  await waitUntilExited(child, 5_000);
}

/** Polls `probe` every `intervalMs` until it resolves true; throws (with `describe()`'s text) after `timeoutMs` or when `probe` throws. */
export async function waitUntil(
  probe: () => Promise<boolean>,
  opts: { timeoutMs: number; intervalMs?: number; what: string; describe?: () => Promise<string> },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) {
      const detail = opts.describe ? `\n${await opts.describe()}` : '';
      throw new Error(`Timed out after ${String(opts.timeoutMs)} ms waiting for ${opts.what}${detail}`);
    }
    await sleep(opts.intervalMs ?? 100);
  }
}

/** The last `lines` lines of a text file, or a note when it cannot be read (for error messages). */
export async function tailFile(path: string, lines = 30): Promise<string> {
  try {
    const text = await readFile(path, 'utf8');
    return text.split('\n').slice(-lines - 1).join('\n');
  } catch (err) {
    return `(cannot read ${path}: ${(err as Error).message})`;
  }
}

/**
 * Spawns a long-running peer that is killed if this process exits without stopping it, and remembers a
 * spawn failure (`spawnError()`) for the readiness loop to report.
 */
export function spawnPeer(file: string, args: readonly string[], env: NodeJS.ProcessEnv, stdio: StdioOptions): { child: ChildProcess; spawnError(): Error | undefined } {
  const child = spawn(file, args, { env, stdio });
  const onExit = (): void => {
    child.kill('SIGTERM');
  };
  process.once('exit', onExit);
  child.once('exit', () => {
    process.off('exit', onExit);
  });
  let error: Error | undefined;
  child.once('error', (err) => {
    error = err;
  });
  return { child, spawnError: () => error };
}

/** Settings of a `ManagedProcess`. */
export interface ManagedProcessOptions {
  /** Names the process in errors, e.g. `etcd on http://127.0.0.1:2379`. */
  readonly what: string;
  readonly binary: string;
  /** The arguments, worked out again at every start (a restart may need a fresh port). */
  readonly args: () => readonly string[] | Promise<readonly string[]>;
  readonly env: NodeJS.ProcessEnv;
  /** Where stdout and stderr go, and the file behind it, whose tail explains a failed start. */
  readonly log: WriteStream;
  readonly logFile: string;
  /** Resolves true once the process serves. */
  readonly ready: () => Promise<boolean>;
  readonly timeoutMs: number;
  readonly intervalMs?: number;
  /** How long SIGTERM is given before SIGKILL. */
  readonly stopGraceMs: number;
}

/** One long-running server process that can be started again after it stops or is killed. */
export class ManagedProcess {
  private child: ChildProcess | undefined;

  constructor(private readonly options: ManagedProcessOptions) {}

  /** Spawns the process and resolves once `ready()` is true; rejects (with the log's tail) if it exits first or times out, and then stops it. */
  async start(): Promise<void> {
    const { what, logFile } = this.options;
    if (this.child) throw new Error(`${what} is already running`);
    const { child, spawnError } = spawnPeer(this.options.binary, await this.options.args(), this.options.env, ['ignore', this.options.log, this.options.log]);
    this.child = child;
    try {
      await waitUntil(
        async () => {
          const failed = spawnError();
          if (failed) throw failed;
          if (child.exitCode !== null || child.signalCode !== null) {
            throw new Error(`${what} exited (${String(child.exitCode ?? child.signalCode)}) before it was ready:\n${await tailFile(logFile)}`);
          }
          return await this.options.ready();
        },
        { timeoutMs: this.options.timeoutMs, intervalMs: this.options.intervalMs ?? 100, what, describe: () => tailFile(logFile) },
      );
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** SIGTERM, then SIGKILL after the grace period; resolves once it has exited. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    await stopProcess(child, this.options.stopGraceMs);
    this.child = undefined;
  }

  /** SIGKILL (no clean shutdown); resolves once it has exited. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await waitUntilExited(child, 10_000);
    }
    this.child = undefined;
  }
}
