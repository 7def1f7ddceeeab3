/**
 * Conditions in the metav1.Condition shape: Available, Progressing and Degraded, with PascalCase reasons.
 * Pure: the clock is passed in.
 */

/** One condition. */
export interface Condition {
  type: 'Available' | 'Progressing' | 'Degraded';
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

/**
 * Merges new conditions into the previous ones: a condition whose status did not change keeps its
 * lastTransitionTime, so the time says when it last changed, not when it was last computed.
 */
export function mergeConditions(previous: readonly Condition[] | undefined, next: readonly Omit<Condition, 'lastTransitionTime'>[], now: Date): Condition[] {
  return next.map((condition) => {
    const before = previous?.find((p) => p.type === condition.type);
    const lastTransitionTime = before !== undefined && before.status === condition.status ? before.lastTransitionTime : now.toISOString();
    return { ...condition, lastTransitionTime };
  });
}

/** What the registry's Deployment reports. */
export interface DeploymentState {
  readonly desired: number;
  readonly ready: number;
  readonly updated: number;
  readonly available: number;
  readonly observedGeneration: number;
  readonly generation: number;
}

/** The conditions of a Registry, from its Deployment's state, or from a problem that stops it being built. */
export function registryConditions(
  state: DeploymentState | undefined,
  generation: number,
  problem?: { reason: string; message: string },
): Omit<Condition, 'lastTransitionTime'>[] {
  const observedGeneration = generation;
  if (problem !== undefined) {
    return [
      { type: 'Available', status: state !== undefined && state.available > 0 ? 'True' : 'False', observedGeneration, reason: problem.reason, message: problem.message },
      { type: 'Progressing', status: 'False', observedGeneration, reason: problem.reason, message: problem.message },
      { type: 'Degraded', status: 'True', observedGeneration, reason: problem.reason, message: problem.message },
    ];
  }
  if (state === undefined) {
    return [
      { type: 'Available', status: 'False', observedGeneration, reason: 'Creating', message: 'The registry Deployment is being created.' },
      { type: 'Progressing', status: 'True', observedGeneration, reason: 'Creating', message: 'The registry Deployment is being created.' },
      { type: 'Degraded', status: 'False', observedGeneration, reason: 'AsExpected', message: 'No problems found.' },
    ];
  }
  const rolledOut = state.observedGeneration >= state.generation && state.updated >= state.desired && state.ready >= state.desired;
  const available = state.desired === 0 ? rolledOut : state.available > 0;
  return [
    {
      type: 'Available',
      status: available ? 'True' : 'False',
      observedGeneration,
      reason: available ? 'MinimumReplicasAvailable' : 'NoReplicasAvailable',
      message: `${state.available} of ${state.desired} registry pods are available.`,
    },
    {
      type: 'Progressing',
      status: rolledOut ? 'False' : 'True',
      observedGeneration,
      reason: rolledOut ? 'RolloutComplete' : 'RollingOut',
      message: rolledOut ? 'Every registry pod runs the current configuration.' : `${state.updated} of ${state.desired} pods updated, ${state.ready} ready.`,
    },
    {
      type: 'Degraded',
      status: 'False',
      observedGeneration,
      reason: 'AsExpected',
      message: 'No problems found.',
    },
  ];
}

/** What a GarbageCollection's conditions are computed from. */
export interface GarbageCollectionState {
  /** The Registry named by spec.registryRef exists. */
  readonly registryFound: boolean;
  readonly registryName: string;
  /** Why the schedule cannot be read, when it cannot. */
  readonly invalidSchedule?: string;
  readonly suspended: boolean;
  /** A run-once collection whose one run was scheduled. */
  readonly ranOnce: boolean;
  /** This collection's Job running now. */
  readonly active?: string;
  /** Another collection's Job running now against the same Registry, which a due run waits for. */
  readonly waitingFor?: { readonly job: string; readonly garbageCollection: string };
  /** The last finished run failed, with why. */
  readonly lastRunFailed?: { readonly job: string; readonly message: string };
  /** A scheduled time that passed its starting deadline without a run. */
  readonly skipped?: Date;
  readonly startingDeadlineSeconds?: number;
  readonly next?: Date;
}

/**
 * The conditions of a GarbageCollection. Available: runs can start (the Registry exists, the schedule reads,
 * not suspended). Progressing: a run is active, or a due run waits for another run on the same Registry.
 * Degraded: the Registry is missing, the schedule is invalid, the last run failed, or a run was skipped.
 */
export function garbageCollectionConditions(state: GarbageCollectionState, generation: number): Omit<Condition, 'lastTransitionTime'>[] {
  const observedGeneration = generation;
  const problem = !state.registryFound
    ? { reason: 'RegistryNotFound', message: `Registry ${state.registryName} named by spec.registryRef does not exist in this namespace.` }
    : state.invalidSchedule !== undefined
      ? { reason: 'InvalidSchedule', message: state.invalidSchedule }
      : undefined;
  const available =
    problem !== undefined
      ? { status: 'False' as const, ...problem }
      : state.suspended
        ? { status: 'False' as const, reason: 'Suspended', message: 'spec.suspend is set: no new run starts.' }
        : state.ranOnce
          ? { status: 'True' as const, reason: 'RanOnce', message: 'The one run of this collection (it has no schedule) was started.' }
          : { status: 'True' as const, reason: 'Scheduled', message: state.next !== undefined ? `The next run is due at ${state.next.toISOString()}.` : 'A run is due now.' };
  const progressing =
    state.active !== undefined
      ? { status: 'True' as const, reason: 'JobRunning', message: `Job ${state.active} is collecting garbage.` }
      : state.waitingFor !== undefined
        ? {
            status: 'True' as const,
            reason: 'WaitingForRegistry',
            message: `A run is due and waits for Job ${state.waitingFor.job} of GarbageCollection ${state.waitingFor.garbageCollection}: runs against one Registry never overlap.`,
          }
        : { status: 'False' as const, reason: 'Idle', message: 'No run is in progress.' };
  const degraded =
    problem !== undefined
      ? { status: 'True' as const, ...problem }
      : state.lastRunFailed !== undefined
        ? { status: 'True' as const, reason: 'LastRunFailed', message: `Job ${state.lastRunFailed.job} failed: ${state.lastRunFailed.message}` }
        : state.skipped !== undefined
          ? {
              status: 'True' as const,
              reason: 'MissedStartingDeadline',
              message: `The run due at ${state.skipped.toISOString()} could not start within startingDeadlineSeconds (${state.startingDeadlineSeconds ?? 0}) and was skipped.`,
            }
          : { status: 'False' as const, reason: 'AsExpected', message: 'No problems found.' };
  return [
    { type: 'Available', observedGeneration, ...available },
    { type: 'Progressing', observedGeneration, ...progressing },
    { type: 'Degraded', observedGeneration, ...degraded },
  ];
}
