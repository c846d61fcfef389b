/**
 * deploy/monitoring, checked as Prometheus and Grafana would take it:
 *   - `promtool check rules` on alerts.yml, and `promtool test rules` on alerts.test.yml (each
 *     alert fires on its input, not on a healthy router's); promtool comes from Debian's
 *     `prometheus` package, installed here when missing (the test skips, saying why, only
 *     when it cannot be installed);
 *   - the dashboard's structure (a Prometheus datasource variable, no hard-coded datasource,
 *     queries on every panel), and every query parsed by promtool as a recording rule;
 *   - every metric name the rules and the dashboard use, against a real router-node's
 *     /metrics (memory node and router started as processes on 127.0.0.1, stopped after).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type SpawnedMemoryNode, spawnMemoryNode } from '@engram/memory-node/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MONITORING = join(ROOT, 'deploy', 'monitoring');
const ROUTER_MAIN = join(ROOT, 'apps', 'router-node', 'dist', 'main.js');
const ALERTS = readFileSync(join(MONITORING, 'alerts.yml'), 'utf8');
const ALERT_TESTS = readFileSync(join(MONITORING, 'alerts.test.yml'), 'utf8');
const DASHBOARD_TEXT = readFileSync(join(MONITORING, 'grafana-dashboard.json'), 'utf8');

const APT_TIMEOUT_MS = 10 * 60 * 1000; // 10 min: a cold apt-get update + install (hang detector)
const APT_LOCK_WAIT_S = 300; // another apt run (a parallel install) may hold the dpkg lock
const PROMTOOL_TIMEOUT_MS = 60 * 1000;
const NODE_STOP_TIMEOUT_MS = 5 * 1000; // SIGTERM grace before SIGKILL
const CALL_TIMEOUT_MS = 10 * 1000;

/** Grafana's own variables, and what they are replaced with to parse a query. */
const GRAFANA_BUILTINS: Readonly<Record<string, string>> = {
  __rate_interval: '5m',
  __interval: '1m',
  __range: '1h',
};

// ---- promtool ----------------------------------------------------------------------------

async function promtoolVersion(): Promise<string | null> {
  try {
    const { stdout, stderr } = await run('promtool', ['--version'], { timeout: 30_000 });
    return (stdout || stderr).split('\n')[0] ?? '';
  } catch {
    return null;
  }
}

/** apt-get as root, or through `sudo -n`; null when neither is possible here. */
function aptCommand(): string[] | null {
  if (process.getuid?.() === 0) return ['apt-get'];
  return ['sudo', '-n', 'apt-get'];
}

/**
 * promtool on PATH, installing Debian's `prometheus` package (which provides it) when missing.
 * Resolves with why it is unavailable, or null once it runs.
 */
async function ensurePromtool(): Promise<string | null> {
  if ((await promtoolVersion()) !== null) return null;
  const apt = aptCommand();
  if (apt === null) return 'promtool is not on PATH and apt-get is not available';
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const aptRun = (args: string[]) =>
    run(apt[0]!, [...apt.slice(1), '-o', `DPkg::Lock::Timeout=${APT_LOCK_WAIT_S}`, ...args], {
      env,
      timeout: APT_TIMEOUT_MS,
      maxBuffer: 64 * 1024 * 1024,
    });
  const install = ['install', '-y', '--no-install-recommends', 'prometheus'];
  const errors: string[] = [];
  try {
    await aptRun(install);
  } catch (first) {
    errors.push(String((first as Error).message));
    // A fresh machine's package lists may be missing or stale.
    try {
      await aptRun(['update']);
      await aptRun(install);
    } catch (second) {
      errors.push(String((second as Error).message));
    }
  }
  if ((await promtoolVersion()) !== null) return null;
  return `promtool is not on PATH and \`${apt.join(' ')} install -y prometheus\` failed: ${errors.join(' / ')}`;
}

let promtoolMissing: string | null = null;

// ---- the rules and the dashboard ---------------------------------------------------------

interface Target {
  readonly refId?: string;
  readonly expr?: string;
  readonly datasource?: { type?: string; uid?: string };
}
interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly datasource?: { type?: string; uid?: string };
  readonly targets?: Target[];
  readonly gridPos?: { h: number; w: number; x: number; y: number };
  readonly panels?: Panel[];
}
interface TemplateVar {
  readonly name: string;
  readonly type: string;
  readonly query?: string | { query: string };
  readonly datasource?: { type?: string; uid?: string };
}
interface Dashboard {
  readonly title: string;
  readonly uid: string;
  readonly schemaVersion: number;
  readonly panels: Panel[];
  readonly templating: { list: TemplateVar[] };
  readonly annotations?: { list: { expr?: string; datasource?: { uid?: string } }[] };
  readonly __inputs?: unknown;
}

const dashboard = JSON.parse(DASHBOARD_TEXT) as Dashboard;

function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}
const panels = allPanels(dashboard.panels);
const queryPanels = panels.filter((p) => p.type !== 'row');
const DATASOURCE_VAR = dashboard.templating.list.find((v) => v.type === 'datasource');
const DS_REF = DATASOURCE_VAR === undefined ? '' : `\${${DATASOURCE_VAR.name}}`;

const varQuery = (v: TemplateVar): string =>
  typeof v.query === 'string' ? v.query : (v.query?.query ?? '');

/** Every PromQL text of the dashboard: panel targets, annotations, variable queries. */
function dashboardQueries(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of queryPanels) {
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: t.expr ?? '' });
  }
  for (const a of dashboard.annotations?.list ?? []) {
    if (a.expr !== undefined) out.push({ where: 'annotation', expr: a.expr });
  }
  for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
    // label_values(selector, label): the selector is PromQL.
    const m = /^label_values\((.*),\s*\w+\)$/s.exec(varQuery(v));
    out.push({ where: `variable $${v.name}`, expr: m?.[1] ?? varQuery(v) });
  }
  return out;
}

/** A query with Grafana's variables replaced by values PromQL parses (`$job` → `.*`). */
function substituteVariables(expr: string): string {
  return expr.replace(/\$\{?(\w+)\}?/g, (_, name: string) => GRAFANA_BUILTINS[name] ?? '.*');
}

/** Alert rule blocks of alerts.yml (its own fixed layout: `- alert: Name` then the rule). */
function alertBlocks(): { name: string; text: string }[] {
  return ALERTS.split(/\n(?=[ \t]+- alert: )/)
    .slice(1)
    .map((text) => ({ name: /- alert: (\S+)/.exec(text)![1]!, text }));
}

const METRIC_NAME = /\b(?:engram_router|process|nodejs)_[a-zA-Z0-9_]+\b/g;
/** Identifiers used as selectors (`name{`), whatever their prefix. */
const SELECTOR_NAME = /([a-zA-Z_:][a-zA-Z0-9_:]*)\{/g;

function metricNames(text: string): Set<string> {
  const names = new Set(text.match(METRIC_NAME) ?? []);
  for (const m of text.matchAll(SELECTOR_NAME)) names.add(m[1]!);
  return names;
}

// ---- a real router-node ------------------------------------------------------------------

let temp = '';
let memoryNode: SpawnedMemoryNode | null = null;
let router: ChildProcess | null = null;

async function startRouter(): Promise<{ port: number; metricsPort: number }> {
  memoryNode = await spawnMemoryNode({ id: 'n1', zone: 'a' });
  const config = join(temp, 'router.json');
  writeFileSync(
    config,
    JSON.stringify({
      nodes: [{ id: 'n1', address: memoryNode.address, zone: 'a' }],
      listen: { host: '127.0.0.1', port: 0 },
      admin: { enabled: false },
      metrics: { host: '127.0.0.1', port: 0 },
      workers: 1,
      logLevel: 'warn',
    }),
  );
  const child = spawn(process.execPath, [ROUTER_MAIN, '--config', config], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  router = child;
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`router-node exited (${code})`));
    child.once('exit', onExit);
    createInterface({ input: child.stdout! }).once('line', (line) => {
      child.off('exit', onExit);
      resolve(JSON.parse(line) as { port: number; metricsPort: number });
    });
  });
}

async function stopRouter(): Promise<void> {
  const child = router;
  router = null;
  if (child === null || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** A Recall through the router (raw HTTP/2 gRPC), so per-node upstream series exist. */
function recall(port: number, spaceId: string): Promise<void> {
  const space = Buffer.from(spaceId);
  const cue = Buffer.from([0x0a, 1, 0x78]); // Cue { text: "x" }
  const message = Buffer.concat([
    Buffer.from([0x0a, space.length]),
    space,
    Buffer.from([0x12, cue.length]),
    cue,
  ]);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({
      ':method': 'POST',
      ':path': '/engram.v1.MemoryService/Recall',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    req.setTimeout(CALL_TIMEOUT_MS, () => req.close(http2.constants.NGHTTP2_CANCEL));
    req.on('trailers', (trailers) => {
      if (trailers['grpc-status'] !== '0') reject(new Error(`Recall: ${JSON.stringify(trailers)}`));
    });
    req.on('data', () => {});
    req.on('error', reject);
    req.on('close', () => {
      session.close();
      resolve();
    });
    req.end(frame);
  });
}

let scrapedNames = new Set<string>();

beforeAll(async () => {
  temp = mkdtempSync(join(tmpdir(), 'engram-monitoring-'));
  promtoolMissing = await ensurePromtool();
  if (promtoolMissing !== null) console.warn(`promtool tests skipped: ${promtoolMissing}`);
  const { port, metricsPort } = await startRouter();
  for (let i = 0; i < 4; i++) await recall(port, `monitoring-${i}`);
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  const text = await res.text();
  scrapedNames = new Set(
    text
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0]),
  );
}, APT_TIMEOUT_MS * 3);

afterAll(async () => {
  await stopRouter();
  await memoryNode?.stop(NODE_STOP_TIMEOUT_MS);
  if (temp !== '') rmSync(temp, { recursive: true, force: true });
});

describe('alert rules (deploy/monitoring/alerts.yml)', () => {
  it('pass promtool check rules', async (ctx) => {
    if (promtoolMissing !== null) ctx.skip(promtoolMissing);
    const { stdout } = await run('promtool', ['check', 'rules', 'alerts.yml'], {
      cwd: MONITORING,
      timeout: PROMTOOL_TIMEOUT_MS,
    });
    expect(stdout).toContain(`SUCCESS: ${alertBlocks().length} rules found`);
  });

  it('pass their promtool unit tests: each alert fires on its input, none on a healthy router', async (ctx) => {
    if (promtoolMissing !== null) ctx.skip(promtoolMissing);
    const { stdout } = await run('promtool', ['test', 'rules', 'alerts.test.yml'], {
      cwd: MONITORING,
      timeout: PROMTOOL_TIMEOUT_MS,
    });
    expect(stdout).toContain('SUCCESS');
  });

  it('are each tested firing and quiet, with a severity, a summary, a description and a runbook', () => {
    const alerts = alertBlocks();
    expect(alerts.map((a) => a.name)).toEqual(
      expect.arrayContaining([
        'EngramRouterBreakerOpen',
        'EngramRouterNodeDown',
        'EngramRouterHintsGrowing',
        'EngramRouterHintBacklogLarge',
        'EngramRouterPartitioned',
        'EngramRouterHighErrorRatio',
        'EngramRouterWorkerRestarts',
        'EngramRouterConfigReloadFailed',
      ]),
    );
    // promtool passes a test of an alert name that does not exist (it expects no alerts):
    // every name the tests use must be a rule, and every rule must be seen firing.
    const tested = new Set([...ALERT_TESTS.matchAll(/alertname: (\w+)/g)].map((m) => m[1]!));
    const firing = new Set(
      [...ALERT_TESTS.matchAll(/alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels:/g)].map(
        (m) => m[1]!,
      ),
    );
    const healthy = ALERT_TESTS.slice(ALERT_TESTS.indexOf('a healthy router'));
    for (const a of alerts) {
      expect(firing, `${a.name} is tested firing`).toContain(a.name);
      expect(healthy, `${a.name} is tested quiet on a healthy router`).toContain(
        `alertname: ${a.name} }`,
      );
      expect(a.text, a.name).toMatch(/\n\s+severity: (warning|critical)\n/);
      for (const annotation of ['summary', 'description', 'runbook']) {
        expect(a.text, `${a.name} ${annotation}`).toMatch(new RegExp(`\\n\\s+${annotation}: "`));
      }
    }
    for (const name of tested) expect(alerts.map((a) => a.name)).toContain(name);
  });
});

describe('Grafana dashboard (deploy/monitoring/grafana-dashboard.json)', () => {
  it('picks its Prometheus data source by a variable: no hard-coded datasource anywhere', () => {
    expect(dashboard.title).toBeTruthy();
    expect(dashboard.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    expect(dashboard.schemaVersion).toBeGreaterThan(30);
    expect(dashboard.__inputs).toBeUndefined();
    expect(DATASOURCE_VAR).toMatchObject({ type: 'datasource', query: 'prometheus' });
    // Every datasource reference in the file is the variable, so import asks for nothing.
    const uids = [...DASHBOARD_TEXT.matchAll(/"uid":\s*"([^"]*)"/g)].map((m) => m[1]);
    expect(uids.filter((u) => u !== DS_REF && u !== dashboard.uid)).toEqual([]);
    for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
      expect(v.datasource, `variable ${v.name}`).toEqual({ type: 'prometheus', uid: DS_REF });
    }
  });

  it('has queries on every panel, each with the datasource variable, and a layout that fits', () => {
    expect(queryPanels.length).toBeGreaterThan(20);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const defined = new Set([
      ...dashboard.templating.list.map((v) => v.name),
      ...Object.keys(GRAFANA_BUILTINS),
    ]);
    for (const p of panels) {
      expect(p.gridPos, p.title).toBeDefined();
      expect(p.gridPos!.x + p.gridPos!.w, p.title).toBeLessThanOrEqual(24);
    }
    for (const p of queryPanels) {
      expect(p.title, `panel ${p.id}`).toBeTruthy();
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: DS_REF });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, p.title).toBe(refIds.length);
      for (const t of p.targets!) {
        expect(t.datasource, p.title).toEqual({ type: 'prometheus', uid: DS_REF });
        expect(t.expr?.trim(), p.title).toBeTruthy();
        for (const m of t.expr!.matchAll(/\$\{?(\w+)\}?/g)) {
          expect(defined, `${p.title}: $${m[1]}`).toContain(m[1]);
        }
      }
    }
  });

  it('has panels for traffic, errors, latency, nodes, breakers, hints, partition, epoch, workers, process and config', () => {
    const exprs = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? '')).join('\n');
    for (const name of [
      'engram_router_request_duration_seconds_count',
      'engram_router_request_duration_seconds_bucket',
      'engram_router_node_up',
      'engram_router_breaker_state',
      'engram_router_breaker_transitions_total',
      'engram_router_upstream_requests_total',
      'engram_router_upstream_request_duration_seconds_bucket',
      'engram_router_hints_pending',
      'engram_router_health_probe_failures_total',
      'engram_router_partitioned',
      'engram_router_table_epoch',
      'engram_router_workers',
      'engram_router_worker_restarts_total',
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'engram_router_thread_heap_used_bytes',
      'engram_router_config_reloads_total',
    ]) {
      expect(exprs, name).toContain(name);
    }
    expect(exprs).toMatch(/histogram_quantile\(0\.5,/);
    expect(exprs).toMatch(/histogram_quantile\(0\.99,/);
  });

  it('has queries that parse as PromQL (promtool, each as a recording rule)', async (ctx) => {
    if (promtoolMissing !== null) ctx.skip(promtoolMissing);
    const queries = dashboardQueries();
    const rules = [
      'groups:',
      '  - name: dashboard-queries',
      '    rules:',
      ...queries.flatMap((q, i) => [
        `      - record: dashboard_query_${i}`,
        `        expr: ${JSON.stringify(substituteVariables(q.expr))}`,
      ]),
    ].join('\n');
    const file = join(temp, 'dashboard-queries.yml');
    writeFileSync(file, `${rules}\n`);
    const result = await run('promtool', ['check', 'rules', file], {
      timeout: PROMTOOL_TIMEOUT_MS,
    }).catch((err: { stdout?: string; stderr?: string }) => ({
      stdout: `${err.stdout ?? ''}${err.stderr ?? ''}`,
    }));
    expect(result.stdout).toContain(`SUCCESS: ${queries.length} rules found`);
  });
});

describe('metric names in the rules and the dashboard', () => {
  it('are all exported by a real router-node', () => {
    expect(scrapedNames.size).toBeGreaterThan(20);
    const allowed = scrapedNames;
    const used = [
      ...[...metricNames(ALERTS)].map((name) => ({ name, where: 'alerts.yml' })),
      ...dashboardQueries().flatMap((q) =>
        [...metricNames(q.expr)].map((name) => ({ name, where: q.where })),
      ),
    ];
    expect(new Set(used.map((u) => u.name)).size).toBeGreaterThan(25);
    expect(used.filter((u) => !allowed.has(u.name))).toEqual([]);
  });
});
