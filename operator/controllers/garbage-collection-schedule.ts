/**
 * When a GarbageCollection runs: the schedule arithmetic of Kubernetes' CronJob controller, in UTC, for a
 * five-field cron expression, or once when there is no schedule. Pure: the clock is passed in.
 */
import { CronExpressionParser } from 'cron-parser';

/** What the schedule arithmetic needs to know. */
export interface ScheduleInput {
  /** The cron expression; undefined means run once, at `createdAt`. */
  readonly schedule: string | undefined;
  /** When the GarbageCollection was created: runs before it are never due. */
  readonly createdAt: Date;
  /** When the last run was scheduled (status.lastScheduleTime), if any run was. */
  readonly lastScheduleTime: Date | undefined;
  /** A run that cannot start within this many seconds of its time is skipped. */
  readonly startingDeadlineSeconds: number | undefined;
  readonly now: Date;
}

/** What to do now. */
export interface ScheduleDecision {
  /** The scheduled time of the run to start now; when several were missed, only the most recent. */
  readonly due?: Date;
  /** The most recent scheduled time that passed its starting deadline without a run: it is skipped. */
  readonly skipped?: Date;
  /** When the next run after now is due; undefined without a schedule. */
  readonly next?: Date;
}

/** The cron expression could not be parsed. */
export class InvalidScheduleError extends Error {
  constructor(schedule: string, cause: unknown) {
    super(`schedule "${schedule}" is not a valid cron expression: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'InvalidScheduleError';
  }
}

/** Parses a five-field expression in UTC from `currentDate`; throws InvalidScheduleError. */
function parse(schedule: string, currentDate: Date) {
  try {
    return CronExpressionParser.parse(schedule, { currentDate, tz: 'UTC' });
  } catch (error) {
    throw new InvalidScheduleError(schedule, error);
  }
}

/** The latest scheduled time `t` with `after < t <= now`, or undefined when there is none. */
export function mostRecentScheduleTime(schedule: string, after: Date, now: Date): Date | undefined {
  // prev() is strictly before its start; starting 1 ms after now includes a time exactly at now.
  const candidate = parse(schedule, new Date(now.getTime() + 1)).prev().toDate();
  return candidate.getTime() > after.getTime() ? candidate : undefined;
}

/** The first scheduled time strictly after `now`. */
export function nextScheduleTime(schedule: string, now: Date): Date {
  return parse(schedule, now).next().toDate();
}

/**
 * Decides, as the CronJob controller does, whether a run is due now: the most recent scheduled time since the
 * last run (or since creation), if it is still within `startingDeadlineSeconds`; runs missed in between are
 * not made up. A scheduled time whose deadline passed is reported as skipped. Without a schedule, the one run
 * is due at creation and never again once it was scheduled. Throws InvalidScheduleError.
 */
export function decideSchedule(input: ScheduleInput): ScheduleDecision {
  const { schedule, createdAt, lastScheduleTime, startingDeadlineSeconds, now } = input;
  const deadlineMs = startingDeadlineSeconds === undefined ? undefined : startingDeadlineSeconds * 1000;
  const tooLate = (time: Date) => deadlineMs !== undefined && time.getTime() + deadlineMs < now.getTime();

  if (schedule === undefined) {
    if (lastScheduleTime !== undefined) return {};
    return tooLate(createdAt) ? { skipped: createdAt } : { due: createdAt };
  }

  const next = nextScheduleTime(schedule, now);
  const mostRecent = mostRecentScheduleTime(schedule, lastScheduleTime ?? createdAt, now);
  if (mostRecent === undefined) return { next };
  if (tooLate(mostRecent)) return { skipped: mostRecent, next };
  return { due: mostRecent, next };
}

/**
 * The name of the Job of the run scheduled at `time`: `<name>-<minutes since the epoch>`, as CronJob names
 * its Jobs, so that a run's Job has one name however often its creation is attempted.
 */
export function jobNameFor(garbageCollectionName: string, time: Date): string {
  return `${garbageCollectionName}-${Math.floor(time.getTime() / 60_000)}`;
}
