import { Deadline } from '@engram/retry';
import type { CallContext } from '@engram/router';
import { describe, expect, it } from 'vitest';
import { attemptStatus } from '../src/internal/forward.js';
import {
  createStateBuffer,
  GRPC_STATUS_NAMES,
  metricsRegion,
  OUTCOME_INDEX,
  OUTCOME_OK,
  OUTCOME_UPSTREAM_ERROR,
  OUTCOMES,
  regionWords,
  upstreamHistOffset,
  upstreamOffset,
} from '../src/internal/layout.js';
import {
  type ControlSnapshot,
  MetricsRecorder,
  renderMetrics,
  SlotBaselines,
  slotUpstream,
  sumRegions,
} from '../src/internal/metrics.js';
import { checkExposition } from './exposition-check.js';

/** Node slots of the state buffers here. */
const SLOTS = 64;

function snapshot(over: Partial<ControlSnapshot> = {}): ControlSnapshot {
  return {
    epoch: 2,
    partitioned: false,
    nodes: [
      {
        id: 'a',
        slot: 0,
        breaker: 'open',
        up: true,
        lifecycle: 'leaving',
        transitions: { open: 2, halfOpen: 1, closed: 1 },
        probeFailures: 3,
        probeSeconds: 0.0015,
      },
      {
        id: 'b',
        slot: 5,
        breaker: 'closed',
        up: false,
        lifecycle: 'active',
        transitions: { open: 0, halfOpen: 0, closed: 0 },
        probeFailures: 0,
        probeSeconds: undefined,
      },
    ],
    workers: 2,
    workerRestarts: 0,
    build: { version: '1.2.3', nodeVersion: 'v20.0.0' },
    mainHeap: { used: 10, total: 20, external: 5 },
    workerThreads: 2,
    ...over,
  };
}

function line(text: string, prefix: string): string | undefined {
  return text.split('\n').find((l) => l.startsWith(prefix));
}

describe('outcome labels', () => {
  it('the constant indexes of the usual ends of a call name the right labels', () => {
    expect(OUTCOMES[OUTCOME_OK]).toBe('ok');
    expect(OUTCOMES[OUTCOME_UPSTREAM_ERROR]).toBe('upstream_error');
    for (const [i, label] of OUTCOMES.entries()) expect(OUTCOME_INDEX.get(label)).toBe(i);
  });
});

describe('per-node upstream attempts in the shared regions', () => {
  it('are summed across thread regions, by node slot and gRPC status, and render as valid families', () => {
    const buffer = createStateBuffer(2, SLOTS);
    const t0 = new MetricsRecorder(buffer, 0);
    const t1 = new MetricsRecorder(buffer, 1);
    t0.upstream(0, 0, 0.0004);
    t1.upstream(0, 0, 0.002);
    t1.upstream(0, 14, 0.00005);
    t0.upstream(5, 4, 3);
    const text = renderMetrics(buffer, snapshot());
    expect(checkExposition(text).problems).toEqual([]);
    expect(line(text, 'engram_router_upstream_requests_total{node="a",grpc_status="OK"}')).toMatch(
      / 2$/,
    );
    expect(
      line(text, 'engram_router_upstream_requests_total{node="a",grpc_status="UNAVAILABLE"}'),
    ).toMatch(/ 1$/);
    expect(
      line(text, 'engram_router_upstream_requests_total{node="b",grpc_status="DEADLINE_EXCEEDED"}'),
    ).toMatch(/ 1$/);
    // A status a node never returned is not shown (OK always is).
    expect(text).not.toContain('node="a",grpc_status="INTERNAL"');
    expect(text).toContain('engram_router_upstream_requests_total{node="b",grpc_status="OK"} 0');
    expect(
      line(text, 'engram_router_upstream_request_duration_seconds_bucket{node="a",le="0.0001"}'),
    ).toMatch(/ 1$/);
    expect(
      line(text, 'engram_router_upstream_request_duration_seconds_bucket{node="a",le="0.0005"}'),
    ).toMatch(/ 2$/);
    expect(line(text, 'engram_router_upstream_request_duration_seconds_count{node="a"}')).toMatch(
      / 3$/,
    );
    expect(line(text, 'engram_router_upstream_request_duration_seconds_count{node="b"}')).toMatch(
      / 1$/,
    );
  });

  it('ignores a slot or status out of range (nothing written outside its words)', () => {
    const buffer = createStateBuffer(1, SLOTS);
    const r = new MetricsRecorder(buffer, 0);
    r.upstream(-1, 0, 1);
    r.upstream(SLOTS, 0, 1);
    r.upstream(0, GRPC_STATUS_NAMES.length, 1);
    r.upstream(0, -1, 1);
    expect(metricsRegion(buffer, 0).every((v) => v === 0)).toBe(true);
    r.upstream(SLOTS - 1, GRPC_STATUS_NAMES.length - 1, 1);
    const region = metricsRegion(buffer, 0);
    expect(region[upstreamOffset(SLOTS - 1, GRPC_STATUS_NAMES.length - 1)]).toBe(1);
    expect(upstreamHistOffset(SLOTS - 1)).toBeLessThan(regionWords(SLOTS));
    expect(region.length).toBe(regionWords(SLOTS));
  });
});

describe('slot baselines (slots are reused after a removal)', () => {
  it("a node that takes a slot over counts from the slot's values then; the first owner from 0", () => {
    const b = new SlotBaselines<number>();
    let now = 5;
    b.sync([{ id: 'a', slot: 0 }], () => now);
    expect(b.of(0, 'a')).toBeUndefined();
    now = 9;
    b.sync([{ id: 'a', slot: 0 }], () => now); // same owner: unchanged
    expect(b.of(0, 'a')).toBeUndefined();
    b.sync([{ id: 'c', slot: 0 }], () => now);
    expect(b.of(0, 'c')).toBe(9);
    expect(b.of(0, 'a')).toBeUndefined(); // not a's slot any more
  });

  it('the render subtracts a baseline from the attempt counters and histogram', () => {
    const buffer = createStateBuffer(1, SLOTS);
    const r = new MetricsRecorder(buffer, 0);
    r.upstream(0, 0, 0.0004);
    r.upstream(0, 14, 0.0004);
    const base = slotUpstream(sumRegions(buffer), 0);
    r.upstream(0, 0, 0.02);
    const s = snapshot();
    const nodes = [{ ...s.nodes[0]!, upstreamBase: base }, s.nodes[1]!];
    const text = renderMetrics(buffer, { ...s, nodes });
    expect(checkExposition(text).problems).toEqual([]);
    expect(text).toContain('engram_router_upstream_requests_total{node="a",grpc_status="OK"} 1');
    expect(text).not.toContain('node="a",grpc_status="UNAVAILABLE"');
    expect(text).toContain(
      'engram_router_upstream_request_duration_seconds_bucket{node="a",le="0.0005"} 0',
    );
    expect(text).toContain(
      'engram_router_upstream_request_duration_seconds_bucket{node="a",le="0.025"} 1',
    );
    expect(text).toContain('engram_router_upstream_request_duration_seconds_count{node="a"} 1');
  });
});

describe('node, breaker, probe, heap and build families', () => {
  it('node_up is the health verdict whatever the lifecycle; one lifecycle at 1 per node', () => {
    const buffer = createStateBuffer(2, SLOTS);
    new MetricsRecorder(buffer, 1).sampleHeap();
    const text = renderMetrics(buffer, snapshot());
    expect(checkExposition(text).problems).toEqual([]);
    expect(text).toContain('engram_router_node_up{node="a"} 1');
    expect(text).toContain('engram_router_node_up{node="b"} 0');
    expect(text).toContain('engram_router_node_lifecycle{node="a",lifecycle="leaving"} 1');
    expect(text).toContain('engram_router_node_lifecycle{node="a",lifecycle="active"} 0');
    expect(text).toContain('engram_router_breaker_transitions_total{node="a",to="open"} 2');
    expect(text).toContain('engram_router_breaker_transitions_total{node="a",to="half_open"} 1');
    expect(text).toContain('engram_router_health_probe_failures_total{node="a"} 3');
    expect(text).toContain('engram_router_health_probe_duration_seconds{node="a"} 0.0015');
    // Not probed yet: no duration sample.
    expect(text).not.toContain('engram_router_health_probe_duration_seconds{node="b"}');
    expect(text).toContain('engram_router_thread_heap_used_bytes{thread="main"} 10');
    // Worker 1 sampled its heap, worker 0 has not yet: only worker-1 is shown.
    expect(text).toContain('engram_router_thread_heap_total_bytes{thread="worker-1"}');
    expect(text).not.toContain('thread="worker-0"');
    expect(text).toContain('engram_router_build_info{version="1.2.3",node_version="v20.0.0"} 1');
  });

  it('no worker regions are read as threads when the data plane runs on the main thread', () => {
    const buffer = createStateBuffer(1, SLOTS);
    new MetricsRecorder(buffer, 0).sampleHeap();
    const text = renderMetrics(buffer, snapshot({ workerThreads: 0, workers: 0 }));
    expect(text).toContain('thread="main"');
    expect(text).not.toContain('thread="worker-0"');
  });

  it('the decision histogram resolves 50 ns … 1 ms', () => {
    const buffer = createStateBuffer(1, SLOTS);
    const r = new MetricsRecorder(buffer, 0);
    r.decision(40e-9);
    r.decision(300e-9);
    r.decision(3e-6);
    const text = renderMetrics(buffer, snapshot());
    expect(text).toContain('engram_router_decision_duration_seconds_bucket{le="5e-8"} 1');
    expect(text).toContain('engram_router_decision_duration_seconds_bucket{le="2e-7"} 1');
    expect(text).toContain('engram_router_decision_duration_seconds_bucket{le="5e-7"} 2');
    expect(text).toContain('engram_router_decision_duration_seconds_bucket{le="0.000005"} 3');
    expect(text).toContain('engram_router_decision_duration_seconds_bucket{le="0.001"} 3');
  });
});

describe('the status label of an attempt that ended without a reply', () => {
  const ctx = (deadlineMs: number, aborted: boolean): CallContext => {
    const c = new AbortController();
    if (aborted) c.abort();
    return { attemptDeadline: Deadline.after(deadlineMs), signal: c.signal } as CallContext;
  };
  it('DEADLINE_EXCEEDED past the attempt deadline, CANCELLED when the router gave it up, else UNAVAILABLE', () => {
    expect(GRPC_STATUS_NAMES[attemptStatus(ctx(0, true))]).toBe('DEADLINE_EXCEEDED');
    expect(GRPC_STATUS_NAMES[attemptStatus(ctx(60_000, true))]).toBe('CANCELLED');
    expect(GRPC_STATUS_NAMES[attemptStatus(ctx(60_000, false))]).toBe('UNAVAILABLE');
  });
});
