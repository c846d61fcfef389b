import { esc, family } from './exposition.js';
import type { HintStats } from './hint-manager.js';
import type { RepairStats } from './repairer.js';
import type { StreamStatus, StreamTotals } from './streamer.js';

/** What /metrics shows of data movement: hints, repair and streaming (control plane). */
export interface DataMetrics {
  /** Member nodes: each gets its hint and repair gauges, 0 included. */
  readonly nodes: readonly string[];
  /** Pending hints per node (count and bytes in the store). */
  readonly pending: ReadonlyMap<string, { readonly count: number; readonly bytes: number }>;
  readonly hintStats: ReadonlyMap<string, Readonly<HintStats>>;
  /** Nodes that lost hints (dropped) and are not repaired yet. */
  readonly repairNeeded: (nodeId: string) => boolean;
  readonly repair: Readonly<RepairStats>;
  readonly streams: readonly StreamStatus[];
  readonly streamTotals: Readonly<StreamTotals>;
}

const NO_STATS: HintStats = { stored: 0, replayed: 0, droppedFull: 0, droppedAge: 0, refused: 0 };

/** Appends the data-movement families to a /metrics exposition. */
export function renderDataMetrics(out: string[], d: DataMetrics): void {
  const ids = [...new Set([...d.nodes, ...d.pending.keys(), ...d.hintStats.keys()])];
  const per = (value: (id: string) => number) =>
    ids.map((id) => [`node="${esc(id)}"`, value(id)] as const);
  const stats = (id: string) => d.hintStats.get(id) ?? NO_STATS;
  family(
    out,
    'engram_router_hints_pending',
    'gauge',
    'Writes a node missed, kept as hints until it is back and acknowledges them.',
    per((id) => d.pending.get(id)?.count ?? 0),
  );
  family(
    out,
    'engram_router_hint_bytes_pending',
    'gauge',
    'Bytes of pending hints per node (bounded by hints.maxBytesPerNode).',
    per((id) => d.pending.get(id)?.bytes ?? 0),
  );
  family(
    out,
    'engram_router_hints_stored_total',
    'counter',
    'Hints written durably, per node.',
    per((id) => stats(id).stored),
  );
  family(
    out,
    'engram_router_hints_replayed_total',
    'counter',
    'Hints the node acknowledged on replay, per node.',
    per((id) => stats(id).replayed),
  );
  family(
    out,
    'engram_router_hints_dropped_total',
    'counter',
    'Hints lost, per node and reason: full (hints.maxBytesPerNode), age (hints.maxAgeMs), refused (the node rejected the request); the node then needs a repair.',
    ids.flatMap((id) => {
      const s = stats(id);
      const node = `node="${esc(id)}"`;
      return [
        [`${node},reason="full"`, s.droppedFull],
        [`${node},reason="age"`, s.droppedAge],
        [`${node},reason="refused"`, s.refused],
      ] as const;
    }),
  );
  family(
    out,
    'engram_router_repair_needed',
    'gauge',
    '1 while a node that lost hints waits for its repair.',
    per((id) => (d.repairNeeded(id) ? 1 : 0)),
  );
  const r = d.repair;
  family(
    out,
    'engram_router_repair_spaces_compared_total',
    'counter',
    'Spaces whose replica digests were compared.',
    [['', r.spacesCompared]],
  );
  family(
    out,
    'engram_router_repair_spaces_differed_total',
    'counter',
    'Compared spaces whose replicas differed.',
    [['', r.spacesDiffered]],
  );
  family(
    out,
    'engram_router_repair_entries_applied_total',
    'counter',
    'Entries repair copied to a replica that lacked them or held them older.',
    [['', r.entriesApplied]],
  );
  family(
    out,
    'engram_router_repair_failures_total',
    'counter',
    'Space repairs that failed (retried by the next repair).',
    [['', r.failures]],
  );
  const run = (s: StreamStatus) => `kind="${s.kind}",subject="${esc(s.subject)}"`;
  family(
    out,
    'engram_router_stream_spaces',
    'gauge',
    'Spaces a membership change in progress streams (joining or leaving node, moved pin).',
    d.streams.map((s) => [run(s), s.spacesTotal] as const),
  );
  family(
    out,
    'engram_router_stream_spaces_done',
    'gauge',
    'Spaces of a membership change in progress already streamed.',
    d.streams.map((s) => [run(s), s.spacesDone] as const),
  );
  family(
    out,
    'engram_router_stream_entries_copied',
    'gauge',
    'Entries a membership change in progress has copied so far.',
    d.streams.map((s) => [run(s), s.entriesCopied] as const),
  );
  const t = d.streamTotals;
  family(out, 'engram_router_streamed_spaces_total', 'counter', 'Spaces streamed to new owners.', [
    ['', t.spaces],
  ]);
  family(
    out,
    'engram_router_streamed_entries_total',
    'counter',
    'Entries streamed to new owners.',
    [['', t.entries]],
  );
  family(
    out,
    'engram_router_transitions_completed_total',
    'counter',
    'Membership changes (join, leave, pin) whose data finished moving.',
    [['', t.transitions]],
  );
}
