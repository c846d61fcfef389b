/**
 * Renders SVG charts from the results the benches write (bench/results/*.json) into
 * bench/charts/: proxy throughput and CPU per call, proxy latency p50/p99 per path, and the
 * ring's balance against vnodes. Each chart's subtitle names the run it came from.
 * Run: pnpm bench:charts (after `npm run bench [-- --quick]`).
 *
 * echarts renders server-side to an SVG string with no DOM (`ssr: true`).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as echarts from 'echarts';

interface ResultRow {
  name: string;
  /** null when the bench recorded NaN (JSON has no NaN). */
  median: number | null;
  p99: number | null;
}
interface ResultTable {
  title: string;
  unit: string;
  baseline: string;
  rows: ResultRow[];
  columns?: [string, string];
}
interface Result {
  bench: string;
  mode: 'quick' | 'full';
  date: string;
  machine: { cpu: string; cores: number };
  node: string;
  loadavg: { start: number[]; end: number[] };
  tables: ResultTable[];
}

const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));
const CHARTS = fileURLToPath(new URL('./charts/', import.meta.url));
const WIDTH_PX = 760;
const HEIGHT_PX = 420;

function load(name: string): Result | null {
  const file = `${RESULTS}${name}.json`;
  if (!existsSync(file)) {
    console.log(`${name}: no ${file} (run npm run bench first): chart skipped`);
    return null;
  }
  return JSON.parse(readFileSync(file, 'utf8')) as Result;
}

/** "2026-12-03, Intel Xeon × 2, node v20, load 0.5→0.9, quick run" */
export function stamp(r: Result): string {
  return `${r.date.slice(0, 10)}, ${r.machine.cpu} × ${r.machine.cores}, node ${r.node}, load (1 min) ${r.loadavg.start[0]} → ${r.loadavg.end[0]}, ${r.mode} run`;
}

function table(r: Result, prefix: string): ResultTable | undefined {
  return r.tables.find((t) => t.title.startsWith(prefix));
}

const escapeXml = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function render(
  file: string,
  heading: string,
  option: echarts.EChartsCoreOption,
  height = HEIGHT_PX,
): void {
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width: WIDTH_PX, height });
  chart.setOption({ animation: false, backgroundColor: '#fff', ...option });
  // A <title> so the image has a text alternative (echarts writes none).
  const svg = chart
    .renderToSVGString()
    .replace(/^<svg[^>]*>/, (open) => `${open}<title>${escapeXml(heading)}</title>`);
  writeFileSync(`${CHARTS}${file}`, svg);
  chart.dispose();
  console.log(`wrote bench/charts/${file}`);
}

const title = (text: string, r: Result) => ({
  text,
  subtext: `run of ${stamp(r)}`,
  left: 'center',
  textStyle: { fontSize: 15 },
  subtextStyle: { fontSize: 11 },
});

/** Horizontal bars, one per row: reads better than vertical ones with long path names. */
function bars(r: Result, t: ResultTable, heading: string, file: string): void {
  const rows = t.rows.filter((row) => row.median !== null);
  render(
    file,
    heading,
    {
      title: title(heading, r),
      // Room for the longest path name (~45 characters at 12 px).
      grid: { left: 300, right: 70, top: 70, bottom: 40 },
      xAxis: { type: 'value', name: t.unit, nameLocation: 'middle', nameGap: 26 },
      yAxis: { type: 'category', data: rows.map((row) => row.name), inverse: true },
      series: [
        {
          type: 'bar',
          data: rows.map((row) => Math.round(row.median! * 10) / 10),
          label: { show: true, position: 'right' },
        },
      ],
    },
    Math.max(240, 110 + rows.length * 38),
  );
}

function proxy(r: Result): void {
  const throughput = table(r, 'Throughput');
  if (throughput)
    bars(r, throughput, 'Proxy throughput, 64 in flight (calls/s)', 'proxy-throughput.svg');
  const cpu = table(r, 'Proxy CPU');
  if (cpu) bars(r, cpu, 'Proxy CPU per call, 64 in flight (µs/call)', 'proxy-cpu.svg');

  const modes = [
    ['Latency, sequential', 'sequential'],
    ['Latency, 64 in flight', '64 in flight'],
    ['Latency at a fixed', 'fixed rate'],
  ] as const;
  const present = modes.flatMap(([prefix, label]) => {
    const t = table(r, prefix);
    return t ? [{ t, label }] : [];
  });
  if (present.length === 0) return;
  const paths = present[0]!.t.rows.map((row) => row.name);
  const value = (t: ResultTable, path: string, stat: 'median' | 'p99') =>
    t.rows.find((row) => row.name === path)?.[stat] ?? null;
  // Points, not bars: bars on a log axis grow from 1, which would draw sub-millisecond values
  // leftwards.
  const heading = 'Proxy latency per path: p50 (solid) and p99 (light), ms per call';
  render(
    'proxy-latency.svg',
    heading,
    {
      title: title(heading, r),
      legend: {
        bottom: 0,
        width: '90%',
        itemGap: 18,
        data: present.flatMap(({ label }) => [`${label} p50`, `${label} p99`]),
      },
      grid: { left: 300, right: 40, top: 70, bottom: 110 },
      xAxis: { type: 'log', name: 'ms/call (log)', nameLocation: 'middle', nameGap: 28 },
      yAxis: { type: 'category', data: paths, inverse: true },
      series: present.flatMap(({ t, label }, i) =>
        (['median', 'p99'] as const).map((stat) => ({
          name: `${label} ${stat === 'median' ? 'p50' : 'p99'}`,
          type: 'scatter',
          symbolSize: 11,
          data: paths.map((p) => value(t, p, stat)),
          itemStyle: {
            color: ['#5470c6', '#91cc75', '#ee6666'][i],
            opacity: stat === 'p99' ? 0.4 : 1,
          },
        })),
      ),
    },
    Math.max(360, 190 + paths.length * 60),
  );
}

function ring(r: Result): void {
  const balance = table(r, 'Balance');
  if (!balance) return;
  const ours = balance.rows.filter((row) => /^ours, \d+ vnodes/.test(row.name));
  const vnodes = ours.map((row) => /(\d+) vnodes/.exec(row.name)![1]!);
  const baseline = balance.rows.find((row) => row.name === balance.baseline);
  const line = (name: string, data: Array<number | null>) => ({
    name,
    type: 'line',
    data,
    symbolSize: 8,
  });
  const heading = 'Ring balance against vnodes per node (100 nodes; 1.00 = perfect)';
  render('ring-balance.svg', heading, {
    title: title(heading, r),
    legend: { bottom: 0, width: '90%', itemGap: 24 },
    grid: { left: 70, right: 40, top: 80, bottom: 80 },
    xAxis: {
      type: 'category',
      data: vnodes,
      name: 'vnodes per node',
      nameLocation: 'middle',
      nameGap: 28,
    },
    yAxis: { type: 'value', name: 'max / mean', min: 1, nameLocation: 'middle', nameGap: 45 },
    series: [
      line(
        'primaries max/mean (keys)',
        ours.map((row) => row.median),
      ),
      line(
        'owned token share max/mean',
        ours.map((row) => row.p99),
      ),
      ...(baseline?.median != null
        ? [
            line(
              `${baseline.name}, primaries`,
              ours.map(() => baseline.median),
            ),
          ]
        : []),
    ],
  });
}

mkdirSync(CHARTS, { recursive: true });
const proxyResult = load('proxy');
if (proxyResult) proxy(proxyResult);
const ringResult = load('ring');
if (ringResult) ring(ringResult);
