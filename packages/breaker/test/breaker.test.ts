import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ADMITTED,
  BREAKER_DEFAULTS,
  type BreakerOptions,
  BreakerTable,
  CircuitBreaker,
  type Clock,
  ConsecutiveFailures,
  FailureRate,
  isCircuitBreakerOpenError,
  isProbe,
  LayoutMismatchError,
  REJECTED,
  systemClock,
  type TripRule,
} from '../src/index.js';

class FakeClock implements Clock {
  constructor(public t = 1_000_000) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

type Event = [number, string, string, string];

/** ConsecutiveFailures that runs `hook.fire` (once) when its words are reset. */
class HookedConsecutiveFailures implements TripRule {
  readonly #inner: ConsecutiveFailures;
  readonly name: string;
  readonly key: string;
  readonly words: number;
  constructor(
    threshold: number,
    readonly hook: { fire: (() => void) | undefined },
  ) {
    this.#inner = new ConsecutiveFailures(threshold);
    this.name = this.#inner.name;
    this.key = this.#inner.key;
    this.words = this.#inner.words;
  }
  reset(mem: Int32Array, base: number): void {
    fireOnce(this.hook);
    this.#inner.reset(mem, base);
  }
  onSuccess(mem: Int32Array, base: number): void {
    this.#inner.onSuccess(mem, base);
  }
  onFailure(mem: Int32Array, base: number): boolean {
    return this.#inner.onFailure(mem, base);
  }
}

function fireOnce(hook: { fire: (() => void) | undefined }): void {
  const fire = hook.fire;
  hook.fire = undefined;
  fire?.();
}

function setup(options: BreakerOptions = {}, capacity = 2) {
  const clock = new FakeClock();
  const events: Event[] = [];
  const table = new BreakerTable({
    capacity,
    clock,
    onStateChange: (slot, from, to, reason) => events.push([slot, from, to, reason]),
    ...options,
  });
  const fail = (slot = 0, n = 1) => {
    for (let i = 0; i < n; i++) table.onFailure(slot, table.tryAcquire(slot));
  };
  return { clock, events, table, fail };
}

describe('BreakerTable state machine', () => {
  it('counts each transition once per slot, into its target state, and a reset keeps them', () => {
    const { table, clock, fail } = setup();
    expect(table.transitionsOf(0)).toEqual({ open: 0, halfOpen: 0, closed: 0 });
    fail(0, 5); // closed -> open
    fail(0, 3); // rejected while open: no transition
    clock.advance(30_000);
    table.onFailure(0, table.tryAcquire(0)); // open -> half-open -> open
    clock.advance(30_000);
    table.onSuccess(0, table.tryAcquire(0)); // open -> half-open -> closed
    expect(table.transitionsOf(0)).toEqual({ open: 2, halfOpen: 2, closed: 1 });
    expect(table.transitionsOf(1)).toEqual({ open: 0, halfOpen: 0, closed: 0 });
    fail(0, 5);
    table.reset(0); // open -> closed (reset)
    table.reset(0); // already closed: no transition
    expect(table.transitionsOf(0)).toEqual({ open: 3, halfOpen: 2, closed: 2 });
    // A view over the same buffer reads the same counts.
    const view = new BreakerTable({ buffer: table.buffer, clock });
    expect(view.transitionsOf(0)).toEqual({ open: 3, halfOpen: 2, closed: 2 });
  });

  it('a CircuitBreaker counts its transitions too', () => {
    const clock = new FakeClock();
    const b = new CircuitBreaker({ clock, trip: new ConsecutiveFailures(1) });
    b.onFailure(b.tryAcquire());
    expect(b.transitions()).toEqual({ open: 1, halfOpen: 0, closed: 0 });
  });

  it('opens after exactly five consecutive failures by default', () => {
    const { table, events, fail } = setup();
    fail(0, 4);
    expect(table.state(0)).toBe('closed');
    expect(table.tryAcquire(0)).toBe(ADMITTED);
    fail(0, 1);
    expect(table.state(0)).toBe('open');
    expect(events).toEqual([[0, 'closed', 'open', 'consecutive-failures']]);
    expect(table.tryAcquire(0)).toBe(REJECTED);
    expect(table.state(1)).toBe('closed');
  });

  it('a success resets the consecutive-failure count', () => {
    const { table, fail } = setup();
    fail(0, 4);
    table.onSuccess(0, table.tryAcquire(0));
    fail(0, 4);
    expect(table.state(0)).toBe('closed');
    fail(0, 1);
    expect(table.state(0)).toBe('open');
  });

  it('stays open until the open timeout, then admits a probe and goes half-open', () => {
    const { table, clock, events, fail } = setup();
    fail(0, 5);
    clock.advance(BREAKER_DEFAULTS.openTimeoutMs - 1);
    expect(table.tryAcquire(0)).toBe(REJECTED);
    expect(table.snapshotOf(0).remainingOpenMs).toBe(1);
    clock.advance(1);
    const probe = table.tryAcquire(0);
    expect(isProbe(probe)).toBe(true);
    expect(table.state(0)).toBe('half-open');
    expect(events.at(-1)).toEqual([0, 'open', 'half-open', 'open-timeout-elapsed']);
    expect(table.tryAcquire(0)).toBe(REJECTED);
  });

  it('closes after a successful probe', () => {
    const { table, clock, events, fail } = setup();
    fail(0, 5);
    clock.advance(30_000);
    const probe = table.tryAcquire(0);
    table.onSuccess(0, probe);
    expect(table.state(0)).toBe('closed');
    expect(events.at(-1)).toEqual([0, 'half-open', 'closed', 'probes-succeeded']);
    expect(table.tryAcquire(0)).toBe(ADMITTED);
    // Counters start afresh after closing.
    fail(0, 4);
    expect(table.state(0)).toBe('closed');
  });

  it('reopens after a failed probe, for the plain timeout when growth is off', () => {
    const { table, clock, events, fail } = setup();
    fail(0, 5);
    clock.advance(30_000);
    table.onFailure(0, table.tryAcquire(0));
    expect(table.state(0)).toBe('open');
    expect(events.at(-1)).toEqual([0, 'half-open', 'open', 'probe-failed']);
    clock.advance(29_999);
    expect(table.tryAcquire(0)).toBe(REJECTED);
    clock.advance(1);
    expect(isProbe(table.tryAcquire(0))).toBe(true);
  });

  it('grows the open timeout on each failed probe up to the cap, and resets it on close', () => {
    const { table, clock, fail } = setup({
      openTimeoutMs: 1_000,
      maxOpenTimeoutMs: 3_000,
      openTimeoutMultiplier: 2,
    });
    fail(0, 5);
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      waits.push(table.snapshotOf(0).remainingOpenMs);
      clock.advance(waits[i]!);
      table.onFailure(0, table.tryAcquire(0));
    }
    expect(waits).toEqual([1_000, 2_000, 3_000, 3_000]);
    clock.advance(3_000);
    table.onSuccess(0, table.tryAcquire(0));
    fail(0, 5);
    expect(table.snapshotOf(0).remainingOpenMs).toBe(1_000);
  });

  it('admits exactly halfOpenProbes probes and closes only when all succeed', () => {
    const { table, clock, fail } = setup({ halfOpenProbes: 3 });
    fail(0, 5);
    clock.advance(30_000);
    const admissions = Array.from({ length: 10 }, () => table.tryAcquire(0));
    const probes = admissions.filter(isProbe);
    expect(probes).toHaveLength(3);
    expect(new Set(probes).size).toBe(3);
    table.onSuccess(0, probes[0]!);
    table.onSuccess(0, probes[1]!);
    expect(table.state(0)).toBe('half-open');
    expect(table.snapshotOf(0)).toMatchObject({ probesInFlight: 1, probesSucceeded: 2 });
    // A permit consumed by a success is not handed out again.
    expect(table.tryAcquire(0)).toBe(REJECTED);
    table.onSuccess(0, probes[2]!);
    expect(table.state(0)).toBe('closed');
  });

  it('gives the permit of a hung probe back after probeTimeoutMs and ignores its late verdict', () => {
    const { table, clock, fail } = setup({ probeTimeoutMs: 5_000 });
    fail(0, 5);
    clock.advance(30_000);
    const hung = table.tryAcquire(0);
    expect(isProbe(hung)).toBe(true);
    clock.advance(4_999);
    expect(table.tryAcquire(0)).toBe(REJECTED);
    clock.advance(1);
    const second = table.tryAcquire(0);
    expect(isProbe(second)).toBe(true);
    expect(second).not.toBe(hung);
    table.onFailure(0, hung); // stale: its permit was reclaimed
    expect(table.state(0)).toBe('half-open');
    table.onSuccess(0, second);
    expect(table.state(0)).toBe('closed');
  });

  it('release gives a probe permit back at once', () => {
    const { table, clock, fail } = setup();
    fail(0, 5);
    clock.advance(30_000);
    const probe = table.tryAcquire(0);
    expect(table.tryAcquire(0)).toBe(REJECTED);
    table.release(0, probe);
    expect(table.state(0)).toBe('half-open');
    const next = table.tryAcquire(0);
    expect(isProbe(next)).toBe(true);
    table.onSuccess(0, probe); // released: no longer counts
    expect(table.state(0)).toBe('half-open');
  });

  it('ignores verdicts of calls admitted before the breaker opened', () => {
    const { table, fail } = setup();
    const late = table.tryAcquire(0);
    fail(0, 5);
    table.onSuccess(0, late);
    table.onFailure(0, late);
    expect(table.state(0)).toBe('open');
    table.onSuccess(0, REJECTED);
    expect(table.state(0)).toBe('open');
  });

  it('ignores a probe verdict from an earlier half-open period', () => {
    const { table, clock, fail } = setup();
    fail(0, 5);
    clock.advance(30_000);
    const first = table.tryAcquire(0);
    table.onFailure(0, first);
    clock.advance(30_000);
    const second = table.tryAcquire(0);
    expect(isProbe(second)).toBe(true);
    table.onFailure(0, first); // already used, from the previous period
    expect(table.state(0)).toBe('half-open');
    table.onSuccess(0, second);
    expect(table.state(0)).toBe('closed');
  });

  it('reset closes the breaker and reports it', () => {
    const { table, events, fail } = setup();
    fail(0, 5);
    table.reset(0);
    expect(table.state(0)).toBe('closed');
    expect(events.at(-1)).toEqual([0, 'open', 'closed', 'reset']);
    fail(0, 4);
    expect(table.state(0)).toBe('closed');
  });

  it('recovered: an open breaker goes half-open at once and its probe decides; a closed one forgets its failures', () => {
    const { table, events, fail } = setup();
    fail(0, 5);
    expect(table.state(0)).toBe('open');
    table.recovered(0); // long before the 30 s open timeout
    expect(table.state(0)).toBe('half-open');
    expect(events.at(-1)).toEqual([0, 'open', 'half-open', 'recovered']);
    const probe = table.tryAcquire(0);
    expect(isProbe(probe)).toBe(true);
    expect(table.tryAcquire(0)).toBe(REJECTED); // one probe at a time (halfOpenProbes 1)
    table.recovered(0); // half-open: left to its probe
    expect(table.state(0)).toBe('half-open');
    table.onSuccess(0, probe);
    expect(table.state(0)).toBe('closed');
    fail(0, 4);
    table.recovered(0); // closed: the 4 failures are forgotten
    expect(table.state(0)).toBe('closed');
    fail(0, 4);
    expect(table.state(0)).toBe('closed');
    fail(0, 1);
    expect(table.state(0)).toBe('open');
  });

  it('recovered: a probe that fails reopens the breaker', () => {
    const { table, fail } = setup();
    fail(0, 5);
    table.recovered(0);
    table.onFailure(0, table.tryAcquire(0));
    expect(table.state(0)).toBe('open');
  });

  it('goes half-open when asked long after the 30-bit time wrapped (~12.4 days)', () => {
    const { table, clock, fail } = setup();
    fail(0, 5);
    clock.advance(2 ** 30 - 10_000); // wraps to 10 s before the open deadline
    expect(isProbe(table.tryAcquire(0))).toBe(true);
  });

  it('snapshot reports every slot', () => {
    const { table, fail } = setup({}, 3);
    fail(1, 5);
    expect(table.snapshot().map((s) => [s.slot, s.state, s.openStreak])).toEqual([
      [0, 'closed', 0],
      [1, 'open', 1],
      [2, 'closed', 0],
    ]);
  });
});

describe('closing races between threads (two views over one buffer)', () => {
  const THRESHOLD = 3;

  it('a thread that loses the closing CAS does not wipe failures counted after the close', () => {
    const clock = new FakeClock();
    // The interference runs in view A right after A saw every permit done, at the first
    // thing A does next: resetting the rules (before its CAS, as the racy version did) or
    // reading the clock for its closing word (the fixed version, before its CAS).
    const hook: { fire: (() => void) | undefined } = { fire: undefined };
    const hookedClock = {
      now: () => {
        fireOnce(hook);
        return clock.now();
      },
    };
    const options = { halfOpenProbes: 2, openTimeoutMs: 1_000 };
    const aEvents: Event[] = [];
    const a = new BreakerTable({
      capacity: 1,
      clock: hookedClock,
      trip: new HookedConsecutiveFailures(THRESHOLD, hook),
      onStateChange: (...e) => aEvents.push(e),
      ...options,
    });
    const b = new BreakerTable({
      buffer: a.buffer,
      clock,
      trip: new ConsecutiveFailures(THRESHOLD),
      ...options,
    });
    const failB = () => b.onFailure(0, b.tryAcquire(0));
    for (let i = 0; i < THRESHOLD; i++) failB();
    expect(a.state(0)).toBe('open');
    clock.advance(1_000);
    const pa = a.tryAcquire(0);
    const pb = b.tryAcquire(0);
    expect([isProbe(pa), isProbe(pb)]).toEqual([true, true]);
    b.onSuccess(0, pb);
    expect(a.state(0)).toBe('half-open');
    hook.fire = () => {
      // Another thread closes first (here B's reset; a second prober's close is the same
      // CAS) and THRESHOLD - 1 failures are counted in the new closed period.
      b.reset(0);
      for (let i = 0; i < THRESHOLD - 1; i++) failB();
      expect(b.state(0)).toBe('closed');
    };
    a.onSuccess(0, pa);
    expect(hook.fire).toBeUndefined(); // the interference did run inside A's close
    expect(aEvents.filter(([, , to]) => to === 'closed')).toEqual([]); // A lost the CAS
    // Those failures must still count: one more opens the breaker.
    failB();
    expect(b.state(0)).toBe('open');
  });

  it('a failure counted between the closing CAS and the rule reset cannot trip on old counts', () => {
    const clock = new FakeClock();
    const hook: { fire: (() => void) | undefined } = { fire: undefined };
    const a = new BreakerTable({
      capacity: 1,
      clock,
      trip: new HookedConsecutiveFailures(THRESHOLD, hook),
      openTimeoutMs: 1_000,
    });
    const b = new BreakerTable({
      buffer: a.buffer,
      clock,
      trip: new ConsecutiveFailures(THRESHOLD),
      openTimeoutMs: 1_000,
    });
    for (let i = 0; i < THRESHOLD; i++) a.onFailure(0, a.tryAcquire(0));
    expect(a.state(0)).toBe('open');
    clock.advance(1_000);
    const probe = a.tryAcquire(0);
    hook.fire = () => {
      // Whatever the reset runs next to, a single failure must not reopen the breaker.
      b.onFailure(0, b.tryAcquire(0));
      expect(b.state(0)).not.toBe('open');
    };
    a.onSuccess(0, probe);
    expect(hook.fire).toBeUndefined();
    expect(a.state(0)).toBe('closed');
    for (let i = 0; i < THRESHOLD - 1; i++) b.onFailure(0, b.tryAcquire(0));
    expect(a.state(0)).toBe('closed');
  });
});

describe('default clock', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('an open period neither ends early nor stretches when the wall clock steps', () => {
    const table = new BreakerTable({ capacity: 1, openTimeoutMs: 60_000 });
    for (let i = 0; i < 5; i++) table.onFailure(0, table.tryAcquire(0));
    expect(table.state(0)).toBe('open');
    const wall = Date.now();
    vi.spyOn(Date, 'now').mockReturnValue(wall + 3_600_000); // wall clock +1 h
    expect(table.tryAcquire(0)).toBe(REJECTED);
    vi.spyOn(Date, 'now').mockReturnValue(wall - 3_600_000); // wall clock -1 h
    const { remainingOpenMs } = table.snapshotOf(0);
    expect(remainingOpenMs).toBeGreaterThan(0);
    expect(remainingOpenMs).toBeLessThanOrEqual(60_000);
  });

  it('is performance.timeOrigin + performance.now()', () => {
    vi.spyOn(performance, 'now').mockReturnValue(1_234.5);
    expect(systemClock.now()).toBe(performance.timeOrigin + 1_234.5);
  });
});

describe('FailureRate rule', () => {
  const rate = () => new FailureRate({ threshold: 0.5, windowSize: 10, minimumCalls: 6 });

  it('does not trip before minimumCalls calls, however many fail', () => {
    const { table, fail } = setup({ trip: rate() });
    fail(0, 5);
    expect(table.state(0)).toBe('closed');
    fail(0, 1);
    expect(table.state(0)).toBe('open');
  });

  it('trips when the failure share of the window reaches the threshold', () => {
    const { table, events, fail } = setup({ trip: rate() });
    for (let i = 0; i < 6; i++) table.onSuccess(0, table.tryAcquire(0));
    fail(0, 5); // 5 of 11 calls, window of 10 holds 5 failures of 10 → 50 %
    expect(table.state(0)).toBe('open');
    expect(events).toEqual([[0, 'closed', 'open', 'failure-rate']]);
  });

  it('stays closed below the threshold', () => {
    const { table, fail } = setup({ trip: rate() });
    for (let i = 0; i < 20; i++) {
      table.onSuccess(0, table.tryAcquire(0));
      table.onSuccess(0, table.tryAcquire(0));
      fail(0, 1);
    }
    expect(table.state(0)).toBe('closed');
  });

  it('combines with ConsecutiveFailures: whichever trips first', () => {
    const { table, events, fail } = setup({ trip: [new ConsecutiveFailures(3), rate()] });
    fail(0, 3);
    expect(events).toEqual([[0, 'closed', 'open', 'consecutive-failures']]);
    expect(table.state(0)).toBe('open');
  });
});

describe('options and sharing', () => {
  it('rejects bad options with a RangeError naming the field and value', () => {
    expect(() => new BreakerTable({ capacity: 0 })).toThrow(/capacity.*received 0/);
    expect(() => new BreakerTable({ capacity: 1, halfOpenProbes: 0 })).toThrow(
      /halfOpenProbes.*received 0/,
    );
    expect(() => new BreakerTable({ capacity: 1, openTimeoutMs: -1 })).toThrow(
      /openTimeoutMs.*received -1/,
    );
    expect(() => new BreakerTable({ capacity: 1, openTimeoutMs: 10, maxOpenTimeoutMs: 5 })).toThrow(
      /maxOpenTimeoutMs.*received 5/,
    );
    expect(() => new ConsecutiveFailures(0)).toThrow(RangeError);
    expect(() => new FailureRate({ minimumCalls: 50 })).toThrow(/minimumCalls.*received 50/);
    const table = new BreakerTable({ capacity: 2 });
    expect(() => table.tryAcquire(2)).toThrow(RangeError);
    expect(() => table.tryAcquire(-1)).toThrow(RangeError);
  });

  it('a view over the same buffer sees and makes the same transitions', () => {
    const { table, clock, fail } = setup();
    const view = new BreakerTable({ buffer: table.buffer, clock });
    expect(view.capacity).toBe(2);
    fail(0, 5);
    expect(view.state(0)).toBe('open');
    clock.advance(30_000);
    const probe = view.tryAcquire(0);
    expect(table.tryAcquire(0)).toBe(REJECTED);
    view.onSuccess(0, probe);
    expect(table.state(0)).toBe('closed');
  });

  it('a thread whose clock read predates the half-open transition cannot make k+1 probes', () => {
    const lead = new FakeClock(1_000_005);
    const lag = new FakeClock(1_000_000);
    const x = new BreakerTable({ capacity: 1, clock: lead, halfOpenProbes: 2 });
    const y = new BreakerTable({ buffer: x.buffer, clock: lag, halfOpenProbes: 2 });
    for (let i = 0; i < 5; i++) y.onFailure(0, y.tryAcquire(0)); // open until 1_030_000
    lead.advance(30_000);
    lag.advance(30_000);
    expect(isProbe(x.tryAcquire(0))).toBe(true); // half-open since 1_030_005
    expect(isProbe(y.tryAcquire(0))).toBe(true); // y still reads 1_030_000
    expect(x.tryAcquire(0)).toBe(REJECTED);
    expect(y.tryAcquire(0)).toBe(REJECTED);
  });

  it('refuses to attach with different rules or probes', () => {
    const table = new BreakerTable({ capacity: 1 });
    let error: unknown;
    try {
      new BreakerTable({ buffer: table.buffer, trip: new ConsecutiveFailures(3) });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(LayoutMismatchError);
    expect((error as LayoutMismatchError).code).toBe('LayoutMismatch');
    expect(() => new BreakerTable({ buffer: table.buffer, halfOpenProbes: 2 })).toThrow(
      LayoutMismatchError,
    );
  });
});

describe('CircuitBreaker (one thread)', () => {
  it('runs the same state machine and reports slot 0', async () => {
    const clock = new FakeClock();
    const events: Event[] = [];
    const breaker = new CircuitBreaker({ clock, trip: new ConsecutiveFailures(2) });
    breaker.addListener((...e) => events.push(e));
    const boom = () => Promise.reject(new Error('boom'));
    await expect(breaker.execute(boom)).rejects.toThrow('boom');
    await expect(breaker.execute(boom)).rejects.toThrow('boom');
    expect(breaker.state()).toBe('open');
    const error = await breaker.execute(() => 1).catch((e: unknown) => e);
    expect(isCircuitBreakerOpenError(error)).toBe(true);
    expect((error as { code: string }).code).toBe('CircuitBreakerOpen');
    clock.advance(30_000);
    await expect(breaker.execute(() => 42)).resolves.toBe(42);
    expect(breaker.state()).toBe('closed');
    expect(events.map((e) => e.slice(1))).toEqual([
      ['closed', 'open', 'consecutive-failures'],
      ['open', 'half-open', 'open-timeout-elapsed'],
      ['half-open', 'closed', 'probes-succeeded'],
    ]);
    expect(events.every((e) => e[0] === 0)).toBe(true);
  });

  it('execute releases the permit when isFailure says the error is not the node’s fault', async () => {
    const clock = new FakeClock();
    const breaker = new CircuitBreaker({ clock, trip: new ConsecutiveFailures(1) });
    breaker.onFailure(breaker.tryAcquire());
    clock.advance(30_000);
    await expect(
      breaker.execute(
        () => Promise.reject(new Error('cancelled')),
        () => false,
      ),
    ).rejects.toThrow('cancelled');
    expect(breaker.state()).toBe('half-open');
    expect(breaker.snapshot().probesInFlight).toBe(0);
    expect(isProbe(breaker.tryAcquire())).toBe(true);
  });
});
