import { describe, expect, it } from 'vitest';
import {
  InvalidScheduleError,
  decideSchedule,
  jobNameFor,
  mostRecentScheduleTime,
  nextScheduleTime,
  type ScheduleInput,
} from '../../../operator/controllers/garbage-collection-schedule.js';

const t = (iso: string) => new Date(iso);
const iso = (date: Date | undefined) => date?.toISOString();

function decide(input: Partial<ScheduleInput> & { now: Date }) {
  const decision = decideSchedule({ schedule: '0 3 * * *', createdAt: t('2024-05-01T00:00:00Z'), lastScheduleTime: undefined, startingDeadlineSeconds: undefined, ...input });
  return { due: iso(decision.due), skipped: iso(decision.skipped), next: iso(decision.next) };
}

describe('GarbageCollection schedule arithmetic', () => {
  it.each([
    ['before the first time: nothing due, the next run today', { now: t('2024-05-01T02:59:59Z') }, { due: undefined, skipped: undefined, next: '2024-05-01T03:00:00.000Z' }],
    ['exactly at the time: due now', { now: t('2024-05-01T03:00:00Z') }, { due: '2024-05-01T03:00:00.000Z', skipped: undefined, next: '2024-05-02T03:00:00.000Z' }],
    ['a minute late: still due', { now: t('2024-05-01T03:01:00Z') }, { due: '2024-05-01T03:00:00.000Z', skipped: undefined, next: '2024-05-02T03:00:00.000Z' }],
    [
      'after the run was scheduled: nothing due until tomorrow',
      { now: t('2024-05-01T03:05:00Z'), lastScheduleTime: t('2024-05-01T03:00:00Z') },
      { due: undefined, skipped: undefined, next: '2024-05-02T03:00:00.000Z' },
    ],
    [
      'three runs missed (operator down): only the most recent is due, none is made up',
      { now: t('2024-05-04T04:00:00Z'), lastScheduleTime: t('2024-05-01T03:00:00Z') },
      { due: '2024-05-04T03:00:00.000Z', skipped: undefined, next: '2024-05-05T03:00:00.000Z' },
    ],
    [
      'within startingDeadlineSeconds: due',
      { now: t('2024-05-01T03:04:59Z'), startingDeadlineSeconds: 300 },
      { due: '2024-05-01T03:00:00.000Z', skipped: undefined, next: '2024-05-02T03:00:00.000Z' },
    ],
    [
      'past startingDeadlineSeconds: skipped, and the next run still comes',
      { now: t('2024-05-01T03:05:01Z'), startingDeadlineSeconds: 300 },
      { due: undefined, skipped: '2024-05-01T03:00:00.000Z', next: '2024-05-02T03:00:00.000Z' },
    ],
    [
      'missed runs, the latest past its deadline: skipped, never an older one',
      { now: t('2024-05-04T04:00:00Z'), lastScheduleTime: t('2024-05-01T03:00:00Z'), startingDeadlineSeconds: 60 },
      { due: undefined, skipped: '2024-05-04T03:00:00.000Z', next: '2024-05-05T03:00:00.000Z' },
    ],
    [
      'a time before the object was created is never due',
      { now: t('2024-05-01T03:30:00Z'), createdAt: t('2024-05-01T03:10:00Z') },
      { due: undefined, skipped: undefined, next: '2024-05-02T03:00:00.000Z' },
    ],
    ['cron day-of-week and ranges in UTC', { schedule: '30 1 * * 1-5', now: t('2024-05-04T12:00:00Z') /* Saturday */ }, { due: '2024-05-03T01:30:00.000Z', skipped: undefined, next: '2024-05-06T01:30:00.000Z' }],
  ])('%s', (_name, input, expected) => {
    expect(decide(input)).toEqual(expected);
  });

  it('runs once without a schedule: due at creation, never again once scheduled, skipped past its deadline', () => {
    const base = { schedule: undefined, createdAt: t('2024-05-01T00:00:00Z'), lastScheduleTime: undefined, startingDeadlineSeconds: undefined };
    expect(decideSchedule({ ...base, now: t('2024-05-01T00:00:01Z') })).toEqual({ due: t('2024-05-01T00:00:00Z') });
    expect(decideSchedule({ ...base, now: t('2024-06-01T00:00:00Z') })).toEqual({ due: t('2024-05-01T00:00:00Z') });
    expect(decideSchedule({ ...base, lastScheduleTime: t('2024-05-01T00:00:00Z'), now: t('2024-05-01T00:10:00Z') })).toEqual({});
    expect(decideSchedule({ ...base, startingDeadlineSeconds: 60, now: t('2024-05-01T00:01:01Z') })).toEqual({ skipped: t('2024-05-01T00:00:00Z') });
    expect(decideSchedule({ ...base, startingDeadlineSeconds: 60, now: t('2024-05-01T00:01:00Z') })).toEqual({ due: t('2024-05-01T00:00:00Z') });
  });

  it('finds the most recent and the next time around a boundary', () => {
    expect(iso(mostRecentScheduleTime('*/15 * * * *', t('2024-05-01T00:00:00Z'), t('2024-05-01T00:45:00Z')))).toBe('2024-05-01T00:45:00.000Z');
    expect(iso(mostRecentScheduleTime('*/15 * * * *', t('2024-05-01T00:45:00Z'), t('2024-05-01T00:59:59Z')))).toBeUndefined();
    expect(iso(nextScheduleTime('*/15 * * * *', t('2024-05-01T00:45:00Z')))).toBe('2024-05-01T01:00:00.000Z');
    expect(iso(nextScheduleTime('0 0 1 1 *', t('2024-05-01T00:00:00Z')))).toBe('2025-01-01T00:00:00.000Z');
  });

  it('rejects an expression the cron parser cannot read, with the reason', () => {
    expect(() => decideSchedule({ schedule: '99 * * * *', createdAt: t('2024-05-01T00:00:00Z'), lastScheduleTime: undefined, startingDeadlineSeconds: undefined, now: t('2024-05-02T00:00:00Z') })).toThrow(InvalidScheduleError);
    expect(() => nextScheduleTime('99 * * * *', t('2024-05-01T00:00:00Z'))).toThrow(/not a valid cron expression: .*0-59/);
  });

  it('names a run\'s Job after the minute it was scheduled for, like CronJob', () => {
    expect(jobNameFor('nightly', t('2024-05-01T03:00:00Z'))).toBe(`nightly-${Date.parse('2024-05-01T03:00:00Z') / 60_000}`);
    expect(jobNameFor('nightly', t('2024-05-01T03:00:59.999Z'))).toBe(jobNameFor('nightly', t('2024-05-01T03:00:00Z')));
  });
});
