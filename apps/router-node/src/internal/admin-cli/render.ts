import type { RoutingInfo } from '@engram/proto';

// What engram-router prints: the JSON shapes (stable field names, whatever the wire decoder
// adds) and the human tables. Pure functions of RouterAdmin (and, for store and recall,
// MemoryService) responses.

/** NodeStatus of GetTable, as decoded. */
export interface NodeStatusReply {
  id: string;
  address: string;
  zone: string;
  state: string;
  breaker: string;
  lifecycle: string;
  hintsPending: number;
  hintBytesPending: number;
  repairNeeded: boolean;
  healthLatencyMs: number;
  /** Ejected by outlier detection (absent from routers that predate it). */
  ejected?: boolean;
}

export interface StreamReply {
  kind: string;
  subject: string;
  phase: string;
  spacesTotal: number;
  spacesDone: number;
  entriesCopied: number;
  lastError: string;
}

export interface AssignmentReply {
  spaceId: string;
  primary: string;
  replicas: string[];
}

export interface TableReply {
  epoch: number;
  nodes: NodeStatusReply[];
  assignments: AssignmentReply[];
  replicationFactor: number;
  vnodesPerNode: number;
  partitioned: boolean;
  localNodeId: string;
  streams: StreamReply[];
  pendingAssignments: AssignmentReply[];
  /** etcd mode: the placement revision (0 without etcd) and etcd as the router sees it. */
  revision: number;
  etcd: EtcdReply | null | undefined;
}

export interface EtcdReply {
  connected: boolean;
  lastError: string;
  routerId: string;
  routers: { id: string; listen: string; admin: string }[];
  driving: boolean;
}

export interface LocatedNodeReply {
  id: string;
  address: string;
  zone: string;
  role: string;
  outgoing: boolean;
  state: string;
  breaker: string;
  lifecycle: string;
  reachable: boolean;
  error: string;
  holdsData: boolean;
  memories: number;
  tombstones: number;
  digest: string;
}

export interface LocateReply {
  spaceId: string;
  token: number;
  epoch: number;
  placement: string;
  nodes: LocatedNodeReply[];
  pendingAssignment: AssignmentReply | null | undefined;
}

export interface RepairReply {
  spaces: number;
  differed: number;
  applied: number;
  unreachable: string[];
}

// ---- JSON shapes -------------------------------------------------------------------------

/** The health verdict, and whether outlier detection has the node ejected beside it. */
function nodeState(n: NodeStatusReply): string {
  return n.ejected === true ? `${n.state} (ejected)` : n.state;
}

const assignmentJson = (a: AssignmentReply) => ({
  spaceId: a.spaceId,
  primary: a.primary,
  replicas: [...a.replicas],
});

const nodeJson = (n: NodeStatusReply) => ({
  id: n.id,
  address: n.address,
  zone: n.zone,
  state: n.state,
  ejected: n.ejected === true,
  lifecycle: n.lifecycle,
  breaker: n.breaker,
  healthLatencyMs: n.healthLatencyMs,
  hintsPending: n.hintsPending,
  hintBytesPending: n.hintBytesPending,
  repairNeeded: n.repairNeeded,
});

const streamJson = (s: StreamReply) => ({
  kind: s.kind,
  subject: s.subject,
  phase: s.phase,
  spacesTotal: s.spacesTotal,
  spacesDone: s.spacesDone,
  entriesCopied: s.entriesCopied,
  lastError: s.lastError,
});

function etcdJson(t: TableReply) {
  const e = t.etcd;
  if (e === null || e === undefined) return {};
  return {
    revision: t.revision,
    etcd: {
      connected: e.connected,
      lastError: e.lastError === '' ? null : e.lastError,
      routerId: e.routerId,
      driving: e.driving,
      routers: e.routers.map((r) => ({
        id: r.id,
        listen: r.listen,
        admin: r.admin === '' ? null : r.admin,
      })),
    },
  };
}

/** etcd mode's lines of `status`: the revision, etcd's reachability, the routers. */
function etcdFields(t: TableReply): [string, string][] {
  const e = t.etcd;
  if (e === null || e === undefined) return [];
  return [
    ['revision', String(t.revision)],
    [
      'etcd',
      `${e.connected ? 'connected' : 'UNREACHABLE (routing on the last table; admin refused)'}${
        e.lastError === '' ? '' : `; not following: ${e.lastError}`
      }`,
    ],
    ['router', `${e.routerId}${e.driving ? ' (drives data movement)' : ''}`],
    [
      'routers',
      `${e.routers.length}: ${e.routers.map((r) => `${r.id} ${r.listen}`).join(', ') || '-'}`,
    ],
  ];
}

export function statusJson(t: TableReply) {
  return {
    ...etcdJson(t),
    epoch: t.epoch,
    replicationFactor: t.replicationFactor,
    partitioned: t.partitioned,
    nodes: t.nodes.map(nodeJson),
    streams: t.streams.map(streamJson),
  };
}

export function tableJson(t: TableReply) {
  return {
    ...etcdJson(t),
    epoch: t.epoch,
    replicationFactor: t.replicationFactor,
    vnodesPerNode: t.vnodesPerNode,
    partitioned: t.partitioned,
    localNodeId: t.localNodeId === '' ? null : t.localNodeId,
    nodes: t.nodes.map(nodeJson),
    assignments: t.assignments.map(assignmentJson),
    pendingAssignments: t.pendingAssignments.map(assignmentJson),
  };
}

export function hintsJson(t: TableReply) {
  return {
    nodes: t.nodes.map((n) => ({
      id: n.id,
      hintsPending: n.hintsPending,
      hintBytesPending: n.hintBytesPending,
      repairNeeded: n.repairNeeded,
    })),
  };
}

export function whereJson(l: LocateReply) {
  return {
    spaceId: l.spaceId,
    token: l.token,
    epoch: l.epoch,
    placement: l.placement,
    nodes: l.nodes.map((n) => ({
      id: n.id,
      address: n.address,
      zone: n.zone,
      role: n.role,
      outgoing: n.outgoing,
      state: n.state,
      lifecycle: n.lifecycle,
      breaker: n.breaker,
      reachable: n.reachable,
      error: n.error,
      holdsData: n.holdsData,
      memories: n.memories,
      tombstones: n.tombstones,
      digest: n.digest,
    })),
    pendingAssignment: l.pendingAssignment == null ? null : assignmentJson(l.pendingAssignment),
  };
}

export function repairJson(r: RepairReply) {
  return {
    spaces: r.spaces,
    differed: r.differed,
    applied: r.applied,
    unreachable: [...r.unreachable],
  };
}

// ---- human output ------------------------------------------------------------------------

/** Rows under a header, columns left-aligned two spaces apart; no trailing spaces. */
export function renderTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  return all
    .map((r) =>
      r
        .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `key  value` lines, keys padded to one width. */
function fields(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

/** Bytes in binary units, one decimal above 1 KiB. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** A probe round trip: '-' before the first, else milliseconds to 2 significant decimals. */
export function formatLatency(ms: number): string {
  if (!(ms > 0)) return '-';
  return ms < 10 ? `${ms.toFixed(2)} ms` : `${Math.round(ms)} ms`;
}

const yesNo = (b: boolean) => (b ? 'yes' : 'no');
const orDash = (s: string) => (s === '' ? '-' : s);

export function renderStatus(t: TableReply): string {
  const up = t.nodes.filter((n) => n.state === 'up').length;
  const head = fields([
    ['epoch', String(t.epoch)],
    ...etcdFields(t),
    ['replication factor', String(t.replicationFactor)],
    ['partitioned', yesNo(t.partitioned)],
    ['nodes', `${t.nodes.length} (${up} up)`],
  ]);
  const nodes = renderTable(
    [
      'NODE',
      'ADDRESS',
      'ZONE',
      'STATE',
      'LIFECYCLE',
      'BREAKER',
      'HEALTH RTT',
      'HINTS',
      'HINT BYTES',
      'REPAIR NEEDED',
    ],
    t.nodes.map((n) => [
      n.id,
      n.address,
      orDash(n.zone),
      nodeState(n),
      n.lifecycle,
      n.breaker,
      formatLatency(n.healthLatencyMs),
      String(n.hintsPending),
      formatBytes(n.hintBytesPending),
      yesNo(n.repairNeeded),
    ]),
  );
  const streams =
    t.streams.length === 0
      ? 'data movement: none'
      : `data movement:\n${renderTable(
          ['KIND', 'SUBJECT', 'PHASE', 'SPACES', 'ENTRIES', 'LAST ERROR'],
          t.streams.map((s) => [
            s.kind,
            s.subject,
            s.phase,
            `${s.spacesDone}/${s.spacesTotal}`,
            String(s.entriesCopied),
            orDash(s.lastError),
          ]),
        )}`;
  return `${head}\n\n${nodes}\n\n${streams}\n`;
}

function assignments(title: string, list: readonly AssignmentReply[]): string {
  if (list.length === 0) return `${title}: none`;
  return `${title}:\n${renderTable(
    ['SPACE', 'PRIMARY', 'REPLICAS'],
    list.map((a) => [
      a.spaceId,
      a.primary === '' ? '(back to the ring)' : a.primary,
      a.replicas.join(',') || '-',
    ]),
  )}`;
}

export function renderTableView(t: TableReply): string {
  const head = fields([
    ['epoch', String(t.epoch)],
    ...etcdFields(t).slice(0, 1),
    ['replication factor', String(t.replicationFactor)],
    ['vnodes per node', String(t.vnodesPerNode)],
    ['partitioned', yesNo(t.partitioned)],
    ['local node', orDash(t.localNodeId)],
  ]);
  const nodes = renderTable(
    ['NODE', 'ADDRESS', 'ZONE', 'STATE', 'LIFECYCLE', 'BREAKER'],
    t.nodes.map((n) => [n.id, n.address, orDash(n.zone), nodeState(n), n.lifecycle, n.breaker]),
  );
  return `${head}\n\n${nodes}\n\n${assignments('assignments', t.assignments)}\n${assignments(
    'pending assignments',
    t.pendingAssignments,
  )}\n`;
}

export function renderHints(t: TableReply): string {
  return `${renderTable(
    ['NODE', 'HINTS', 'HINT BYTES', 'REPAIR NEEDED'],
    t.nodes.map((n) => [
      n.id,
      String(n.hintsPending),
      formatBytes(n.hintBytesPending),
      yesNo(n.repairNeeded),
    ]),
  )}\n`;
}

function holds(n: LocatedNodeReply): string {
  if (!n.reachable) return 'unreachable';
  return n.holdsData ? 'yes' : 'no';
}

export function renderWhere(l: LocateReply): string {
  const head = fields([
    ['space', l.spaceId],
    ['token', `${l.token} (0x${l.token.toString(16).padStart(8, '0')})`],
    ['placement', l.placement === 'pinned' ? 'pinned (assigned)' : 'ring'],
    ['epoch', String(l.epoch)],
  ]);
  const nodes = renderTable(
    [
      'ROLE',
      'NODE',
      'ADDRESS',
      'ZONE',
      'STATE',
      'LIFECYCLE',
      'BREAKER',
      'HOLDS DATA',
      'MEMORIES',
      'TOMBSTONES',
      'DIGEST',
    ],
    l.nodes.map((n) => [
      n.outgoing ? `${n.role} (outgoing)` : n.role,
      n.id,
      n.address,
      orDash(n.zone),
      n.state,
      n.lifecycle,
      n.breaker,
      holds(n),
      n.reachable ? String(n.memories) : '?',
      n.reachable ? String(n.tombstones) : '?',
      n.reachable ? orDash(n.digest) : '?',
    ]),
  );
  const errors = l.nodes.filter((n) => !n.reachable).map((n) => `${n.id}: ${n.error}`);
  const pending =
    l.pendingAssignment == null
      ? []
      : [
          l.pendingAssignment.primary === ''
            ? 'pending: the pin is being removed (back to the ring once streamed)'
            : `pending: pinned to ${[l.pendingAssignment.primary, ...l.pendingAssignment.replicas].join(',')} once streamed`,
        ];
  return `${[head, '', nodes, ...(errors.length > 0 ? ['', ...errors] : []), ...(pending.length > 0 ? ['', ...pending] : [])].join('\n')}\n`;
}

export function renderRepair(r: RepairReply, subject: string): string {
  const lines = [
    `repaired ${subject}: ${r.spaces} compared, ${r.differed} differed, ${r.applied} entries copied`,
  ];
  if (r.unreachable.length > 0) lines.push(`unreachable: ${r.unreachable.join(', ')}`);
  return `${lines.join('\n')}\n`;
}

// ---- store and recall (data listener) ----------------------------------------------------

/** StoreResponse or RecallResponse, as decoded. */
export interface DataReply {
  memoryId?: string;
  memories?: { memory?: { id: string; content: string; version: number } | null; score: number }[];
  routing?: RoutingInfo | null;
}

const routingJson = (r: RoutingInfo | null | undefined) =>
  r == null
    ? null
    : {
        servedBy: r.servedBy,
        attempts: r.attempts,
        fallback: r.fallback,
        strategy: r.strategy,
        tableEpoch: r.tableEpoch,
        acknowledged: r.acknowledged,
        asked: r.asked,
        degraded: r.degraded,
      };

export function dataJson(d: DataReply) {
  return {
    ...(d.memoryId !== undefined ? { memoryId: d.memoryId } : {}),
    ...(d.memories !== undefined
      ? {
          memories: d.memories.map((m) => ({
            id: m.memory?.id ?? '',
            content: m.memory?.content ?? '',
            version: m.memory?.version ?? 0,
            score: m.score,
          })),
        }
      : {}),
    routing: routingJson(d.routing),
  };
}

/** One line saying how the router routed the call (from the reply's RoutingInfo). */
function routingLine(r: RoutingInfo | null | undefined): string {
  if (r == null) return 'routing: none in the reply (not a router?)';
  const acks = r.asked > 0 ? `, acknowledged by ${r.acknowledged} of ${r.asked}` : '';
  const how = [r.fallback ? 'fallback' : '', r.degraded ? 'DEGRADED' : ''].filter((x) => x !== '');
  return `routing: served by ${r.servedBy} (${r.strategy}, ${r.attempts} attempt${r.attempts === 1 ? '' : 's'}${acks}${how.length > 0 ? `, ${how.join(', ')}` : ''}) at table epoch ${r.tableEpoch}`;
}

export function renderData(d: DataReply): string {
  const lines: string[] = [];
  if (d.memoryId !== undefined) lines.push(`stored memory ${d.memoryId}`);
  if (d.memories !== undefined) {
    lines.push(`${d.memories.length} memor${d.memories.length === 1 ? 'y' : 'ies'}`);
    if (d.memories.length > 0) {
      lines.push(
        renderTable(
          ['ID', 'CONTENT'],
          d.memories.map((m) => [m.memory?.id ?? '', m.memory?.content ?? '']),
        ),
      );
    }
  }
  lines.push(routingLine(d.routing));
  return `${lines.join('\n')}\n`;
}
