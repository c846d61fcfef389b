import { TableWriter } from '@engram/ring';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { attemptObserver } from '../src/internal/attempt-observer.js';
import { CONFIG_DEFAULTS } from '../src/internal/config.js';
import type { AttemptVerdict } from '../src/internal/forward.js';
import {
  controlWords,
  createStateBuffer,
  GRPC_STATUS_NAMES,
  metricsRegion,
  N_EJECTED,
  N_FAILURE_RUN,
  N_GEN,
  N_LAST_ANSWER,
  N_UP_SINCE,
  nodeWord,
  S_OUTSTANDING,
  slotMetrics,
  upstreamOffset,
} from '../src/internal/layout.js';
import { MetricsRecorder } from '../src/internal/metrics.js';
import { OutlierMonitor } from '../src/internal/outlier-monitor.js';
import { TablePublisher } from '../src/internal/table-publisher.js';
import { FakeTime } from './fake-time.js';

const OK = 0;
const UNAVAILABLE = 14;
const CANCELLED = 1;
const DEADLINE_EXCEEDED = 4;

afterEach(() => {
  vi.restoreAllMocks();
});

/** The verdict the data plane gives a sent attempt that ended with `status` (forward.ts). */
function verdictOf(status: number): AttemptVerdict {
  return status === OK ? 'answered' : status === CANCELLED ? 'unjudged' : 'failed';
}

/**
 * A monitor over a real state buffer (two thread regions) on fake time; nodes a, b, c in slots
 * 0-2 (`slotOf` changes when a test hands a slot to another node). Attempts are recorded the
 * way the data plane's threads do (attempt-observer.ts over a MetricsRecorder).
 */
function setup(config: Partial<typeof CONFIG_DEFAULTS.outlier> = {}, withClock = true) {
  const time = new FakeTime();
  const state = createStateBuffer(2, 16);
  const control = controlWords(state);
  const regions = [metricsRegion(state, 0), metricsRegion(state, 1)];
  const slots = new Map([
    ['a', 0],
    ['b', 1],
    ['c', 2],
  ]);
  const up = new Map([
    ['a', true],
    ['b', true],
    ['c', true],
  ]);
  const members = () =>
    [...slots].map(([id, slot]) => ({ id, slot, eligible: up.get(id) ?? true }));
  const monitor = new OutlierMonitor({
    config: { ...CONFIG_DEFAULTS.outlier, intervalMs: 100, ...config },
    state,
    members,
    timers: time,
    ...(withClock ? { clock: time.clock } : {}),
    log: pino({ level: 'silent' }),
  });
  const health = () =>
    monitor.membershipChanged(members().map((m) => ({ id: m.id, slot: m.slot, up: m.eligible })));
  health();
  if (withClock) monitor.start();
  const slotOf = (id: string) => slots.get(id) ?? -1;
  const observers = [0, 1].map((t) =>
    attemptObserver(new MetricsRecorder(state, t), control, slotOf, true),
  );
  /** Thread `t` sends an attempt to `id` (held until the returned function ends it). */
  const send = (t: number, id: string) => {
    const token = observers[t]!.started(id);
    return (status: number, seconds = 0.001, verdict = verdictOf(status)) =>
      observers[t]!.ended(token, status, seconds, verdict);
  };
  /** Thread `t` records one attempt to `id` that ended with `status`. */
  const attempt = (
    t: number,
    id: string,
    status: number,
    seconds = 0.001,
    verdict = verdictOf(status),
  ) => send(t, id)(status, seconds, verdict);
  /** Attempts counted for `slot` with `status` in the per-node metric (all threads). */
  const metric = (slot: number, status: number) =>
    regions.reduce((n, r) => n + r[upstreamOffset(slot, status)]!, 0);
  return { time, state, control, regions, slots, up, monitor, health, send, attempt, metric };
}

describe('OutlierMonitor', () => {
  it('counts a failure run across threads, ejects through N_EJECTED, and cancels break nothing', async () => {
    const { time, control, monitor, attempt } = setup();
    for (let i = 0; i < 4; i++) attempt(i % 2, 'b', UNAVAILABLE);
    attempt(0, 'b', CANCELLED); // neither failure nor answer
    await time.advance(200);
    expect(Atomics.load(control, nodeWord(1, N_FAILURE_RUN))).toBe(4);
    expect(monitor.isEjected('b')).toBe(false);
    attempt(1, 'b', UNAVAILABLE);
    await time.advance(100);
    expect(monitor.isEjected('b')).toBe(true);
    expect(Atomics.load(control, nodeWord(1, N_EJECTED))).toBe(1);
    expect(Atomics.load(control, nodeWord(1, N_FAILURE_RUN))).toBe(0); // started over
    const m = monitor.metrics().find((x) => x.id === 'b')!;
    expect(m).toMatchObject({ ejected: true, ejections: { consecutive_failures: 1 } });
    // An answer ends a run.
    attempt(0, 'c', UNAVAILABLE);
    attempt(1, 'c', OK);
    expect(Atomics.load(control, nodeWord(2, N_FAILURE_RUN))).toBe(0);
    monitor.stop();
  });

  it('sees a hung node from the in-flight gauges of every thread', async () => {
    const { time, control, monitor, send, attempt } = setup();
    // Two attempts held, one by each thread, never answered.
    send(0, 'a');
    send(1, 'a');
    for (let i = 0; i < 8; i++) {
      attempt(i % 2, 'b', OK);
      attempt(i % 2, 'c', OK);
      await time.advance(100);
    }
    expect(monitor.isEjected('a')).toBe(true);
    expect(Atomics.load(control, nodeWord(0, N_EJECTED))).toBe(1);
    monitor.stop();
  });

  it('does not eject a node coming back up for the failures of its down spell, and returns an ejected one', async () => {
    const { time, control, up, monitor, health, attempt } = setup();
    // Down (killed): its refused attempts run up a failure run, but it is not judged.
    up.set('a', false);
    health();
    for (let i = 0; i < 20; i++) attempt(0, 'a', UNAVAILABLE);
    await time.advance(300);
    expect(monitor.isEjected('a')).toBe(false);
    // Restarted: up again, not ejected for what happened while it was down.
    up.set('a', true);
    health();
    await time.advance(300);
    expect(monitor.isEjected('a')).toBe(false);
    // Failing while up: ejected; then down and up again: back at once, its word cleared.
    for (let i = 0; i < 5; i++) attempt(1, 'a', UNAVAILABLE);
    await time.advance(100);
    expect(monitor.isEjected('a')).toBe(true);
    up.set('a', false);
    health();
    up.set('a', true);
    health();
    expect(monitor.isEjected('a')).toBe(false);
    expect(Atomics.load(control, nodeWord(0, N_EJECTED))).toBe(0);
    monitor.stop();
  });

  it('returns every ejected node when outlier.enabled is reloaded to false', async () => {
    const { time, control, monitor, attempt } = setup();
    for (let i = 0; i < 5; i++) attempt(0, 'c', UNAVAILABLE);
    await time.advance(100);
    expect(Atomics.load(control, nodeWord(2, N_EJECTED))).toBe(1);
    expect(Atomics.load(control, nodeWord(2, N_UP_SINCE))).toBe(0);
    monitor.reconfigure({ ...CONFIG_DEFAULTS.outlier, enabled: false });
    expect(Atomics.load(control, nodeWord(2, N_EJECTED))).toBe(0);
    // Back in service with a slow-start ramp, as after a down spell.
    expect(Atomics.load(control, nodeWord(2, N_UP_SINCE))).not.toBe(0);
    expect(time.pending).toBe(0);
  });
});

describe('OutlierMonitor: what counts against a node', () => {
  it('runs on a monotonic clock by default: a wall-clock step neither fakes a stall nor lengthens an ejection', async () => {
    const { monitor, send, attempt } = setup({ baseEjectionMs: 100, maxEjectionMs: 100 }, false);
    const wall = Date.now();
    const peers = () => {
      attempt(0, 'b', OK);
      attempt(1, 'c', OK);
    };
    // Two attempts held by 'a' just now; the wall clock then jumps an hour ahead (NTP step).
    send(0, 'a');
    send(1, 'a');
    monitor.tick();
    peers();
    vi.spyOn(Date, 'now').mockReturnValue(wall + 3_600_000);
    monitor.tick();
    expect(monitor.isEjected('a')).toBe(false);
    // 'b' ejected (a failure run); the wall clock then steps an hour back.
    for (let i = 0; i < 5; i++) attempt(0, 'b', UNAVAILABLE);
    monitor.tick();
    expect(monitor.isEjected('b')).toBe(true);
    vi.spyOn(Date, 'now').mockReturnValue(wall - 3_600_000);
    // Back after its 100 ms, as the monotonic clock counts them (polled on real time: a wall
    // clock would keep it out for an hour).
    const until = performance.now() + 100 * 100;
    while (monitor.isEjected('b') && performance.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
      peers();
      monitor.tick();
    }
    expect(monitor.isEjected('b')).toBe(false);
  });

  it('does not count attempts never sent (no usable connection) against a node, only in the metric', async () => {
    const { time, control, monitor, attempt, metric } = setup({ minRequests: 10, windowMs: 1000 });
    // A refused connect: the attempts that were on the connection fail (counted), then every
    // call fails fast while its reconnect backoff runs: hundreds, none of them sent.
    attempt(0, 'a', UNAVAILABLE);
    for (let tick = 0; tick < 20; tick++) {
      for (let i = 0; i < 50; i++) attempt(tick % 2, 'a', UNAVAILABLE, 0.00001, 'unjudged');
      attempt(0, 'b', OK);
      attempt(1, 'c', OK);
      await time.advance(100);
    }
    expect(Atomics.load(control, nodeWord(0, N_FAILURE_RUN))).toBe(1);
    expect(monitor.isEjected('a')).toBe(false);
    // The per-node metric still shows them (no status: UNAVAILABLE).
    expect(metric(0, UNAVAILABLE)).toBe(1 + 20 * 50);
    // Failures the node was sent: out.
    for (let i = 0; i < 4; i++) attempt(1, 'a', UNAVAILABLE);
    await time.advance(100);
    expect(monitor.isEjected('a')).toBe(true);
    monitor.stop();
  });

  it('does not count an attempt ended by the caller’s own deadline against a node (failure rate)', async () => {
    const config = { minRequests: 20, windowMs: 1000, consecutiveFailures: 1_000_000 };
    const short = setup(config);
    // Clients with 20 ms deadlines against a node that answers in ~30 ms: most attempts end by
    // the caller's deadline (DEADLINE_EXCEEDED in the metric, unjudged), a few are answered.
    for (let tick = 0; tick < 30; tick++) {
      for (let i = 0; i < 4; i++) short.attempt(0, 'a', DEADLINE_EXCEEDED, 0.02, 'unjudged');
      short.attempt(1, 'a', OK, 0.019);
      for (const id of ['b', 'c']) for (let i = 0; i < 5; i++) short.attempt(0, id, OK, 0.019);
      await short.time.advance(100);
    }
    expect(short.monitor.isEjected('a')).toBe(false);
    expect(short.metric(0, DEADLINE_EXCEEDED)).toBe(30 * 4);
    short.monitor.stop();
    // The same when the router's own attempt timeout ended them: the node failed them.
    const own = setup(config);
    for (let tick = 0; tick < 30; tick++) {
      for (let i = 0; i < 4; i++) own.attempt(0, 'a', DEADLINE_EXCEEDED, 2);
      own.attempt(1, 'a', OK, 0.019);
      for (const id of ['b', 'c']) for (let i = 0; i < 5; i++) own.attempt(0, id, OK, 0.019);
      await own.time.advance(100);
    }
    expect(own.monitor.isEjected('a')).toBe(true);
    expect(own.monitor.metrics().find((m) => m.id === 'a')?.ejections.failure_rate).toBe(1);
    own.monitor.stop();
  });

  it('judges latency on answered attempts only: cancelled hedge losers do not hide a slow node', async () => {
    const { time, monitor, attempt } = setup({
      minRequests: 20,
      windowMs: 1000,
      latencyFactor: 5,
      latencyFloorMs: 5,
    });
    for (let tick = 0; tick < 30; tick++) {
      // 'a' answers in 100 ms; its many hedge losers are cancelled after ~2 ms.
      for (let i = 0; i < 3; i++) attempt(0, 'a', OK, 0.1);
      for (let i = 0; i < 20; i++) attempt(1, 'a', CANCELLED, 0.002);
      for (const id of ['b', 'c']) for (let i = 0; i < 5; i++) attempt(0, id, OK, 0.001);
      await time.advance(100);
    }
    expect(monitor.metrics().find((m) => m.id === 'a')?.ejections.latency).toBe(1);
    monitor.stop();
  });
});

describe('OutlierMonitor: a slot handed to another node', () => {
  it('carries nothing of the old node to the newcomer: ejection, failure run, ramp, in-flight attempts', async () => {
    const { time, state, control, regions, slots, monitor, health, send, attempt } = setup();
    const publisher = new TablePublisher(
      new TableWriter({ maxNodes: 8, maxTokens: 128, maxReplicationFactor: 3 }),
      control,
      { replicationFactor: 3, vnodesPerNode: 16 },
    );
    // 'a' (slot 0) hangs: three attempts held across threads, ejected as stalled.
    const held = [send(0, 'a'), send(1, 'a'), send(1, 'a')];
    for (let i = 0; i < 8; i++) {
      attempt(0, 'b', OK);
      attempt(1, 'c', OK);
      await time.advance(100);
    }
    expect(monitor.isEjected('a')).toBe(true);
    Atomics.store(control, nodeWord(0, N_FAILURE_RUN), 3);
    Atomics.store(control, nodeWord(0, N_LAST_ANSWER), 42);
    Atomics.store(control, nodeWord(0, N_UP_SINCE), 7);
    // 'a' removed, slot 0 handed to 'd' in one publish (the control plane's #apply).
    const gen = Atomics.load(control, nodeWord(0, N_GEN));
    publisher.handOut(0);
    slots.delete('a');
    slots.set('d', 0);
    health();
    expect(Atomics.load(control, nodeWord(0, N_GEN))).toBe(gen + 1);
    for (const word of [N_EJECTED, N_FAILURE_RUN, N_LAST_ANSWER, N_UP_SINCE]) {
      expect(Atomics.load(control, nodeWord(0, word))).toBe(0);
    }
    expect(monitor.isEjected('a')).toBe(false);
    expect(monitor.isEjected('d')).toBe(false);
    // The old node's attempts still in flight are not the newcomer's: no stall.
    for (let i = 0; i < 8; i++) {
      attempt(0, 'b', OK);
      attempt(1, 'c', OK);
      await time.advance(100);
    }
    expect(monitor.isEjected('d')).toBe(false);
    // They end (timed out) after the handover: counted nowhere, not as the newcomer's failures.
    const before = regions.map((r) => r[slotMetrics(0) + S_OUTSTANDING]);
    for (const end of held) end(DEADLINE_EXCEEDED, 2);
    expect(Atomics.load(control, nodeWord(0, N_FAILURE_RUN))).toBe(0);
    for (let s = 0; s < GRPC_STATUS_NAMES.length; s++) {
      expect(regions.reduce((n, r) => n + r[upstreamOffset(0, s)]!, 0)).toBe(0);
    }
    // Nor do they drive the newcomer's in-flight gauge: its own attempt counts 1, and back to 0.
    expect(regions.map((r) => r[slotMetrics(0) + S_OUTSTANDING])).toEqual(before);
    const own = send(1, 'd');
    expect(regions[1]![slotMetrics(0) + S_OUTSTANDING]).toBe(1);
    own(OK);
    expect(regions[1]![slotMetrics(0) + S_OUTSTANDING]).toBe(0);
    expect(metricsRegion(state, 1)[slotMetrics(0) + S_OUTSTANDING]).toBe(0);
    // The newcomer is judged on its own attempts: a failure run of its own ejects it, and the
    // old node's removal does not clear its ejection word in the same tick.
    for (let i = 0; i < 5; i++) attempt(0, 'd', UNAVAILABLE);
    await time.advance(100);
    expect(monitor.isEjected('d')).toBe(true);
    expect(Atomics.load(control, nodeWord(0, N_EJECTED))).toBe(1);
    monitor.stop();
  });

  it('forgets a node removed while ejected in the same tick its slot’s newcomer is ejected', async () => {
    const { time, control, slots, monitor, attempt } = setup();
    for (let i = 0; i < 5; i++) attempt(0, 'a', UNAVAILABLE);
    await time.advance(100);
    expect(monitor.isEjected('a')).toBe(true);
    // Between two ticks: 'a' removed, slot 0 handed to 'd' (words cleared), 'd' fails at once.
    Atomics.add(control, nodeWord(0, N_GEN), 1);
    Atomics.store(control, nodeWord(0, N_EJECTED), 0);
    slots.delete('a');
    slots.set('d', 0);
    for (let i = 0; i < 5; i++) attempt(1, 'd', UNAVAILABLE);
    await time.advance(100);
    expect(monitor.isEjected('d')).toBe(true);
    expect(Atomics.load(control, nodeWord(0, N_EJECTED))).toBe(1);
    expect(monitor.metrics().map((m) => m.id)).toEqual(['b', 'c', 'd']);
    monitor.stop();
  });
});
