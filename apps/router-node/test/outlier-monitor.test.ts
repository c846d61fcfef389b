import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { CONFIG_DEFAULTS } from '../src/internal/config.js';
import {
  C_EJECTED,
  controlWords,
  createStateBuffer,
  M_OUTSTANDING,
  metricsRegion,
  P_FAILURE_RUN,
  S_UP_SINCE,
  upstreamOffset,
} from '../src/internal/layout.js';
import { OutlierMonitor, recordFailureRun } from '../src/internal/outlier-monitor.js';
import { FakeTime } from './fake-time.js';

const OK = 0;
const UNAVAILABLE = 14;
const CANCELLED = 1;

/** A monitor over a real state buffer (two thread regions) on fake time; nodes a, b, c in slots 0-2. */
function setup() {
  const time = new FakeTime();
  const state = createStateBuffer(2);
  const control = controlWords(state);
  const regions = [metricsRegion(state, 0), metricsRegion(state, 1)];
  const up = new Map([
    ['a', true],
    ['b', true],
    ['c', true],
  ]);
  const members = () => ['a', 'b', 'c'].map((id, slot) => ({ id, slot, eligible: up.get(id)! }));
  const monitor = new OutlierMonitor({
    config: { ...CONFIG_DEFAULTS.outlier, intervalMs: 100 },
    state,
    members,
    timers: time,
    clock: time.clock,
    log: pino({ level: 'silent' }),
  });
  const health = () =>
    monitor.membershipChanged(members().map((m) => ({ id: m.id, slot: m.slot, up: m.eligible })));
  health();
  monitor.start();
  /** Thread `t` records one attempt to `slot` that ended with `status`. */
  const attempt = (t: number, slot: number, status: number) => {
    regions[t]![upstreamOffset(slot, status)]! += 1;
    recordFailureRun(control, slot, status);
  };
  return { time, control, regions, up, monitor, health, attempt };
}

describe('OutlierMonitor', () => {
  it('counts a failure run across threads, ejects through C_EJECTED, and cancels break nothing', async () => {
    const { time, control, monitor, attempt } = setup();
    for (let i = 0; i < 4; i++) attempt(i % 2, 1, UNAVAILABLE);
    attempt(0, 1, CANCELLED); // neither failure nor answer
    await time.advance(200);
    expect(Atomics.load(control, P_FAILURE_RUN + 1)).toBe(4);
    expect(monitor.isEjected('b')).toBe(false);
    attempt(1, 1, UNAVAILABLE);
    await time.advance(100);
    expect(monitor.isEjected('b')).toBe(true);
    expect(Atomics.load(control, C_EJECTED + 1)).toBe(1);
    expect(Atomics.load(control, P_FAILURE_RUN + 1)).toBe(0); // started over
    const m = monitor.metrics().find((x) => x.id === 'b')!;
    expect(m).toMatchObject({ ejected: true, ejections: { consecutive_failures: 1 } });
    // An answer ends a run.
    attempt(0, 2, UNAVAILABLE);
    attempt(1, 2, OK);
    expect(Atomics.load(control, P_FAILURE_RUN + 2)).toBe(0);
    monitor.stop();
  });

  it('sees a hung node from the in-flight gauges of every thread', async () => {
    const { time, control, regions, monitor, attempt } = setup();
    regions[1]![M_OUTSTANDING + 0] = 1; // one attempt held by thread 1, never answered
    for (let i = 0; i < 8; i++) {
      attempt(i % 2, 1, OK);
      attempt(i % 2, 2, OK);
      await time.advance(100);
    }
    expect(monitor.isEjected('a')).toBe(true);
    expect(Atomics.load(control, C_EJECTED + 0)).toBe(1);
    monitor.stop();
  });

  it('does not eject a node coming back up for the failures of its down spell, and returns an ejected one', async () => {
    const { time, control, up, monitor, health, attempt } = setup();
    // Down (killed): its refused attempts run up a failure run, but it is not judged.
    up.set('a', false);
    health();
    for (let i = 0; i < 20; i++) attempt(0, 0, UNAVAILABLE);
    await time.advance(300);
    expect(monitor.isEjected('a')).toBe(false);
    // Restarted: up again, not ejected for what happened while it was down.
    up.set('a', true);
    health();
    await time.advance(300);
    expect(monitor.isEjected('a')).toBe(false);
    // Failing while up: ejected; then down and up again: back at once, its word cleared.
    for (let i = 0; i < 5; i++) attempt(1, 0, UNAVAILABLE);
    await time.advance(100);
    expect(monitor.isEjected('a')).toBe(true);
    up.set('a', false);
    health();
    up.set('a', true);
    health();
    expect(monitor.isEjected('a')).toBe(false);
    expect(Atomics.load(control, C_EJECTED + 0)).toBe(0);
    monitor.stop();
  });

  it('returns every ejected node when outlier.enabled is reloaded to false', async () => {
    const { time, control, monitor, attempt } = setup();
    for (let i = 0; i < 5; i++) attempt(0, 2, UNAVAILABLE);
    await time.advance(100);
    expect(Atomics.load(control, C_EJECTED + 2)).toBe(1);
    expect(Atomics.load(control, S_UP_SINCE + 2)).toBe(0);
    monitor.reconfigure({ ...CONFIG_DEFAULTS.outlier, enabled: false });
    expect(Atomics.load(control, C_EJECTED + 2)).toBe(0);
    // Back in service with a slow-start ramp, as after a down spell.
    expect(Atomics.load(control, S_UP_SINCE + 2)).not.toBe(0);
    expect(time.pending).toBe(0);
  });
});
