import { TableWriter } from '@engram/ring';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { NodeConfig } from '../src/internal/config.js';
import { controlWords, createStateBuffer, N_UP_SINCE, nodeWord } from '../src/internal/layout.js';
import { Health, Membership } from '../src/internal/membership.js';
import { markReturned, nodeWarmth } from '../src/internal/slow-start.js';
import { TablePublisher } from '../src/internal/table-publisher.js';

const LIMITS = { maxNodes: 8, maxSlots: 12 };
const NODES: NodeConfig[] = ['a', 'b', 'c'].map((id, i) => ({
  id,
  address: `127.0.0.1:${1001 + i}`,
  zone: '',
}));
const WINDOW_MS = 10_000;
const T0 = Date.UTC(2030, 0, 1);

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(T0);
});
afterEach(() => {
  vi.useRealTimers();
});

function setup() {
  const control = controlWords(createStateBuffer(1, 16));
  const writer = new TableWriter({ maxNodes: 8, maxTokens: 8 * 16, maxReplicationFactor: 3 });
  const publisher = new TablePublisher(writer, control, {
    replicationFactor: 3,
    vnodesPerNode: 16,
  });
  let m = Membership.create(NODES, [], null, LIMITS);
  const slotOf = (id: string) => m.get(id)!.slot;
  const publish = (next: Membership) => {
    m = next;
    publisher.publish(m, false);
  };
  return {
    control,
    publish,
    slotOf,
    get m() {
      return m;
    },
  };
}

describe('slow start (router-node)', () => {
  it('starts a ramp for a node marked up after down, not for one up for the first time', () => {
    const s = setup();
    s.publish(s.m);
    let m = s.m;
    for (const n of NODES) m = m.setHealth(n.id, Health.Up);
    s.publish(m); // unknown → up: the first verdict at start
    const b = s.slotOf('b');
    expect(Atomics.load(s.control, nodeWord(b, N_UP_SINCE))).toBe(0);
    expect(nodeWarmth(s.control, b, WINDOW_MS)).toBe(1);

    s.publish(s.m.setHealth('b', Health.Down));
    expect(Atomics.load(s.control, nodeWord(b, N_UP_SINCE))).toBe(0);
    s.publish(s.m.setHealth('b', Health.Up)); // down → up: a return
    expect(Atomics.load(s.control, nodeWord(b, N_UP_SINCE))).toBeGreaterThan(0);
    expect(nodeWarmth(s.control, b, WINDOW_MS)).toBe(0);
    // The others keep their full share.
    expect(nodeWarmth(s.control, s.slotOf('a'), WINDOW_MS)).toBe(1);
  });

  it('the share rises linearly over the window; once over, the word is cleared', () => {
    const control = controlWords(createStateBuffer(1, 16));
    markReturned(control, 5);
    expect(nodeWarmth(control, 5, WINDOW_MS)).toBe(0);
    vi.setSystemTime(T0 + WINDOW_MS / 2);
    // The return is stored in tenths of a second: the share is within one tenth's worth.
    expect(nodeWarmth(control, 5, WINDOW_MS)).toBeGreaterThanOrEqual(0.5);
    expect(nodeWarmth(control, 5, WINDOW_MS)).toBeLessThanOrEqual(0.5 + 100 / WINDOW_MS);
    expect(Atomics.load(control, nodeWord(5, N_UP_SINCE))).not.toBe(0);
    vi.setSystemTime(T0 + WINDOW_MS + 100);
    expect(nodeWarmth(control, 5, WINDOW_MS)).toBe(1);
    expect(Atomics.load(control, nodeWord(5, N_UP_SINCE))).toBe(0);
  });

  it('a window of 0 (off) and slots out of range give the full share', () => {
    const control = controlWords(createStateBuffer(1, 16));
    markReturned(control, 2);
    expect(nodeWarmth(control, 2, 0)).toBe(1);
    expect(nodeWarmth(control, -1, WINDOW_MS)).toBe(1);
    expect(nodeWarmth(control, 1_000_000, WINDOW_MS)).toBe(1);
    markReturned(control, -1); // ignored, no throw
  });
});
