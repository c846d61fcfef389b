import { describe, expect, it } from 'vitest';
import {
  CONNECTION_STATE,
  type ConnectionFactory,
  type ConnectionHooks,
  ConnectionSet,
  reconnectDelayMs,
} from '../src/index.js';
import { ManualClock } from './helpers.js';

interface FakeConnection {
  readonly id: number;
  readonly index: number;
  readonly hooks: ConnectionHooks;
  closed: boolean;
}

class FakeFactory implements ConnectionFactory<FakeConnection> {
  readonly kind = 'session' as const;
  readonly opened: FakeConnection[] = [];
  open(index: number, hooks: ConnectionHooks): FakeConnection {
    const c = { id: this.opened.length, index, hooks, closed: false };
    this.opened.push(c);
    return c;
  }
  close(connection: FakeConnection): Promise<void> {
    connection.closed = true;
    return Promise.resolve();
  }
}

const HALF = () => 0; // equal jitter with r = 0: exactly half the capped delay

function makeSet(size: number, clock = new ManualClock()) {
  const factory = new FakeFactory();
  const events: string[] = [];
  const set = new ConnectionSet(factory, size, {
    reconnectBaseDelayMs: 100,
    reconnectMaxDelayMs: 1000,
    clock,
    random: HALF,
    onEvent: (type, index) => events.push(`${type}:${index}`),
  });
  return { set, factory, clock, events };
}

describe('reconnectDelayMs', () => {
  it('doubles from the base, caps at the max, and jitters within [cap/2, cap]', () => {
    const lo = () => 0;
    const hi = () => 0.999999;
    expect([0, 1, 2, 3, 4, 5].map((a) => reconnectDelayMs(a, 100, 1000, lo))).toEqual([
      50, 100, 200, 400, 500, 500,
    ]);
    expect(reconnectDelayMs(2, 100, 1000, hi)).toBe(399);
    expect(reconnectDelayMs(10_000, 100, 1000, lo)).toBe(500);
  });
});

describe('ConnectionSet', () => {
  it('opens nothing until first acquired, then all connections at once', () => {
    const { set, factory, events } = makeSet(3);
    expect(factory.opened).toHaveLength(0);
    expect(set.isOpen).toBe(false);
    set.acquire();
    expect(factory.opened).toHaveLength(3);
    expect(events).toEqual(['open:0', 'open:1', 'open:2']);
    expect(set.liveCount).toBe(3);
  });

  it('reconnectNow replaces broken connections at once and starts their backoff over', () => {
    const { set, factory, clock } = makeSet(2);
    set.acquire();
    for (let round = 0; round < 3; round++) {
      for (const c of factory.opened.slice(-2)) c.hooks.broken(new Error('refused'));
      clock.advance(10_000); // replacements open, and break again at once above
    }
    for (const c of factory.opened.slice(-2)) c.hooks.broken(new Error('refused'));
    expect(set.acquire()).toBeUndefined();
    const before = factory.opened.length;
    set.reconnectNow();
    expect(factory.opened.length).toBe(before + 2);
    expect(set.acquire()).toBeDefined();
    // The next failure waits the first backoff step again (50 ms with this jitter), not 400.
    factory.opened.at(-1)!.hooks.broken(new Error('refused'));
    factory.opened.at(-2)!.hooks.broken(new Error('refused'));
    clock.advance(50);
    expect(factory.opened.length).toBe(before + 4);
    expect(clock.pending()).toBe(0);
  });

  it('reconnectNow also replaces a connection waiting out its own reconnect backoff (a grpc-js channel)', () => {
    const { set, factory } = makeSet(2);
    set.acquire();
    const [first, second] = factory.opened;
    // Still open, but failing to connect: grpc-js reports TRANSIENT_FAILURE and retries itself.
    first!.hooks.state(CONNECTION_STATE.TRANSIENT_FAILURE, new Error('could not connect'));
    second!.hooks.state(CONNECTION_STATE.READY);
    set.reconnectNow();
    expect(first!.closed).toBe(true);
    expect(second!.closed).toBe(false); // a ready one is left alone
    expect(factory.opened).toHaveLength(3);
    expect(set.states[0]).toBe(CONNECTION_STATE.CONNECTING);
  });

  it('hands connections out round robin', () => {
    const { set } = makeSet(3);
    const order = Array.from({ length: 7 }, () => set.acquire()?.index);
    expect(order).toEqual([1, 2, 0, 1, 2, 0, 1]);
  });

  it('skips a broken connection and replaces it after the backoff delay', () => {
    const { set, factory, clock, events } = makeSet(3);
    set.acquire();
    const broken = factory.opened[1]!;
    broken.hooks.broken(new Error('reset'));
    expect(broken.closed).toBe(true);
    expect(set.states[1]).toBe(CONNECTION_STATE.TRANSIENT_FAILURE);
    expect(set.lastError?.message).toBe('reset');
    expect(Array.from({ length: 4 }, () => set.acquire()?.index)).toEqual([2, 0, 2, 0]);

    clock.advance(49); // first replacement waits base/2 = 50 ms with r = 0
    expect(factory.opened).toHaveLength(3);
    clock.advance(1);
    expect(factory.opened).toHaveLength(4);
    expect(factory.opened[3]!.index).toBe(1);
    expect(events).toEqual(['open:0', 'open:1', 'open:2', 'close:1', 'open:1']);
    expect(set.states[1]).toBe(CONNECTION_STATE.CONNECTING);
    expect(Array.from({ length: 3 }, () => set.acquire()?.id)).toEqual([3, 2, 0]);
  });

  it('backs off longer after each consecutive failure and resets once READY', () => {
    const { set, factory, clock } = makeSet(1);
    set.acquire();
    factory.opened[0]!.hooks.broken(new Error('1'));
    clock.advance(50);
    factory.opened[1]!.hooks.broken(new Error('2'));
    clock.advance(99);
    expect(factory.opened).toHaveLength(2);
    clock.advance(1);
    expect(factory.opened).toHaveLength(3);
    factory.opened[2]!.hooks.state(CONNECTION_STATE.READY);
    factory.opened[2]!.hooks.broken(new Error('3'));
    clock.advance(50);
    expect(factory.opened).toHaveLength(4);
  });

  it('returns undefined when every connection is broken', () => {
    const { set, factory } = makeSet(2);
    set.acquire();
    for (const c of factory.opened) c.hooks.broken(new Error('down'));
    expect(set.acquire()).toBeUndefined();
  });

  it('ignores reports from a connection it already replaced', () => {
    const { set, factory, clock } = makeSet(1);
    set.acquire();
    const old = factory.opened[0]!;
    old.hooks.broken(new Error('first'));
    clock.advance(50);
    old.hooks.broken(new Error('late'));
    old.hooks.state(CONNECTION_STATE.TRANSIENT_FAILURE);
    expect(set.states[0]).toBe(CONNECTION_STATE.CONNECTING);
    expect(set.lastError?.message).toBe('first');
    expect(factory.opened).toHaveLength(2);
  });

  it('whenReady resolves when all are READY and rejects on the first failure', async () => {
    const { set, factory } = makeSet(2);
    const ready = set.whenReady(1000);
    for (const c of factory.opened) c.hooks.state(CONNECTION_STATE.READY);
    await expect(ready).resolves.toBeUndefined();

    const other = makeSet(2);
    const failing = other.set.whenReady(1000);
    other.factory.opened[0]!.hooks.state(CONNECTION_STATE.READY);
    other.factory.opened[1]!.hooks.broken(new Error('refused'));
    await expect(failing).rejects.toThrow('refused');
  });

  it('whenReady rejects when the timeout passes first', async () => {
    const { set, clock } = makeSet(2);
    const waiting = set.whenReady(500);
    clock.advance(500);
    await expect(waiting).rejects.toThrow(/connect timeout of 500 ms/);
  });

  it('close closes every connection and cancels pending replacements', async () => {
    const { set, factory, clock, events } = makeSet(2);
    set.acquire();
    factory.opened[0]!.hooks.broken(new Error('x'));
    await set.close();
    expect(factory.opened.every((c) => c.closed)).toBe(true);
    expect(clock.pending()).toBe(0);
    clock.advance(10_000);
    expect(factory.opened).toHaveLength(2);
    expect(set.acquire()).toBeUndefined();
    expect(set.liveCount).toBe(0);
    expect(events.filter((e) => e.startsWith('close'))).toHaveLength(2);
  });
});
