import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { join } from 'node:path';
import { buildRing } from '@engram/ring';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.js';
import { liveRoute, readiness } from '../src/internal/probes-http.js';
import { checkExposition } from './exposition-check.js';
import {
  admin,
  adminClient,
  Cleanup,
  call,
  eventually,
  memoryClient,
  metricValue,
  scrape,
  spawnRouter,
  startSlowNode,
  TEST_DOWN_WINDOW_MS,
  TEST_HEALTH,
  tempDir,
  testConfig,
} from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

async function cluster(count = 3): Promise<LocalCluster> {
  const c = await LocalCluster.start(count, 2);
  cleanup.add(() => c.stop());
  return c;
}

function primaryOf(c: LocalCluster, spaceId: string): string {
  return buildRing({ nodes: c.configs, vnodesPerNode: 256 }).lookup(spaceId).primary.id;
}

/** GET a path of the metrics listener: status and body. */
function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(`http://127.0.0.1:${port}${path}`, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

/** The value of the one sample of `name` whose labels contain every `match`; NaN when none. */
function only(text: string, name: string, ...match: string[]): number {
  const lines = text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .filter((l) => match.every((m) => l.includes(m)));
  if (lines.length !== 1) return Number.NaN;
  return Number(lines[0]!.slice(lines[0]!.lastIndexOf(' ') + 1));
}

/** `promtool check metrics` on a scrape, when promtool is installed (Debian: prometheus). */
function promtool(text: string): string | null {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
  } catch {
    return null;
  }
  const file = join(tempDir(cleanup), 'scrape.prom');
  writeFileSync(file, text);
  // Exits non-zero (execFileSync throws with its output) on any format or lint problem.
  try {
    return execFileSync('sh', ['-c', `promtool check metrics < '${file}' 2>&1`], {
      encoding: 'utf8',
    });
  } catch (err) {
    // Exit 1 on a lint or format problem: the output says which.
    return String((err as { stdout?: unknown }).stdout ?? err);
  }
}

describe('operator metrics', () => {
  it('a scrape carries process, build, thread-heap and per-node upstream families, and parses strictly', async () => {
    const c = await cluster();
    // Placement order for reads: the per-node counts below are checked against each space's
    // primary, which least-request balancing would trade for a replica under
    // these 60 concurrent calls.
    const router = await spawnRouter(
      cleanup,
      testConfig({ nodes: c.configs, workers: 2, router: { readBalancing: 'placement' } }),
    );
    const clients = Array.from({ length: 6 }, () => memoryClient(cleanup, router.address, true));
    const calls = 60;
    await Promise.all(
      Array.from({ length: calls }, (_, i) =>
        call(clients[i % clients.length]!, 'recall', { spaceId: `u${i}`, cue: { text: 'x' } }),
      ),
    );
    // Workers write their heap every second: wait for both (generous on a busy machine).
    const text = await eventually(
      async () => {
        const t = await scrape(router.metricsPort);
        return t.includes('thread="worker-0"') && t.includes('thread="worker-1"') ? t : undefined;
      },
      20_000,
      200,
    );
    const { problems, families } = checkExposition(text);
    expect(problems).toEqual([]);

    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'process_open_fds',
      'process_start_time_seconds',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(families.get(name)?.samples.length, name).toBeGreaterThan(0);
    }
    expect(families.get('nodejs_gc_duration_seconds')?.type).toBe('histogram');
    expect(only(text, 'process_resident_memory_bytes')).toBeGreaterThan(10 * 1024 * 1024);
    expect(only(text, 'process_start_time_seconds')).toBeGreaterThan(Date.now() / 1000 - 600);

    expect(
      only(
        text,
        'engram_router_build_info',
        `version="${VERSION}"`,
        `node_version="${process.version}"`,
      ),
    ).toBe(1);

    for (const thread of ['main', 'worker-0', 'worker-1']) {
      const used = only(text, 'engram_router_thread_heap_used_bytes', `thread="${thread}"`);
      const total = only(text, 'engram_router_thread_heap_total_bytes', `thread="${thread}"`);
      expect(used, thread).toBeGreaterThan(1024 * 1024);
      expect(total, thread).toBeGreaterThanOrEqual(used);
      expect(
        only(text, 'engram_router_thread_external_bytes', `thread="${thread}"`),
      ).toBeGreaterThan(0);
    }

    // One attempt per Recall (every node up): the per-node OK counts add up to the calls, each
    // node got the Recalls of the spaces it is primary for, and each attempt has a duration.
    let sum = 0;
    for (const n of c.configs) {
      const expected = Array.from({ length: calls }, (_, i) => `u${i}`).filter(
        (s) => primaryOf(c, s) === n.id,
      ).length;
      const ok = only(
        text,
        'engram_router_upstream_requests_total',
        `node="${n.id}"`,
        'grpc_status="OK"',
      );
      expect(ok, n.id).toBe(expected);
      expect(
        only(text, 'engram_router_upstream_request_duration_seconds_count', `node="${n.id}"`),
      ).toBe(expected);
      expect(
        only(text, 'engram_router_upstream_request_duration_seconds_sum', `node="${n.id}"`),
      ).toBeGreaterThan(0);
      sum += ok;
      expect(only(text, 'engram_router_node_up', `node="${n.id}"`)).toBe(1);
      expect(
        only(text, 'engram_router_node_lifecycle', `node="${n.id}"`, 'lifecycle="active"'),
      ).toBe(1);
      expect(metricValue(text, 'engram_router_node_lifecycle', `node="${n.id}"`)).toBe(1);
      expect(only(text, 'engram_router_health_probe_failures_total', `node="${n.id}"`)).toBe(0);
      const probeS = only(text, 'engram_router_health_probe_duration_seconds', `node="${n.id}"`);
      expect(probeS).toBeGreaterThan(0);
      expect(probeS).toBeLessThanOrEqual(TEST_HEALTH.timeoutMs / 1000);
      expect(metricValue(text, 'engram_router_breaker_transitions_total', `node="${n.id}"`)).toBe(
        0,
      );
    }
    expect(sum).toBe(calls);
    // Every decision was timed: counted once per call, into the sub-microsecond buckets too.
    expect(metricValue(text, 'engram_router_decision_duration_seconds_count')).toBe(calls);
    expect(text).toContain('engram_router_decision_duration_seconds_bucket{le="5e-8"}');

    const checked = promtool(text);
    if (checked === null) {
      console.warn('promtool not installed (Debian package prometheus): promtool check skipped');
    } else {
      // Its only remarks are lint about three gauges prom-client names with _total (its
      // standard names, which Node.js dashboards query): anything else fails.
      const remarks = checked
        .trim()
        .split('\n')
        .filter((l) => l !== '');
      expect(remarks).toEqual(
        ['handles', 'requests', 'resources'].map(
          (k) => `nodejs_active_${k}_total non-counter metrics should not have "_total" suffix`,
        ),
      );
    }
  });

  it('a dead node: UNAVAILABLE attempts on it, its breaker opens once across two workers, its probes fail and it reads down', async () => {
    const c = await cluster();
    // Slow probes (the first round only, in the test's time) so the breaker, not health, takes
    // the dead node out; a long open timeout so it stays open while the test reads it.
    const router = await spawnRouter(
      cleanup,
      testConfig({
        nodes: c.configs,
        workers: 2,
        health: { ...TEST_HEALTH, intervalMs: 600_000 },
        router: { breakerThreshold: 3, breakerTimeoutMs: 600_000, replicateWrites: false },
      }),
    );
    const dead = 'n1';
    const spaces = Array.from({ length: 400 }, (_, i) => `d${i}`).filter(
      (s) => primaryOf(c, s) === dead,
    );
    await c.kill(dead);
    const clients = Array.from({ length: 8 }, () => memoryClient(cleanup, router.address, true));
    // Many calls at once from 8 connections: both workers fail on the node at the same time.
    // Some may be refused by the retry budget (fail-overs of a burst); the others are served
    // by a replica.
    const settled = await Promise.allSettled(
      spaces.map((s, i) =>
        call(clients[i % clients.length]!, 'recall', { spaceId: s, cue: { text: 'x' } }),
      ),
    );
    const served = settled.filter((r) => r.status === 'fulfilled').length;
    expect(served).toBeGreaterThan(0);
    const text = await scrape(router.metricsPort);
    expect(checkExposition(text).problems).toEqual([]);
    expect(
      only(
        text,
        'engram_router_upstream_requests_total',
        `node="${dead}"`,
        'grpc_status="UNAVAILABLE"',
      ),
    ).toBeGreaterThanOrEqual(3);
    expect(only(text, 'engram_router_breaker_state', `node="${dead}"`)).toBe(1);
    expect(
      only(text, 'engram_router_breaker_transitions_total', `node="${dead}"`, 'to="open"'),
    ).toBe(1);
    expect(
      only(text, 'engram_router_breaker_transitions_total', `node="${dead}"`, 'to="closed"'),
    ).toBe(0);
    // Served by the replicas instead: OK attempts on the other nodes.
    const okElsewhere = c.configs
      .filter((n) => n.id !== dead)
      .map((n) =>
        only(text, 'engram_router_upstream_requests_total', `node="${n.id}"`, 'grpc_status="OK"'),
      )
      .reduce((a, b) => a + b, 0);
    expect(okElsewhere).toBe(served);
  });

  it('probe failures rise for a killed node, which reads down, while the others stay up', async () => {
    const c = await cluster();
    const router = await spawnRouter(cleanup, testConfig({ nodes: c.configs, workers: 2 }));
    await c.kill('n2');
    const text = await eventually(async () => {
      const t = await scrape(router.metricsPort);
      return only(t, 'engram_router_node_up', 'node="n2"') === 0 ? t : undefined;
    }, TEST_DOWN_WINDOW_MS * 3);
    expect(
      only(text, 'engram_router_health_probe_failures_total', 'node="n2"'),
    ).toBeGreaterThanOrEqual(TEST_HEALTH.unhealthyThreshold);
    expect(only(text, 'engram_router_health_probe_failures_total', 'node="n1"')).toBe(0);
    expect(only(text, 'engram_router_node_up', 'node="n1"')).toBe(1);
    expect(only(text, 'engram_router_node_up', 'node="n3"')).toBe(1);
  });

  it("a node added into a removed node's slot counts its attempts from 0", async () => {
    const c = await cluster();
    const router = await spawnRouter(
      cleanup,
      testConfig({
        nodes: c.configs,
        workers: 2,
        replicationFactor: 2,
        router: { replicateWrites: false },
      }),
    );
    const client = memoryClient(cleanup, router.address);
    const spaces = Array.from({ length: 30 }, (_, i) => `r${i}`);
    for (const s of spaces) await call(client, 'recall', { spaceId: s, cue: { text: 'x' } });
    const before = await scrape(router.metricsPort);
    const n1Calls = only(
      before,
      'engram_router_upstream_requests_total',
      'node="n1"',
      'grpc_status="OK"',
    );
    expect(n1Calls).toBeGreaterThan(0);
    const adm = adminClient(cleanup, router.adminPort);
    await admin(adm, 'RemoveNode', { id: 'n1' });
    const n4 = await c.add('n4', 'a');
    await admin(adm, 'AddNode', { id: 'n4', address: n4.config.address, zone: 'a' });
    // n4 took n1's slot (the one freed): its counters start at 0, not at n1's.
    const added = await eventually(async () => {
      const t = await scrape(router.metricsPort);
      return only(t, 'engram_router_node_up', 'node="n4"') === 1 ? t : undefined;
    }, TEST_DOWN_WINDOW_MS * 3);
    expect(checkExposition(added).problems).toEqual([]);
    expect(
      only(added, 'engram_router_upstream_requests_total', 'node="n4"', 'grpc_status="OK"'),
    ).toBe(0);
    expect(only(added, 'engram_router_upstream_request_duration_seconds_count', 'node="n4"')).toBe(
      0,
    );
    expect(metricValue(added, 'engram_router_breaker_transitions_total', 'node="n4"')).toBe(0);
    let servedByN4 = 0;
    for (const s of spaces) {
      const r = await call(client, 'recall', { spaceId: s, cue: { text: 'x' } });
      if (r.routing?.servedBy === 'n4') servedByN4++;
    }
    expect(servedByN4).toBeGreaterThan(0);
    const after = await scrape(router.metricsPort);
    expect(
      only(after, 'engram_router_upstream_requests_total', 'node="n4"', 'grpc_status="OK"'),
    ).toBe(servedByN4);
    expect(only(after, 'engram_router_upstream_request_duration_seconds_count', 'node="n4"')).toBe(
      servedByN4,
    );
  });

  it('a healthy node being drained stays node_up 1 with lifecycle leaving, then drained', async () => {
    const c = await cluster(4); // 3 placed nodes stay: replicationFactor 3 holds
    const router = await spawnRouter(cleanup, testConfig({ nodes: c.configs, workers: 1 }));
    const client = memoryClient(cleanup, router.address);
    await call(client, 'store', { spaceId: 'drain-me', memory: { content: 'x' } });
    await admin(adminClient(cleanup, router.adminPort), 'DrainNode', { id: 'n1' });
    const seen = new Set<string>();
    await eventually(
      async () => {
        const t = await scrape(router.metricsPort);
        for (const l of ['leaving', 'drained', 'draining', 'active']) {
          if (only(t, 'engram_router_node_lifecycle', 'node="n1"', `lifecycle="${l}"`) === 1) {
            seen.add(l);
            // Healthy whatever the lifecycle: up.
            expect(only(t, 'engram_router_node_up', 'node="n1"')).toBe(1);
          }
        }
        expect(metricValue(t, 'engram_router_node_lifecycle', 'node="n1"')).toBe(1);
        return seen.has('drained') || undefined;
      },
      60_000,
      20,
    );
    expect(seen.has('drained')).toBe(true);
    const t = await scrape(router.metricsPort);
    expect(only(t, 'engram_router_node_up', 'node="n1"')).toBe(1);
    expect((await get(router.metricsPort, '/ready')).status).toBe(200);
  });

  it('/ready is 200 when serving, 503 in panic; /live is 200 with the workers', async () => {
    const c = await cluster();
    const router = await spawnRouter(
      cleanup,
      testConfig({ nodes: c.configs, workers: 2, health: { ...TEST_HEALTH, panicThreshold: 0.5 } }),
    );
    const ready = await get(router.metricsPort, '/ready');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toMatchObject({ ready: true, reasons: [] });
    const live = await get(router.metricsPort, '/live');
    expect(live.status).toBe(200);
    expect(JSON.parse(live.body)).toEqual({ live: true, workers: 2, liveWorkers: 2 });
    // 1 of 3 up is below 0.5: panic, not ready (still live).
    await c.kill('n1');
    await c.kill('n2');
    const panic = await eventually(async () => {
      const r = await get(router.metricsPort, '/ready');
      return r.status === 503 ? r : undefined;
    }, TEST_DOWN_WINDOW_MS * 3);
    expect(JSON.parse(panic.body)).toMatchObject({ ready: false, reasons: ['panic'] });
    expect((await get(router.metricsPort, '/live')).status).toBe(200);
    // Back above the threshold: ready again.
    await c.restart('n1');
    await eventually(async () => (await get(router.metricsPort, '/ready')).status === 200, 30_000);
  });

  it('/ready is 503 draining through the drain window and the grace phase; the call in flight at GOAWAY is answered', async () => {
    // A short drain window (a fifth of the default, still long enough for a /ready poll to
    // land inside it on a busy machine), a node slow enough that the call is still in flight
    // when the window ends (GOAWAY) and for IN_FLIGHT_AFTER_GOAWAY_MS after it, at the least,
    // and a grace period the call fits in with room to spare.
    const DRAIN_MS = 1000;
    const IN_FLIGHT_AFTER_GOAWAY_MS = 3 * DRAIN_MS;
    const SLOW_MS = DRAIN_MS + IN_FLIGHT_AFTER_GOAWAY_MS;
    const GRACE_MS = 3 * SLOW_MS;
    const slow = await startSlowNode(cleanup, 's1', SLOW_MS);
    const router = await spawnRouter(
      cleanup,
      testConfig({
        nodes: [{ id: 's1', address: slow.address, zone: 'a' }],
        workers: 1,
        replicationFactor: 1,
        shutdownDrainMs: DRAIN_MS,
        shutdownGraceMs: GRACE_MS,
        // One attempt, given all the time the slow node takes (the default attempt timeout
        // is shorter): a retry cannot hide a cut call, nor a timeout fail a good one.
        router: { maxRetries: 0, attemptTimeoutMs: GRACE_MS, deadlineMs: GRACE_MS },
      }),
    );
    expect((await get(router.metricsPort, '/ready')).status).toBe(200);
    // A raw HTTP/2 connection, open before the signal: its GOAWAY marks the window's end.
    const session = http2.connect(`http://${router.address}`);
    session.on('error', () => {});
    cleanup.add(() => session.destroy());
    await once(session, 'remoteSettings');
    let goaway = false;
    let settled = false;
    let settledAtGoaway: boolean | null = null;
    session.on('goaway', () => {
      goaway = true;
      settledAtGoaway = settled;
    });

    const client = memoryClient(cleanup, router.address);
    // The client's deadline outlives the slow node's delay: only a cut call fails.
    const pending = call(client, 'recall', { spaceId: 'x', cue: { text: 'x' } }, GRACE_MS)
      .catch((e: unknown) => e)
      .finally(() => {
        settled = true;
      });
    await eventually(() => slow.recalls() === 1);
    router.child.kill('SIGTERM');

    // The drain window: 503 draining before the GOAWAY.
    const inWindow = await eventually(
      async () => {
        const r = await get(router.metricsPort, '/ready');
        return r.status === 503 || goaway ? { ...r, goaway } : undefined;
      },
      DRAIN_MS * 10,
      DRAIN_MS / 50,
    );
    expect(inWindow.goaway).toBe(false);
    expect(inWindow.status).toBe(503);
    expect(JSON.parse(inWindow.body)).toMatchObject({ ready: false, reasons: ['draining'] });

    // The grace phase: GOAWAY sent, the call still in flight, still 503 draining.
    await eventually(() => goaway, GRACE_MS);
    expect(settledAtGoaway, 'the call was still in flight at GOAWAY').toBe(false);
    const inGrace = await get(router.metricsPort, '/ready');
    expect(settled, 'the call was still in flight at this /ready').toBe(false);
    expect(inGrace.status).toBe(503);
    expect(JSON.parse(inGrace.body)).toMatchObject({ ready: false, reasons: ['draining'] });

    // The call that met the GOAWAY is answered by the node, not cut.
    const reply = await pending;
    expect(reply).not.toBeInstanceOf(Error);
    expect((reply as { routing?: { servedBy?: string } }).routing?.servedBy).toBe('s1');
    // (Not `slow.cancelled()`: grpc-js reports a cancel for answered calls too.)
    expect(slow.recalls()).toBe(1);
    expect(await router.exited).toEqual({ code: 0, signal: null });
  });
});

describe('readiness and liveness verdicts', () => {
  it('ready only with a table, not draining, not in panic; every reason listed', () => {
    expect(readiness({ published: true, draining: false, panic: false, epoch: 3 })).toEqual({
      ready: true,
      reasons: [],
      epoch: 3,
    });
    expect(readiness({ published: false, draining: true, panic: true, epoch: 0 })).toEqual({
      ready: false,
      reasons: ['no-table', 'draining', 'panic'],
      epoch: 0,
    });
  });

  it('live unless the data plane should be on workers and none is alive', () => {
    expect(liveRoute(() => ({ workers: 2, live: 0 }))().status).toBe(503);
    expect(liveRoute(() => ({ workers: 2, live: 1 }))().status).toBe(200);
    expect(liveRoute(() => ({ workers: 0, live: 0 }))().status).toBe(200);
  });
});
