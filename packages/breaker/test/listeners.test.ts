import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  BreakerTable,
  CircuitBreaker,
  type Clock,
  ConsecutiveFailures,
  type StateChangeListener,
} from '../src/index.js';

class FakeClock implements Clock {
  constructor(public t = 1_000_000) {}
  now(): number {
    return this.t;
  }
}

function trip(table: BreakerTable, slot = 0): void {
  table.onFailure(slot, table.tryAcquire(slot));
}

describe('BreakerTable listeners', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('calls the onStateChange option first, then every added listener in order', () => {
    const calls: string[] = [];
    const table = new BreakerTable({
      capacity: 1,
      clock: new FakeClock(),
      trip: new ConsecutiveFailures(1),
      onStateChange: () => calls.push('option'),
    });
    table.addListener(() => calls.push('first'));
    table.addListener((slot, from, to, reason) => calls.push(`${slot} ${from}->${to} ${reason}`));
    trip(table);
    expect(calls).toEqual(['option', 'first', '0 closed->open consecutive-failures']);
  });

  it('stops calling a listener once its unsubscribe function ran, and only that one', () => {
    const table = new BreakerTable({ capacity: 1, clock: new FakeClock() });
    const a: string[] = [];
    const b: string[] = [];
    const offA = table.addListener((_s, from, to) => a.push(`${from}->${to}`));
    table.addListener((_s, from, to) => b.push(`${from}->${to}`));
    for (let i = 0; i < 5; i++) trip(table);
    offA();
    offA(); // idempotent
    table.reset(0);
    expect(a).toEqual(['closed->open']);
    expect(b).toEqual(['closed->open', 'open->closed']);
  });

  it('treats the same function added twice as two registrations', () => {
    const table = new BreakerTable({ capacity: 1, clock: new FakeClock() });
    const seen: string[] = [];
    const listener: StateChangeListener = (_s, _f, to) => seen.push(to);
    const off = table.addListener(listener);
    table.addListener(listener);
    table.reset(0); // closed -> closed: no transition, nothing reported
    for (let i = 0; i < 5; i++) trip(table);
    expect(seen).toEqual(['open', 'open']);
    off();
    table.reset(0);
    expect(seen).toEqual(['open', 'open', 'closed']);
  });

  it('a listener that throws does not stop the others; its error is rethrown asynchronously', async () => {
    const boom = new Error('listener bug');
    const rethrown: unknown[] = [];
    vi.spyOn(globalThis, 'queueMicrotask').mockImplementation((callback) => {
      try {
        callback();
      } catch (error) {
        rethrown.push(error);
      }
    });
    const table = new BreakerTable({
      capacity: 1,
      clock: new FakeClock(),
      trip: new ConsecutiveFailures(1),
      onStateChange: () => {
        throw boom;
      },
    });
    const after: string[] = [];
    table.addListener(() => after.push('second'));
    expect(() => trip(table)).not.toThrow();
    expect(table.state(0)).toBe('open');
    expect(after).toEqual(['second']);
    expect(rethrown).toEqual([boom]);
  });

  it('a listener added or removed during a transition takes effect from the next one', () => {
    const table = new BreakerTable({ capacity: 1, clock: new FakeClock() });
    const seen: string[] = [];
    let offSelf = (): void => {};
    offSelf = table.addListener(() => {
      seen.push('self');
      offSelf();
      table.addListener(() => seen.push('late'));
    });
    table.addListener(() => seen.push('other'));
    for (let i = 0; i < 5; i++) trip(table);
    expect(seen).toEqual(['self', 'other']);
    table.reset(0);
    expect(seen).toEqual(['self', 'other', 'other', 'late']);
  });

  it('each thread view has its own listeners (a view reports the transitions it makes)', () => {
    const clock = new FakeClock();
    const owner = new BreakerTable({ capacity: 1, clock, trip: new ConsecutiveFailures(1) });
    const view = new BreakerTable({
      buffer: owner.buffer,
      clock,
      trip: new ConsecutiveFailures(1),
    });
    const ownerSeen: string[] = [];
    const viewSeen: string[] = [];
    owner.addListener((_s, _f, to) => ownerSeen.push(to));
    view.addListener((_s, _f, to) => viewSeen.push(to));
    trip(view);
    expect(viewSeen).toEqual(['open']);
    expect(ownerSeen).toEqual([]);
  });

  it('rejects a listener that is not a function, naming the field', () => {
    const table = new BreakerTable({ capacity: 1 });
    expect(() => table.addListener(42 as never)).toThrow(
      expect.objectContaining({ code: 'InvalidArgument', field: 'listener' }),
    );
    expect(() => new BreakerTable({ capacity: 1, onStateChange: 'log' as never })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument', field: 'onStateChange' }),
    );
  });

  it('has no mutable onStateChange slot any more', () => {
    const table = new BreakerTable({ capacity: 1, onStateChange: () => {} });
    expect('onStateChange' in table).toBe(false);
    expect('onStateChange' in new CircuitBreaker()).toBe(false);
  });
});

describe('CircuitBreaker listeners', () => {
  it('reports slot 0 to every listener until unsubscribed', async () => {
    const seen: string[] = [];
    const breaker = new CircuitBreaker({
      clock: new FakeClock(),
      trip: new ConsecutiveFailures(1),
      onStateChange: (slot, _f, to) => seen.push(`option ${slot} ${to}`),
    });
    const off = breaker.addListener((slot, _f, to) => seen.push(`added ${slot} ${to}`));
    await expect(breaker.execute(() => Promise.reject(new Error('down')))).rejects.toThrow('down');
    off();
    breaker.reset();
    expect(seen).toEqual(['option 0 open', 'added 0 open', 'option 0 closed']);
  });
});
