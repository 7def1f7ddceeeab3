/**
 * Leader election on a coordination.k8s.io Lease, as client-go does it: the holder renews the Lease every
 * `retryPeriodMs`; another candidate takes it over only once `leaseDurationSeconds` have passed since
 * the last renewal; every write carries the Lease's resourceVersion, so two candidates never both win.
 */
import { KubeApiError, type KubeClient, type KubeObject } from '../kube/client.js';

/** A Lease as the election reads it. */
interface Lease extends KubeObject {
  readonly metadata: { readonly name: string; readonly namespace: string; readonly resourceVersion?: string };
  readonly spec?: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** Settings of an election. */
export interface ElectionOptions {
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationSeconds?: number;
  readonly retryPeriodMs?: number;
  readonly now?: () => Date;
}

/** Campaigns for a Lease; `onStarted` runs when this candidate leads, `onStopped` when it loses the lead. */
export class LeaderElection {
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private lastRenew = 0;
  private stopped = false;
  private readonly duration: number;
  private readonly retry: number;
  private readonly now: () => Date;

  constructor(
    private readonly kube: KubeClient,
    private readonly options: ElectionOptions,
    private readonly callbacks: { onStarted(): void; onStopped(): void },
  ) {
    this.duration = options.leaseDurationSeconds ?? 15;
    this.retry = options.retryPeriodMs ?? 2_000;
    this.now = options.now ?? (() => new Date());
  }

  /** True while this candidate holds the Lease. */
  get isLeader(): boolean {
    return this.leading;
  }

  /** Starts campaigning. */
  start(): void {
    void this.tick();
  }

  /** Stops campaigning and, when leading, releases the Lease so another candidate takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    const lease = await this.kube.get<Lease>('coordination.k8s.io/v1', 'Lease', this.options.namespace, this.options.name).catch(() => undefined);
    if (lease?.spec?.holderIdentity === this.options.identity) {
      await this.kube
        .replace({ ...lease, spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1 } })
        .catch(() => undefined);
    }
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      const acquired = await this.tryAcquireOrRenew();
      if (acquired) {
        this.lastRenew = Date.now();
        if (!this.leading) {
          this.leading = true;
          this.callbacks.onStarted();
        }
      }
    } catch {
      // An unreachable API server is handled below, by the renew deadline.
    }
    if (this.leading && Date.now() - this.lastRenew > this.duration * 1000) {
      this.leading = false;
      this.callbacks.onStopped();
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.retry);
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.options;
    const now = this.now().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
    const lease = await this.kube.get<Lease>('coordination.k8s.io/v1', 'Lease', namespace, name);
    if (lease === undefined) {
      try {
        await this.kube.create({
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: this.duration, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        });
        return true;
      } catch (error) {
        if (error instanceof KubeApiError && error.status === 409) return false;
        throw error;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const renewed = spec.renewTime ? Date.parse(spec.renewTime) : 0;
    const expired = renewed + (spec.leaseDurationSeconds ?? this.duration) * 1000 < this.now().getTime();
    if (holder !== identity && holder !== '' && !expired) return false;
    const takingOver = holder !== identity;
    try {
      await this.kube.replace({
        ...lease,
        spec: {
          ...spec,
          holderIdentity: identity,
          leaseDurationSeconds: this.duration,
          renewTime: now,
          ...(takingOver ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
        },
      });
      return true;
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 409) return false;
      throw error;
    }
  }
}
