import { BreakerTable, ConsecutiveFailures } from '@engram/breaker';
import { TableWriter } from '@engram/ring';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { CONFIG_DEFAULTS, type RouterNodeConfig } from '../src/internal/config.js';
import { ControlPlane, type PlacementSeed } from '../src/internal/control-plane.js';
import type { Probe, ProbeTarget } from '../src/internal/health-monitor.js';
import { controlWords, createStateBuffer } from '../src/internal/layout.js';
import type { Membership } from '../src/internal/membership.js';
import { TablePublisher } from '../src/internal/table-publisher.js';
import { FakeTime } from './fake-time.js';
import { nodeConfigs, ROUND_HEALTH } from './node-configs.js';

const nodes = nodeConfigs;

/** Counts probes per node; every node answers SERVING unless listed in `down`. */
class CountingProbe implements Probe {
  readonly calls = new Map<string, number>();
  readonly down = new Set<string>();
  async check(target: ProbeTarget): Promise<boolean> {
    this.calls.set(target.id, (this.calls.get(target.id) ?? 0) + 1);
    return !this.down.has(target.id);
  }
  forget(): void {}
  total(): number {
    return [...this.calls.values()].reduce((a, b) => a + b, 0);
  }
}

function setup(count = 3) {
  const time = new FakeTime();
  const probe = new CountingProbe();
  const control = controlWords(createStateBuffer(1, 16));
  const writer = new TableWriter({ maxNodes: 8, maxTokens: 8 * 16, maxReplicationFactor: 3 });
  const breakers = new BreakerTable({ capacity: 16, trip: new ConsecutiveFailures(2) });
  const config: RouterNodeConfig = {
    ...CONFIG_DEFAULTS,
    nodes: nodes(count),
    vnodesPerNode: 16,
    health: ROUND_HEALTH,
    router: { ...CONFIG_DEFAULTS.router, replicateWrites: false },
  };
  const saved: { m: Membership; seed: PlacementSeed }[] = [];
  const plane = new ControlPlane({
    config,
    limits: { maxNodes: 8, maxSlots: 10 },
    publisher: new TablePublisher(writer, control, config),
    breakers,
    probe,
    timers: time,
    log: pino({ level: 'silent' }),
    persist: (m, seed) => saved.push({ m, seed }),
  });
  return { time, probe, plane, config, saved };
}

describe('ControlPlane reload', () => {
  it('a new health.intervalMs applies to the probing in progress', async () => {
    const { time, probe, plane, config } = setup(2);
    await plane.start();
    await time.advance(0);
    const first = probe.total();
    await time.advance(3000); // 3 rounds of 2 nodes at 1000 ms
    expect(probe.total() - first).toBe(6);
    plane.reconfigure({ ...config, health: { ...config.health, intervalMs: 250 } });
    await time.advance(0); // the new monitor's first round, at once
    const after = probe.total();
    await time.advance(1000); // 4 rounds of 2 nodes at 250 ms
    expect(probe.total() - after).toBe(8);
    plane.close();
  });

  it('new thresholds apply: a node goes down after the new unhealthyThreshold', async () => {
    const { time, probe, plane, config } = setup(3);
    await plane.start();
    await time.advance(0);
    expect(plane.table().nodes.every((n) => n.state === 'up')).toBe(true);
    probe.down.add('n2');
    plane.reconfigure({ ...config, health: { ...config.health, unhealthyThreshold: 4 } });
    await time.advance(0); // failure 1 (the new monitor's first round, at once)
    await time.advance(2000); // failures 2, 3
    expect(plane.table().nodes.find((n) => n.id === 'n2')?.state).toBe('up');
    await time.advance(1000); // failure 4
    expect(plane.table().nodes.find((n) => n.id === 'n2')?.state).toBe('down');
    plane.close();
  });

  it("a health reload keeps each node's probe failures; panic follows the threshold in force", async () => {
    const { time, probe, plane, config } = setup(3);
    await plane.start();
    await time.advance(0);
    probe.down.add('n2');
    await time.advance(2000); // two failed rounds: n2 down
    const failures = plane.probeStats('n2')!.failures;
    expect(failures).toBe(2);
    expect(plane.probeStats('n1')!.failures).toBe(0);
    expect(plane.panic).toBe(false); // threshold 0: never
    // 2 of 3 up is under 0.9: panic, by the reloaded threshold, at once.
    plane.reconfigure({ ...config, health: { ...config.health, panicThreshold: 0.9 } });
    expect(plane.panic).toBe(true);
    // A new interval replaces the monitor: the counts go on from where they were.
    plane.reconfigure({ ...config, health: { ...config.health, intervalMs: 500 } });
    expect(plane.probeStats('n2')!.failures).toBe(failures);
    expect(plane.panic).toBe(false); // back to threshold 0
    await time.advance(0); // the new monitor's first round
    expect(plane.probeStats('n2')!.failures).toBe(failures + 1);
    // A node removed: its stats go with it.
    plane.removeNode('n3', true);
    expect(plane.probeStats('n3')).toBeUndefined();
    plane.close();
  });

  it('persists every applied change with the config placement it came from, not verdicts', async () => {
    const { time, plane, saved, config } = setup(3);
    expect(saved).toHaveLength(1); // at start
    expect(saved[0]!.seed.nodes).toEqual(config.nodes);
    await plane.start();
    await time.advance(0); // health verdicts: not persisted
    expect(saved).toHaveLength(1);
    plane.addNode({ id: 'n4', address: '127.0.0.1:7004', zone: 'a' });
    plane.drainNode('n1', false);
    plane.assignSpace({ spaceId: 's', primary: 'n2', replicas: ['n3'] });
    expect(saved).toHaveLength(4);
    const last = saved[3]!.m;
    expect(last.nodes.map((n) => n.id)).toEqual(['n1', 'n2', 'n3', 'n4']);
    expect(last.get('n1')?.lifecycle).toBe('draining');
    expect(last.assignments).toHaveLength(1);
    plane.close();
  });

  it('planPlacement changes nothing until applied, and refuses a node list a pin needs', async () => {
    const { plane, config } = setup(3);
    plane.assignSpace({ spaceId: 's', primary: 'n3', replicas: [] });
    const epoch = plane.epoch;
    expect(() => plane.planPlacement(nodes(2), null)).toThrow(/pinned by space s/);
    // The same list with the pin dropped applies: pins first, then the nodes.
    const plan = plane.planPlacement(nodes(2), []);
    expect(plane.table().nodes).toHaveLength(3);
    expect(plane.epoch).toBe(epoch);
    plane.applyPlacement(plan);
    expect(plane.table().nodes.map((n) => n.id)).toEqual(['n1', 'n2']);
    expect(plane.table().assignments).toEqual([]);
    // A plan made before another change is refused.
    const stale = plane.planPlacement(config.nodes, null);
    plane.drainNode('n1', false);
    expect(() => plane.applyPlacement(stale)).toThrow(/same tick/);
    plane.close();
  });
});
