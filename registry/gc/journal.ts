/**
 * A replica's write journal for one collection epoch, and the collector's reader of it.
 *
 * While a collection marks, every write that can make a blob or manifest reachable is recorded before it is
 * made, in batches (group commit: writes that arrive while a batch is being stored wait for the next one),
 * one object per batch, numbered from 1 without gaps. Blob existence checks are noted without waiting and
 * go out with the next batch. The collector reads every batch and marks what they name.
 */
import type { StorageDriver } from '../driver/driver.js';
import { PathNotFoundError } from '../driver/errors.js';
import { parseDigest } from '../storage/digest.js';
import { baseName, listIfPresent } from '../storage/links.js';
import { journalBatchPath, journalEpochRoot } from '../storage/paths.js';
import { readUntil, type VisibilityPolicy } from '../storage/visibility.js';
import type { JournalEntry, WriteJournal } from '../storage/write-journal.js';

/** What a replica reports of its journal in its heartbeat. */
export interface JournalState {
  readonly epoch: string;
  /** Batches stored so far for the epoch. */
  readonly batches: number;
}

type Waiter = { resolve(): void; reject(error: unknown): void };

/** How long one batch may take to store before it counts as failed. */
const BATCH_TIMEOUT_MS = 10_000;

/** How long after a failed batch the next one is tried. */
const RETRY_AFTER_FAILURE_MS = 100;

const encode = (entry: JournalEntry) => `${entry.kind === 'blob' ? 'b' : 'm'} ${entry.digest} ${entry.name}`;

/** The journal one replica writes; records nothing until `begin`. */
export class ReplicaJournal implements WriteJournal {
  private epoch: string | undefined;
  private batches = 0;
  private pending: { line: string; waiter?: Waiter }[] = [];
  private readonly observed = new Set<string>();
  /** The batch being stored; resolves to its error when it failed. */
  private flushing: Promise<unknown> | undefined;
  /** Batches begun so far (stored or not). */
  private attempts = 0;

  constructor(
    private readonly driver: StorageDriver,
    private readonly replicaId: string,
    /** Hears of every write recorded while no collection marks (by its request's signal): nothing is stored for it. */
    private readonly onUnjournaled?: (signal: AbortSignal) => void,
  ) {}

  /** The epoch being journaled and the batches stored, or undefined when no collection marks. */
  get state(): JournalState | undefined {
    return this.epoch === undefined ? undefined : { epoch: this.epoch, batches: this.batches };
  }

  /** Starts journaling for a collection epoch (a no-op for the epoch already journaled). */
  begin(epoch: string): void {
    if (this.epoch === epoch) return;
    this.epoch = epoch;
    this.batches = 0;
    this.observed.clear();
    // Writes still waiting for a batch of an earlier epoch (whose window this replica never saw close) are
    // journaled for this one: dropping them would leave those writes hanging, resolving them would let them
    // race this collection's mark unrecorded.
    this.schedule();
  }

  /** Stops journaling; writes waiting for a batch go ahead (nobody needs their record any more). */
  end(): void {
    this.epoch = undefined;
    for (const { waiter } of this.pending) waiter?.resolve();
    this.pending = [];
    this.observed.clear();
  }

  record(entry: JournalEntry, signal?: AbortSignal): Promise<void> {
    if (this.epoch === undefined) {
      if (signal !== undefined) this.onUnjournaled?.(signal);
      return Promise.resolve();
    }
    signal?.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      // A write stopped while it waits (a window's drain timeout, a client gone) fails at once; its line may
      // still be stored, which only keeps more.
      const onAbort = () => reject(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const release = () => signal?.removeEventListener('abort', onAbort);
      const waiter: Waiter = {
        resolve: () => {
          release();
          resolve();
        },
        reject: (error) => {
          release();
          reject(error);
        },
      };
      this.pending.push({ line: encode(entry), waiter });
      this.schedule();
    });
  }

  observe(entry: JournalEntry): void {
    if (this.epoch === undefined) return;
    const line = encode(entry);
    if (this.observed.has(line)) return;
    this.observed.add(line);
    this.pending.push({ line });
  }

  /**
   * Stores everything recorded or observed so far; resolves when it is durable, throws when a batch begun
   * for it fails (a batch that failed before the call only delays it: what it held is tried again).
   */
  async flush(): Promise<void> {
    const from = this.attempts + 1;
    for (;;) {
      this.schedule();
      const batch = this.flushing;
      if (batch === undefined) return;
      const attempt = this.attempts;
      const failure = await batch;
      if (failure !== undefined && attempt >= from) throw failure;
    }
  }

  /**
   * Starts storing a batch unless one is being stored; the next one follows when it is done. Every batch goes
   * through here, one at a time: two at once would take the same number, and the second would replace the first.
   */
  private schedule(): void {
    if (this.flushing !== undefined || this.pending.length === 0 || this.epoch === undefined) return;
    this.attempts++;
    const batch = this.storeBatch().then(async (failure) => {
      // After a failure, what arrived meanwhile is stored a moment later rather than at once (nor never).
      if (failure !== undefined) await new Promise((resolve) => setTimeout(resolve, RETRY_AFTER_FAILURE_MS).unref());
      return failure;
    });
    this.flushing = batch;
    void batch.then(() => {
      this.flushing = undefined;
      this.schedule();
    });
  }

  /** Stores what is pending as the next batch; returns the error when it could not. */
  private async storeBatch(): Promise<unknown> {
    const epoch = this.epoch;
    if (epoch === undefined) return undefined;
    const batch = this.pending;
    this.pending = [];
    const seq = this.batches + 1;
    try {
      // Bounded: every write waiting for this batch, and every later one, waits on it.
      await this.driver.putContent(journalBatchPath(epoch, this.replicaId, seq), Buffer.from(batch.map((item) => item.line).join('\n')), AbortSignal.timeout(BATCH_TIMEOUT_MS));
    } catch (error) {
      // The writes waiting for this batch fail (they were not made); observations go into the next one.
      for (const item of batch) {
        if (item.waiter !== undefined) item.waiter.reject(error);
        else if (this.epoch === epoch) this.pending.push(item);
      }
      return error;
    }
    if (this.epoch !== epoch) {
      // A new collection began while this batch was stored under the old one: journal it again for the new one.
      if (this.epoch !== undefined) {
        this.pending.unshift(...batch);
        return undefined;
      }
    } else {
      this.batches = seq;
    }
    for (const { waiter } of batch) waiter?.resolve();
    return undefined;
  }
}

/**
 * Reads every journal batch of an epoch. `expected` gives, per replica, the batches it reported storing:
 * those are waited for under `visibility`; batches beyond them (a replica that died before reporting) are
 * read until the first one missing. Replicas are found from `expected` and from the epoch's directory.
 */
export async function readJournals(
  driver: StorageDriver,
  epoch: string,
  expected: ReadonlyMap<string, number>,
  visibility: VisibilityPolicy,
): Promise<JournalEntry[]> {
  const replicas = new Set(expected.keys());
  for (const dir of await listIfPresent(driver, journalEpochRoot(epoch))) replicas.add(baseName(dir));
  const entries: JournalEntry[] = [];
  await Promise.all(
    [...replicas].map(async (replica) => {
      const reported = expected.get(replica) ?? 0;
      for (let seq = 1; ; seq++) {
        const read = () => driver.getContent(journalBatchPath(epoch, replica, seq)).then((bytes) => bytes, (error: unknown) => {
          if (error instanceof PathNotFoundError) return undefined;
          throw error;
        });
        const bytes = seq <= reported ? await readUntil(visibility, read, (found) => found !== undefined) : await read();
        if (bytes === undefined) {
          if (seq <= reported) throw new Error(`journal batch ${seq} of replica ${replica} is missing`);
          break;
        }
        for (const line of bytes.toString('utf8').split('\n')) entries.push(decode(line));
      }
    }),
  );
  return entries;
}

function decode(line: string): JournalEntry {
  const [kind, digest, ...name] = line.split(' ');
  if ((kind !== 'b' && kind !== 'm') || digest === undefined || name.length === 0) throw new Error(`malformed journal line: ${line.slice(0, 200)}`);
  return { kind: kind === 'b' ? 'blob' : 'manifest', digest: parseDigest(digest), name: name.join(' ') };
}
