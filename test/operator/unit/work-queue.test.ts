import { describe, expect, it } from 'vitest';
import { WorkQueue, type QueueClock } from '../../../operator/runtime/work-queue.js';

/** A clock whose time only moves when the test says. */
function manualClock(): QueueClock & { advance(ms: number): void } {
  let now = 0;
  const timers: { at: number; fn: () => void }[] = [];
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      timers.push({ at: now + ms, fn });
      return undefined;
    },
    advance(ms: number) {
      now += ms;
      for (const timer of timers.filter((t) => t.at <= now)) {
        timers.splice(timers.indexOf(timer), 1);
        timer.fn();
      }
    },
  };
}

describe('the work queue', () => {
  it('hands out a key added many times only once', async () => {
    const queue = new WorkQueue();
    for (let i = 0; i < 5; i++) queue.add('ns/a');
    queue.add('ns/b');
    expect(queue.length).toBe(2);
    expect(await queue.get()).toBe('ns/a');
    expect(await queue.get()).toBe('ns/b');
    expect(queue.length).toBe(0);
  });

  it('never hands out a key being processed, and queues it again when done if it was added meanwhile', async () => {
    const queue = new WorkQueue();
    queue.add('k');
    const key = await queue.get();
    queue.add('k');
    expect(queue.length).toBe(0);
    queue.done(key as string);
    expect(queue.length).toBe(1);
    expect(await queue.get()).toBe('k');
  });

  it('wakes a waiting worker when a key arrives', async () => {
    const queue = new WorkQueue();
    const next = queue.get();
    queue.add('late');
    expect(await next).toBe('late');
  });

  it('backs off failed keys exponentially up to a cap, and forgets after success', () => {
    const clock = manualClock();
    const queue = new WorkQueue({ baseMs: 10, maxMs: 100 }, clock);
    expect([0, 1, 2, 3, 4, 5].map((n) => queue.delayFor(n))).toEqual([10, 20, 40, 80, 100, 100]);
    queue.addRateLimited('k');
    expect(queue.length).toBe(0);
    clock.advance(9);
    expect(queue.length).toBe(0);
    clock.advance(1);
    expect(queue.length).toBe(1);
    queue.addRateLimited('other');
    expect(queue.failuresOf('k')).toBe(1);
    queue.forget('k');
    expect(queue.failuresOf('k')).toBe(0);
    expect(queue.retries).toBe(2);
  });

  it('queues a key after a delay (RequeueAfter)', () => {
    const clock = manualClock();
    const queue = new WorkQueue(undefined, clock);
    queue.addAfter('k', 1000);
    clock.advance(999);
    expect(queue.length).toBe(0);
    clock.advance(1);
    expect(queue.length).toBe(1);
  });

  it('releases waiting workers with undefined on shut down', async () => {
    const queue = new WorkQueue();
    const waiting = queue.get();
    queue.shutDown();
    expect(await waiting).toBeUndefined();
    queue.add('ignored');
    expect(queue.length).toBe(0);
  });
});
