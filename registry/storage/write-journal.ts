/**
 * The storage layer's hook into garbage collection's write journal: while a collection marks, every write
 * that can make a blob or manifest reachable is recorded before it is made, so the collector can mark it too.
 */
import type { Digest } from './digest.js';

/** One journaled reference: a blob linked into a repository, or a manifest stored or tagged in it. */
export interface JournalEntry {
  readonly kind: 'blob' | 'manifest';
  readonly name: string;
  readonly digest: Digest;
}

/** Where the storage services report writes (and blob existence checks) while a collection marks. */
export interface WriteJournal {
  /** Records a write about to be made; resolves once the record is durable (at once when no collection marks). */
  record(entry: JournalEntry, signal?: AbortSignal): Promise<void>;
  /** Notes that a client saw a blob exist (it may skip the upload and reference it later); never waits. */
  observe(entry: JournalEntry): void;
}

/** The journal of a registry that no collection watches. */
export const NO_JOURNAL: WriteJournal = {
  record: () => Promise.resolve(),
  observe: () => undefined,
};
