import { describe, expect, it } from 'vitest';
import {
  HealthMonitor,
  type HealthMonitorInit,
  HealthVerdicts,
  type Probe,
  type ProbeTarget,
} from '../src/internal/health-monitor.js';
import type { Health } from '../src/internal/membership.js';
import { FakeTime } from './fake-time.js';

describe('HealthVerdicts', () => {
  it('marks down after exactly unhealthyThreshold consecutive failures, up after healthyThreshold', () => {
    const v = new HealthVerdicts({ unhealthyThreshold: 3, healthyThreshold: 2 });
    expect(v.record('a', false, 'up')).toBeUndefined();
    expect(v.record('a', false, 'up')).toBeUndefined();
    expect(v.record('a', false, 'up')).toBe('down');
    expect(v.record('a', true, 'down')).toBeUndefined();
    expect(v.record('a', true, 'down')).toBe('up');
  });

  it('a node of unknown health (never probed) is up on its first success', () => {
    const v = new HealthVerdicts({ unhealthyThreshold: 2, healthyThreshold: 3 });
    expect(v.record('a', true, 'unknown')).toBe('up');
  });

  it('a node of unknown health is down after unhealthyThreshold failures, then needs healthyThreshold', () => {
    const v = new HealthVerdicts({ unhealthyThreshold: 2, healthyThreshold: 2 });
    expect(v.record('a', false, 'unknown')).toBeUndefined();
    expect(v.record('a', false, 'unknown')).toBe('down');
    expect(v.record('a', true, 'down')).toBeUndefined();
    expect(v.record('a', true, 'down')).toBe('up');
  });

  it('a success in a run of failures starts the count over (a flapping node stays up)', () => {
    const v = new HealthVerdicts({ unhealthyThreshold: 2, healthyThreshold: 2 });
    for (let i = 0; i < 10; i++) {
      expect(v.record('a', false, 'up')).toBeUndefined();
      expect(v.record('a', true, 'up')).toBeUndefined();
    }
    expect(v.streak('a')).toBe(1);
  });
});

/** A probe whose answers the test gives: each check waits for `answer(id, ok)`. */
class ScriptedProbe implements Probe {
  readonly waiting = new Map<string, (ok: boolean) => void>();
  readonly checks: string[] = [];
  readonly forgotten: string[] = [];
  check(target: ProbeTarget): Promise<boolean> {
    this.checks.push(target.id);
    return new Promise((resolve) => this.waiting.set(target.id, resolve));
  }
  forget(target: ProbeTarget): void {
    this.forgotten.push(`${target.id}@${target.address}`);
  }
  answer(id: string, ok: boolean): void {
    const resolve = this.waiting.get(id);
    if (resolve === undefined) throw new Error(`no probe of ${id} is waiting`);
    this.waiting.delete(id);
    resolve(ok);
  }
}

function monitor(
  time: FakeTime,
  probe: Probe,
  states: Map<string, Health>,
  settings: Partial<HealthMonitorInit> = {},
) {
  const verdicts: string[] = [];
  const m = new HealthMonitor({
    intervalMs: 1000,
    timeoutMs: 300,
    healthyThreshold: 2,
    unhealthyThreshold: 2,
    ...settings,
    timers: time,
    probe,
    current: (id) => states.get(id),
    onVerdict: (id, health) => {
      verdicts.push(`${id}:${health}`);
      states.set(id, health);
    },
  });
  return { m, verdicts };
}

describe('HealthMonitor (fake time)', () => {
  it('probes at start and every interval, and marks a node down after two failed rounds', async () => {
    const time = new FakeTime();
    const probe = new ScriptedProbe();
    const states = new Map<string, Health>([['a', 'up']]);
    const { m, verdicts } = monitor(time, probe, states);
    m.watch({ id: 'a', address: 'h:1' });
    m.start();
    expect(probe.checks).toEqual(['a']);
    probe.answer('a', false);
    await time.advance(999);
    expect(probe.checks).toHaveLength(1);
    await time.advance(1);
    expect(probe.checks).toHaveLength(2);
    probe.answer('a', false);
    await time.advance(0);
    expect(verdicts).toEqual(['a:down']);
    m.stop();
    expect(time.pending).toBe(0);
  });

  it('counts a probe that outlives the timeout as failed, and ignores its late answer', async () => {
    const time = new FakeTime();
    const probe = new ScriptedProbe();
    const states = new Map<string, Health>([['a', 'up']]);
    const { m, verdicts } = monitor(time, probe, states);
    m.watch({ id: 'a', address: 'h:1' });
    m.start();
    await time.advance(300); // timeout: failure 1
    expect(m.streak('a')).toBe(-1);
    probe.answer('a', true); // late: ignored
    await time.advance(0);
    expect(m.streak('a')).toBe(-1);
    await time.advance(700); // next round at 1000
    await time.advance(300); // timeout: failure 2
    expect(verdicts).toEqual(['a:down']);
    m.stop();
  });

  it('does not start a second probe of a node while one is running', async () => {
    const time = new FakeTime();
    const probe = new ScriptedProbe();
    const monitorWithLongTimeout = new HealthMonitor({
      intervalMs: 100,
      timeoutMs: 1000,
      healthyThreshold: 1,
      unhealthyThreshold: 1,
      timers: time,
      probe,
      current: () => 'up',
      onVerdict: () => {},
    });
    monitorWithLongTimeout.watch({ id: 'a', address: 'h:1' });
    monitorWithLongTimeout.start();
    await time.advance(500);
    expect(probe.checks).toEqual(['a']);
    monitorWithLongTimeout.stop();
  });

  it('drops results of a node removed or re-addressed while its probe ran, and forgets it', async () => {
    const time = new FakeTime();
    const probe = new ScriptedProbe();
    const states = new Map<string, Health>([['a', 'up']]);
    const { m, verdicts } = monitor(time, probe, states);
    m.watch({ id: 'a', address: 'h:1' });
    m.start();
    m.watch({ id: 'a', address: 'h:2' }); // re-addressed: a new probe starts at once
    expect(probe.forgotten).toEqual(['a@h:1']);
    probe.answer('a', false); // the probe of h:2 (the newest waiting one)
    await time.advance(0);
    expect(m.streak('a')).toBe(-1);
    m.unwatch('a');
    expect(probe.forgotten).toEqual(['a@h:1', 'a@h:2']);
    await time.advance(5000);
    expect(verdicts).toEqual([]);
    m.stop();
  });
});

describe('HealthMonitor between rounds (unhealthyIntervalMs, healthyEdgeIntervalMs)', () => {
  const edgeMonitor = (time: FakeTime, probe: Probe, states: Map<string, Health>) =>
    monitor(time, probe, states, {
      unhealthyIntervalMs: 250,
      healthyEdgeIntervalMs: 100,
      healthyThreshold: 3,
    });

  it('probes a down node every unhealthyIntervalMs, and every healthyEdgeIntervalMs once one passed, until it is up', async () => {
    const time = new FakeTime();
    const probe = new ScriptedProbe();
    const states = new Map<string, Health>([['a', 'down']]);
    const { m, verdicts } = edgeMonitor(time, probe, states);
    m.watch({ id: 'a', address: 'h:1' });
    m.start();
    probe.answer('a', false); // t=0
    await time.advance(249);
    expect(probe.checks).toHaveLength(1);
    await time.advance(1); // t=250: the unhealthy interval, not the round at 1000
    expect(probe.checks).toHaveLength(2);
    probe.answer('a', true);
    await time.advance(99);
    expect(probe.checks).toHaveLength(2);
    await time.advance(1); // t=350: the healthy edge interval
    expect(probe.checks).toHaveLength(3);
    probe.answer('a', true);
    await time.advance(100); // t=450
    expect(probe.checks).toHaveLength(4);
    probe.answer('a', true); // third success in a row: up
    await time.advance(0);
    expect(verdicts).toEqual(['a:up']);
    // Up: back to the rounds only (the next at t=1000).
    await time.advance(549);
    expect(probe.checks).toHaveLength(4);
    await time.advance(1);
    expect(probe.checks).toHaveLength(5);
    probe.answer('a', true);
    await time.advance(0);
    m.stop();
    expect(time.pending).toBe(0);
  });

  it('never probes an up node between rounds, and never probes a node twice at once', async () => {
    const time = new FakeTime();
    const probe = new ScriptedProbe();
    const states = new Map<string, Health>([
      ['a', 'up'],
      ['b', 'down'],
    ]);
    const { m } = edgeMonitor(time, probe, states);
    m.watch({ id: 'a', address: 'h:1' });
    m.watch({ id: 'b', address: 'h:2' });
    m.start();
    probe.answer('a', true);
    probe.answer('b', false); // t=0: b's next probe at 250
    await time.advance(250);
    expect(probe.checks.filter((id) => id === 'b')).toHaveLength(2);
    // Unanswered: it fails by its timeout at 550, and the next one starts at 800.
    await time.advance(549); // t=799
    expect(probe.checks.filter((id) => id === 'b')).toHaveLength(2);
    await time.advance(1); // t=800
    expect(probe.checks.filter((id) => id === 'b')).toHaveLength(3);
    await time.advance(199); // t=999: a, up, had no probe between rounds
    expect(probe.checks.filter((id) => id === 'a')).toHaveLength(1);
    await time.advance(1); // t=1000: the round probes a; b's probe is still running
    expect(probe.checks.filter((id) => id === 'a')).toHaveLength(2);
    expect(probe.checks.filter((id) => id === 'b')).toHaveLength(3);
    probe.answer('a', true);
    probe.answer('b', false);
    await time.advance(0);
    m.unwatch('b'); // its next probe (due at 1250) is cancelled with it
    m.stop();
    expect(time.pending).toBe(0);
  });

  it('with both intervals at or above intervalMs, probes in rounds only', async () => {
    const time = new FakeTime();
    const probe = new ScriptedProbe();
    const states = new Map<string, Health>([['a', 'down']]);
    const { m } = monitor(time, probe, states, {
      unhealthyIntervalMs: 1000,
      healthyEdgeIntervalMs: 5000,
    });
    m.watch({ id: 'a', address: 'h:1' });
    m.start();
    probe.answer('a', true);
    await time.advance(999);
    expect(probe.checks).toHaveLength(1);
    await time.advance(1);
    expect(probe.checks).toHaveLength(2);
    m.stop();
  });
});
