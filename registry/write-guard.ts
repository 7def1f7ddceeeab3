/**
 * The registry's write policy at run time: read-write, or read-only (`storage.maintenance.readonly`).
 */
import type { WriteGuard } from './api/context.js';
import { UnsupportedError } from './storage/errors.js';

/** A write guard that can be switched between read-write and read-only while the registry runs. */
export class SwitchableWriteGuard implements WriteGuard {
  constructor(private readOnly: boolean) {}

  /** Switches read-only mode on or off. */
  setReadOnly(readOnly: boolean): void {
    this.readOnly = readOnly;
  }

  /** True while writes are refused. */
  get isReadOnly(): boolean {
    return this.readOnly;
  }

  assertWritable(): void {
    if (this.readOnly) throw new UnsupportedError('the registry is in read-only mode (storage.maintenance.readonly)');
  }
}
