import { describe, expect, it } from 'vitest';
import { SHUTDOWN_PHASE, Shutdown, type ShutdownSteps } from '../src/internal/shutdown.js';
import { FakeTime } from './fake-time.js';

/** Steps that record when each ran (fake ms) and hold `close` until released. */
function recordingSteps(time: FakeTime) {
  const log: string[] = [];
  let release: (left: number) => void = () => {};
  const steps: ShutdownSteps = {
    notServing: () => log.push(`notServing@${time.now()}`),
    close: (graceMs) => {
      log.push(`close(${graceMs})@${time.now()}`);
      return new Promise((resolve) => {
        release = resolve;
      });
    },
  };
  return { log, steps, release: (left: number) => release(left) };
}

describe('Shutdown phases', () => {
  it('goes NOT_SERVING at once, keeps serving for drainMs, then closes with the grace period', async () => {
    const time = new FakeTime();
    const { log, steps, release } = recordingSteps(time);
    const shutdown = new Shutdown(steps, time);
    expect(shutdown.phase).toBe(SHUTDOWN_PHASE.Serving);
    expect(shutdown.draining).toBe(false);

    const done = shutdown.run({ drainMs: 5000, graceMs: 10_000 });
    expect(log).toEqual(['notServing@0']);
    expect(shutdown.phase).toBe(SHUTDOWN_PHASE.Draining);
    expect(shutdown.draining).toBe(true);

    await time.advance(4999);
    expect(log).toEqual(['notServing@0']);
    expect(shutdown.phase).toBe(SHUTDOWN_PHASE.Draining);

    await time.advance(1);
    expect(log).toEqual(['notServing@0', 'close(10000)@5000']);
    expect(shutdown.phase).toBe(SHUTDOWN_PHASE.Closing);
    expect(shutdown.draining).toBe(true);

    release(3);
    expect(await done).toBe(3);
    expect(shutdown.phase).toBe(SHUTDOWN_PHASE.Closed);
    expect(time.pending).toBe(0);
  });

  it('with drainMs 0 closes at once (no drain window, no timer)', async () => {
    const time = new FakeTime();
    const { log, steps, release } = recordingSteps(time);
    const shutdown = new Shutdown(steps, time);
    const done = shutdown.run({ drainMs: 0, graceMs: 250 });
    await time.advance(0);
    expect(log).toEqual(['notServing@0', 'close(250)@0']);
    expect(time.pending).toBe(0);
    release(0);
    expect(await done).toBe(0);
  });

  it('a second run joins the first: each step runs once', async () => {
    const time = new FakeTime();
    const { log, steps, release } = recordingSteps(time);
    const shutdown = new Shutdown(steps, time);
    const first = shutdown.run({ drainMs: 1000, graceMs: 100 });
    const second = shutdown.run({ drainMs: 1000, graceMs: 100 });
    await time.advance(1000);
    release(1);
    expect(await Promise.all([first, second])).toEqual([1, 1]);
    expect(log).toEqual(['notServing@0', 'close(100)@1000']);
  });

  it('a run with drainMs 0 during the window ends the window now (a failed start stops at once)', async () => {
    const time = new FakeTime();
    const { log, steps, release } = recordingSteps(time);
    const shutdown = new Shutdown(steps, time);
    const first = shutdown.run({ drainMs: 60_000, graceMs: 100 });
    await time.advance(10);
    const now = shutdown.run({ drainMs: 0, graceMs: 100 });
    await time.advance(0);
    expect(log).toEqual(['notServing@0', 'close(100)@10']);
    expect(time.pending).toBe(0);
    release(0);
    await Promise.all([first, now]);
    expect(shutdown.phase).toBe(SHUTDOWN_PHASE.Closed);
  });
});
