/**
 * The pure part of the gray-failure bench (`gray-failures.ts`): the call log the load process
 * hands back, percentiles, Prometheus text parsed into series, "serving since" over a call
 * log, and the side-by-side table of figures per router build. No I/O, no clocks.
 */

/** gRPC status codes the bench names (grpc-js `status`). */
export const GRPC_OK = 0;

/** Operations in a call log's `op` column. */
export const OP = Object.freeze({ recall: 0, store: 1 } as const);

/**
 * Every call of one load run, one entry per call in each column (columns keep the IPC message
 * small: ~40k calls a run). Times are wall-clock ms (`performance.timeOrigin + now()`), the same
 * clock in every process on the machine.
 */
export interface CallLog {
  /** When the call was sent, wall-clock ms. */
  readonly t0: number[];
  /** Its latency, ms (to its reply or error). */
  readonly ms: number[];
  /** Its gRPC status (0 OK). */
  readonly code: number[];
  /** `OP.recall` or `OP.store`. */
  readonly op: number[];
  /** Index into the run's space ids. */
  readonly space: number[];
  /** Index into the run's node ids of RoutingInfo.served_by; -1: no reply, or not named. */
  readonly served: number[];
  /**
   * How late the call was sent against the fixed-rate schedule, ms: the load process's own
   * lag (a starved machine shows here before it shows anywhere else).
   */
  readonly late: number[];
}

export function emptyLog(): CallLog {
  return { t0: [], ms: [], code: [], op: [], space: [], served: [], late: [] };
}

/** Nearest-rank percentile of ascending `sorted` (p in 0..1); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil(p * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** Median of `values` (any order); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const v = [...values].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** Which calls of a log a figure looks at. */
export interface CallFilter {
  /** Sent at or after (wall-clock ms). */
  readonly from?: number;
  /** Sent before (wall-clock ms). */
  readonly to?: number;
  readonly op?: number;
  /** Only these space indexes. */
  readonly spaces?: ReadonlySet<number>;
}

/** Indexes of the calls `filter` keeps. */
export function select(log: CallLog, filter: CallFilter): number[] {
  const out: number[] = [];
  const from = filter.from ?? Number.NEGATIVE_INFINITY;
  const to = filter.to ?? Number.POSITIVE_INFINITY;
  for (let i = 0; i < log.t0.length; i++) {
    const t = log.t0[i]!;
    if (t < from || t >= to) continue;
    if (filter.op !== undefined && log.op[i] !== filter.op) continue;
    if (filter.spaces !== undefined && !filter.spaces.has(log.space[i]!)) continue;
    out.push(i);
  }
  return out;
}

/** Latency and errors of a set of calls. */
export interface LatencySummary {
  readonly calls: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Calls that did not end OK. */
  readonly errors: number;
  /** Errors by gRPC status code. */
  readonly byCode: ReadonlyMap<number, number>;
  /** p99 of how late the calls were sent (the load process's lag), ms. */
  readonly lateP99Ms: number;
}

/** p50/p99/max over every call in `indexes` (failed ones too: a client waited for them). */
export function summarize(log: CallLog, indexes: readonly number[]): LatencySummary {
  const ms = indexes.map((i) => log.ms[i]!).sort((a, b) => a - b);
  const byCode = new Map<number, number>();
  let errors = 0;
  for (const i of indexes) {
    const c = log.code[i]!;
    if (c === GRPC_OK) continue;
    errors++;
    byCode.set(c, (byCode.get(c) ?? 0) + 1);
  }
  const late = indexes.map((i) => log.late[i]!).sort((a, b) => a - b);
  return {
    lateP99Ms: percentile(late, 0.99),
    calls: ms.length,
    p50Ms: percentile(ms, 0.5),
    p99Ms: percentile(ms, 0.99),
    maxMs: ms.length === 0 ? Number.NaN : ms[ms.length - 1]!,
    errors,
    byCode,
  };
}

/**
 * Each space's primary as the calls saw it: the node that served most of its OK Recalls among
 * `indexes` (with no fault, a router reading in placement order serves each space from its
 * first replica). Spaces with no served call are absent.
 */
export function primariesOf(log: CallLog, indexes: readonly number[]): Map<number, number> {
  const counts = new Map<number, Map<number, number>>();
  for (const i of indexes) {
    if (log.code[i] !== GRPC_OK || log.served[i]! < 0) continue;
    const space = log.space[i]!;
    const by = counts.get(space) ?? new Map<number, number>();
    by.set(log.served[i]!, (by.get(log.served[i]!) ?? 0) + 1);
    counts.set(space, by);
  }
  const out = new Map<number, number>();
  for (const [space, by] of counts) {
    let best = -1;
    let bestCount = -1;
    for (const [node, n] of by) {
      if (n > bestCount || (n === bestCount && node < best)) {
        best = node;
        bestCount = n;
      }
    }
    out.set(space, best);
  }
  return out;
}

/** Share of the calls in `indexes` served by each node index (OK calls only), summing to 1. */
export function servedShares(log: CallLog, indexes: readonly number[]): Map<number, number> {
  const by = new Map<number, number>();
  let total = 0;
  for (const i of indexes) {
    if (log.code[i] !== GRPC_OK || log.served[i]! < 0) continue;
    by.set(log.served[i]!, (by.get(log.served[i]!) ?? 0) + 1);
    total++;
  }
  for (const [node, n] of by) by.set(node, n / total);
  return by;
}

export interface ServingOptions {
  /** The node whose calls are counted. */
  readonly node: number;
  /** Calls looked at (e.g. Recalls of the node's primary spaces, from its restart on). */
  readonly indexes: readonly number[];
  /** Start of the first bucket, wall-clock ms. */
  readonly from: number;
  /** End of the last bucket, wall-clock ms. */
  readonly to: number;
  readonly bucketMs: number;
  /** A bucket counts as serving when at least this share of its calls was served by `node`. */
  readonly minShare: number;
}

/**
 * The start of the first bucket from which every later bucket with calls (up to `to`) had at
 * least `minShare` of its calls served by `node`: when the node was back for good. NaN when the
 * last bucket with calls was not serving (not back by `to`). A bucket with no call does not
 * break the run.
 */
export function servingSince(log: CallLog, o: ServingOptions): number {
  const buckets = Math.max(1, Math.ceil((o.to - o.from) / o.bucketMs));
  const total = new Array<number>(buckets).fill(0);
  const mine = new Array<number>(buckets).fill(0);
  for (const i of o.indexes) {
    const t = log.t0[i]!;
    if (t < o.from || t >= o.to) continue;
    const b = Math.floor((t - o.from) / o.bucketMs);
    total[b]!++;
    if (log.code[i] === GRPC_OK && log.served[i] === o.node) mine[b]!++;
  }
  let since = Number.NaN;
  for (let b = buckets - 1; b >= 0; b--) {
    if (total[b] === 0) continue;
    if (mine[b]! / total[b]! < o.minShare) break;
    since = o.from + b * o.bucketMs;
  }
  return since;
}

/** First call in `indexes` sent at or after `from` that `node` served OK; NaN when none. */
export function firstServed(
  log: CallLog,
  indexes: readonly number[],
  node: number,
  from: number,
): number {
  let first = Number.NaN;
  for (const i of indexes) {
    const t = log.t0[i]!;
    if (t < from || log.code[i] !== GRPC_OK || log.served[i] !== node) continue;
    if (!(t >= first)) first = t;
  }
  return first;
}

/** Prometheus text exposition as `series → value` (`name{labels}` exactly as written). */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    if (cut <= 0) continue;
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return out;
}

/** Sum of the series named `name` whose labels include every pair of `labels`. */
export function metricSum(
  series: ReadonlyMap<string, number>,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const [key, value] of series) {
    const brace = key.indexOf('{');
    const base = brace < 0 ? key : key.slice(0, brace);
    if (base !== name) continue;
    const inner = brace < 0 ? '' : key.slice(brace + 1, -1);
    const pairs = inner === '' ? [] : inner.split(/,(?=[a-zA-Z_]+=")/);
    if (want.every((w) => pairs.includes(w))) sum += value;
  }
  return sum;
}

/** One figure of the comparison: its values over the rounds, per build. */
export interface Figure {
  /** What it is, with its unit: `restart: listen → serving, ms`. */
  readonly name: string;
  /** Values over the rounds, one array per build (the table's build order). */
  readonly values: readonly (readonly number[])[];
  /** Decimals printed (default 1). */
  readonly digits?: number;
}

function fmt(n: number, digits: number): string {
  if (Number.isNaN(n)) return '-';
  if (!Number.isFinite(n)) return n > 0 ? '∞' : '-∞';
  return n.toFixed(digits);
}

/**
 * The figures as one plain-text table: per build the median over the rounds and its min–max,
 * then the ratio of the last build's median to the first's (current / baseline) when there
 * are two or more builds. NaN values (a figure a round could not measure) are left out of the
 * median and counted in a `n/a` note.
 */
export function formatFigures(builds: readonly string[], figures: readonly Figure[]): string {
  const header = ['figure', ...builds.flatMap((b) => [`${b} median`, 'min–max'])];
  const compare = builds.length >= 2;
  if (compare) header.push(`ratio ${builds[builds.length - 1]}/${builds[0]}`);
  const body = figures.map((f) => {
    const digits = f.digits ?? 1;
    const medians: number[] = [];
    const cells = [f.name];
    for (let b = 0; b < builds.length; b++) {
      const all = f.values[b] ?? [];
      const known = all.filter((v) => !Number.isNaN(v));
      const m = median(known);
      medians.push(m);
      const missing = all.length - known.length;
      cells.push(`${fmt(m, digits)}${missing > 0 ? ` (${missing} n/a)` : ''}`);
      cells.push(
        known.length === 0
          ? '-'
          : `${fmt(Math.min(...known), digits)}–${fmt(Math.max(...known), digits)}`,
      );
    }
    if (compare) {
      const base = medians[0]!;
      const cur = medians[medians.length - 1]!;
      cells.push(
        base === 0 && cur === 0
          ? '1.00x'
          : Number.isFinite(cur / base)
            ? `${(cur / base).toFixed(2)}x`
            : '-',
      );
    }
    return cells;
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((c) => c[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
