import { BreakerTable, ConsecutiveFailures } from '@engram/breaker';
import { TableReader, TableWriter } from '@engram/ring';
import { LagTable } from '@engram/router';
import { describe, expect, it } from 'vitest';
import type { NodeConfig } from '../src/internal/config.js';
import {
  controlWords,
  createStateBuffer,
  GRPC_STATUS_NAMES,
  N_EJECTED,
  N_FAILURE_RUN,
  N_LAST_ANSWER,
  N_UP_SINCE,
  nodeWord,
  S_OUTSTANDING,
  slotGeneration,
  slotMetrics,
} from '../src/internal/layout.js';
import { type Change, Membership } from '../src/internal/membership.js';
import {
  MetricsRecorder,
  SlotBaselines,
  slotUpstream,
  sumRegions,
} from '../src/internal/metrics.js';
import { recordFailureRun } from '../src/internal/outlier-monitor.js';
import { SlotBreakers } from '../src/internal/slot-breakers.js';
import { TablePublisher } from '../src/internal/table-publisher.js';

const UNAVAILABLE = GRPC_STATUS_NAMES.indexOf('UNAVAILABLE');
const OK = 0;

function node(id: string, port: number): NodeConfig {
  return { id, address: `127.0.0.1:${port}`, zone: '' };
}

/**
 * The control plane's side (Membership → handOut, breaker reset → publish, in ControlPlane's
 * #apply order) and one data-plane thread's side (SlotBreakers, MetricsRecorder) over the
 * same shared buffers, in one thread: the interleavings are chosen by the test.
 */
function cluster(maxNodes: number, threshold = 1) {
  const state = createStateBuffer(1, maxNodes);
  const control = controlWords(state);
  const writer = new TableWriter({
    maxNodes,
    maxTokens: maxNodes * 4,
    maxReplicationFactor: 3,
    maxBlobBytes: 64 * 1024,
  });
  const lag = new LagTable({ slots: maxNodes, shared: true });
  const publisher = new TablePublisher(
    writer,
    control,
    { replicationFactor: 3, vnodesPerNode: 4 },
    lag,
  );
  const trip = new ConsecutiveFailures(threshold);
  const breakers = new BreakerTable({ capacity: maxNodes, trip });
  const worker = new SlotBreakers({ buffer: breakers.buffer, trip }, control);
  const metrics = new MetricsRecorder(state, 0);
  const reader = new TableReader(writer.buffer);
  const apply = (change: Change): Membership => {
    for (const slot of change.freshSlots) {
      publisher.handOut(slot);
      breakers.reset(slot);
    }
    publisher.publish(change.next, false);
    return change.next;
  };
  return { state, control, lag, publisher, breakers, worker, metrics, reader, apply };
}

describe('SlotBreakers: a verdict counts only on the node it was admitted for', () => {
  it("drops a removed node's failure that ends after its slot was handed to another node", () => {
    const c = cluster(4);
    let m = Membership.create([node('a', 1), node('b', 2), node('c', 3)], [], null, {
      maxNodes: 4,
      maxSlots: 4,
    });
    c.publisher.publish(m, false);
    const slot = m.get('a')!.slot;
    // An attempt to 'a' admitted (closed breaker) by the data plane, through the plain view
    // and through SlotBreakers, both still in flight when 'a' goes and 'd' takes its slot.
    const plain = new BreakerTable({ buffer: c.breakers.buffer, trip: new ConsecutiveFailures(1) });
    const viaPlain = plain.tryAcquire(slot);
    const viaSlot = c.worker.tryAcquire(slot);
    m = c.apply(m.remove('a'));
    m = c.apply(m.add(node('d', 4)));
    expect(m.get('d')!.slot).toBe(slot);
    // The old attempts fail now. SlotBreakers drops it: 'd' keeps a closed breaker.
    c.worker.onFailure(slot, viaSlot);
    expect(c.breakers.state(slot)).toBe('closed');
    // The plain view, which carries no generation, would open the newcomer's breaker (the
    // confusion SlotBreakers exists for; threshold 1).
    plain.onFailure(slot, viaPlain);
    expect(c.breakers.state(slot)).toBe('open');
  });

  it("still counts the current node's verdicts: failures open, a success resets the run", () => {
    const c = cluster(4, 2);
    const m = Membership.create([node('a', 1)], [], null, { maxNodes: 4, maxSlots: 4 });
    c.publisher.publish(m, false);
    const slot = m.get('a')!.slot;
    c.worker.onFailure(slot, c.worker.tryAcquire(slot));
    c.worker.onSuccess(slot, c.worker.tryAcquire(slot));
    c.worker.onFailure(slot, c.worker.tryAcquire(slot));
    expect(c.breakers.state(slot)).toBe('closed');
    c.worker.onFailure(slot, c.worker.tryAcquire(slot));
    expect(c.breakers.state(slot)).toBe('open');
    expect(c.worker.tryAcquire(slot)).toBe(0); // REJECTED while open
  });

  it('releases an admission of an older generation without touching the newcomer', () => {
    const c = cluster(2, 1);
    let m = Membership.create([node('a', 1), node('b', 2)], [], null, {
      maxNodes: 2,
      maxSlots: 2,
    });
    c.publisher.publish(m, false);
    const slot = m.get('a')!.slot;
    const old = c.worker.tryAcquire(slot);
    m = c.apply(m.remove('a'));
    m = c.apply(m.add(node('c', 3)));
    c.worker.release(slot, old);
    c.worker.onSuccess(slot, old);
    expect(c.breakers.state(slot)).toBe('closed');
    c.worker.onFailure(slot, c.worker.tryAcquire(slot));
    expect(c.breakers.state(slot)).toBe('open');
  });
});

describe('node slots reused 10,000 times', () => {
  it('every newcomer starts fresh: breaker, lag row, node words, counters, in-flight attempts', () => {
    const MAX = 4;
    const c = cluster(MAX, 1);
    const upstreamBases = new SlotBaselines<Float64Array>();
    let m = Membership.create(
      [node('n0', 10_000), node('n1', 10_001), node('n2', 10_002)],
      [],
      null,
      { maxNodes: MAX, maxSlots: MAX },
    );
    const rebase = (next: Membership) => {
      const sums = sumRegions(c.state);
      upstreamBases.sync(
        [...next.members].map((x) => ({ id: x.node.id, slot: x.slot })),
        (slot) => slotUpstream(sums, slot),
      );
    };
    c.publisher.publish(m, false);
    rebase(m);
    let victim = 'n0';
    for (let i = 0; i < 10_000; i++) {
      const slot = m.get(victim)!.slot;
      const gen = slotGeneration(c.control, slot);
      // The victim is used and fails: counters, failure run, lag, words; its breaker opens.
      const done = c.metrics.attemptStarted(slot, true);
      c.metrics.attemptEnded(done, true, UNAVAILABLE, 0.01, 'failed');
      recordFailureRun(c.control, slot, 'failed');
      c.lag.add(slot, i % 256, 1);
      Atomics.store(c.control, nodeWord(slot, N_EJECTED), 1);
      Atomics.store(c.control, nodeWord(slot, N_LAST_ANSWER), 5);
      Atomics.store(c.control, nodeWord(slot, N_UP_SINCE), 5);
      // One more attempt still in flight when it goes.
      const token = c.metrics.attemptStarted(slot, true);
      const admission = c.worker.tryAcquire(slot);
      c.worker.onFailure(slot, c.worker.tryAcquire(slot));
      expect(c.breakers.state(slot)).toBe('open');

      // Replaced in one change (a SIGHUP'd node list): the slot freed is handed out again
      // within the same publish, the closest a newcomer can follow its predecessor.
      const newcomer = `n${i + 3}`;
      const list = [...m.members].map((x) => x.node).filter((n) => n.id !== victim);
      m = c.apply(m.reload([...list, node(newcomer, 10_003 + i)]));
      rebase(m);
      expect(m.get(newcomer)!.slot).toBe(slot);

      // The old attempt ends after the reuse: counted nowhere.
      expect(c.metrics.attemptEnded(token, true, UNAVAILABLE, 0.01, 'failed')).toBe(-1);
      c.worker.onFailure(slot, admission);

      expect(slotGeneration(c.control, slot)).toBe(gen + 1);
      expect(c.breakers.state(slot)).toBe('closed');
      expect(c.lag.behind(slot)).toBe(0);
      for (const word of [N_EJECTED, N_FAILURE_RUN, N_LAST_ANSWER, N_UP_SINCE]) {
        expect(Atomics.load(c.control, nodeWord(slot, word))).toBe(0);
      }
      // The newcomer's per-node counters read zero against its baseline, and the in-flight
      // gauge of its generation starts at zero.
      const own = slotUpstream(sumRegions(c.state), slot);
      const base = upstreamBases.of(slot, newcomer);
      expect(own.every((v, k) => v - (base?.[k] ?? 0) === 0)).toBe(true);
      const first = c.metrics.attemptStarted(slot, true);
      expect(c.metrics.region[slotMetrics(slot) + S_OUTSTANDING]).toBe(1);
      c.metrics.attemptEnded(first, true, OK, 0.001, 'answered');
      // A reader on the published table finds the newcomer on that slot, the victim gone.
      c.reader.refresh();
      expect(c.reader.nodeIndex(victim)).toBe(-1);
      expect(c.reader.nodeSlot(c.reader.nodeIndex(newcomer))).toBe(slot);
      // Rotate the victim over every slot.
      victim = [...m.members][i % m.size]!.node.id;
    }
    expect(c.publisher.epoch).toBe(1 + 10_000);
  });
});
