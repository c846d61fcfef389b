import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AbortedError,
  type Clock,
  Deadline,
  DeadlineExceededError,
  systemClock,
} from '../src/index.js';

class FakeClock implements Clock {
  constructor(public t = 1_000) {}
  now(): number {
    return this.t;
  }
}

describe('Deadline', () => {
  it('remaining, expired and within follow the clock', () => {
    const clock = new FakeClock();
    const d = Deadline.after(500, clock);
    expect(d.at).toBe(1_500);
    expect(d.remaining()).toBe(500);
    expect(d.within(100).at).toBe(1_100);
    expect(d.within(1_000)).toBe(d);
    clock.t = 1_499;
    expect(d.expired()).toBe(false);
    clock.t = 1_600;
    expect(d.remaining()).toBe(0);
    expect(d.expired()).toBe(true);
    expect(() => d.throwIfExpired(2)).toThrow(DeadlineExceededError);
    expect(Deadline.never(clock).remaining()).toBe(Number.POSITIVE_INFINITY);
  });

  it('converts to a grpc-js deadline in epoch ms', () => {
    const clock = new FakeClock();
    const fake = Deadline.after(2_000, clock);
    const before = Date.now();
    const grpc = fake.toGrpcDeadline();
    expect(grpc).toBeGreaterThanOrEqual(before + 2_000);
    expect(grpc).toBeLessThanOrEqual(Date.now() + 2_000);
    expect(Deadline.never().toGrpcDeadline()).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('systemClock is monotonic', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('neither expires nor stretches a deadline when the wall clock steps', () => {
    const d = Deadline.after(60_000);
    const before = systemClock.now();
    vi.spyOn(Date, 'now').mockReturnValue(Date.now() + 3_600_000); // wall clock +1 h
    expect(systemClock.now()).toBeLessThan(before + 60_000);
    expect(d.expired()).toBe(false);
    vi.spyOn(Date, 'now').mockReturnValue(0); // wall clock back to 1970
    expect(systemClock.now()).toBeGreaterThanOrEqual(before);
    expect(d.remaining()).toBeLessThanOrEqual(60_000);
    expect(d.remaining()).toBeGreaterThan(0);
  });

  it('reads performance.timeOrigin + performance.now()', () => {
    vi.spyOn(performance, 'now').mockReturnValue(1_234.5);
    expect(systemClock.now()).toBe(performance.timeOrigin + 1_234.5);
  });

  it('a system-clock deadline converts to grpc-js epoch ms through the wall clock', () => {
    const d = Deadline.after(2_000);
    const wall = Date.now() + 3_600_000;
    vi.spyOn(Date, 'now').mockReturnValue(wall);
    const grpc = d.toGrpcDeadline();
    expect(grpc).toBeGreaterThan(wall);
    expect(grpc).toBeLessThanOrEqual(wall + 2_000);
  });
});

describe('Deadline.sleep on fake timers', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 10_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('resolves after ms when the deadline is further away', async () => {
    const d = Deadline.after(1_000);
    let done = false;
    const p = d.sleep(300).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(299);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await p;
    expect(done).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('never ends past the deadline: rejects at the deadline with DeadlineExceeded', async () => {
    const d = Deadline.after(1_000);
    const controller = new AbortController();
    const p = d.sleep(5_000, controller.signal);
    const outcome = p.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(1_000);
    const error = await outcome;
    expect((error as DeadlineExceededError).code).toBe('DeadlineExceeded');
    expect(Date.now()).toBe(11_000);
    expect(vi.getTimerCount()).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('rejects at once with Aborted when the signal aborts mid-sleep, leaving nothing behind', async () => {
    const d = Deadline.after(10_000);
    const controller = new AbortController();
    const outcome = d.sleep(5_000, controller.signal).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(100);
    controller.abort(new Error('client went away'));
    const error = await outcome;
    expect(error).toBeInstanceOf(AbortedError);
    expect((error as AbortedError).code).toBe('Aborted');
    expect(((error as AbortedError).cause as Error).message).toBe('client went away');
    expect(vi.getTimerCount()).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('rejects immediately for an already aborted signal or a passed deadline', async () => {
    const d = Deadline.after(0);
    await expect(d.sleep(10)).rejects.toMatchObject({ code: 'DeadlineExceeded' });
    const later = Deadline.after(100);
    await expect(later.sleep(10, AbortSignal.abort())).rejects.toMatchObject({ code: 'Aborted' });
    expect(vi.getTimerCount()).toBe(0);
  });
});
