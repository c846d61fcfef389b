/** One measured row; `median` and `p99` are in the table's unit. */
export interface Row {
  name: string;
  median: number;
  /** NaN when the measure has no distribution (a single timed run); printed as "-". */
  p99: number;
}

/** A table: every row's ratio is its median over the `baseline` row's median. */
export interface Table {
  title: string;
  /** Unit of median and p99, e.g. `ns/op`, `µs/call`, `calls/s`. */
  unit: string;
  /** Name of the row the ratio column divides by; must be one of `rows`. */
  baseline: string;
  rows: Row[];
  /** What the unit counts when higher is better (calls/s); default false (a time or a size). */
  higherIsBetter?: boolean;
  /**
   * Names of the two number columns when they are not a distribution (a ring's balance):
   * default `['median', 'p99']`. The ratio still divides the first column.
   */
  columns?: readonly [string, string];
}

function number(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (Number.isInteger(n) && Math.abs(n) < 1e15) return n.toLocaleString('en-US');
  const abs = Math.abs(n);
  if (abs < 0.01) return n.toPrecision(2);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return n.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/**
 * Plain-text table: `name`, `median <unit>`, `p99 <unit>`, `ratio`, numbers right-aligned and
 * unquoted; the baseline row is marked `(baseline)` and a footer says which way is better.
 */
export function formatTable(table: Table): string {
  const base = table.rows.find((r) => r.name === table.baseline);
  if (base === undefined)
    throw new RangeError(`baseline "${table.baseline}" is not a row of "${table.title}"`);
  const [first, second] = table.columns ?? ['median', 'p99'];
  const unit = table.unit === '' ? '' : ` ${table.unit}`;
  const header = ['name', `${first}${unit}`, `${second}${unit}`, 'ratio'];
  const body = table.rows.map((r) => [
    r === base && !r.name.startsWith('baseline') ? `${r.name} (baseline)` : r.name,
    number(r.median),
    number(r.p99),
    `${(r.median / base.median).toFixed(2)}x`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => cells[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const better = table.higherIsBetter ? 'above 1 = more than' : 'below 1 = faster/smaller than';
  return [
    table.title,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...body.map(line),
    `ratio = ${first} / baseline ${first} (${better} the baseline)`,
  ].join('\n');
}
