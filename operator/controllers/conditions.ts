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
