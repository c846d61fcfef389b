import { writeFileSync } from 'node:fs';
import {
  callMemory,
  HealthDefinition,
  type HealthHandlers,
  HealthReporter,
  MemoryServiceDefinition,
  type MemoryServiceHandlers,
} from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  adminClient,
  Cleanup,
  call,
  eventually,
  freePort,
  getTable,
  memoryClient,
  metricValue,
  type RouterProcess,
  scrape,
  spawnRouter,
  TEST_HEALTH,
  testConfig,
} from './helpers.js';

/** Longer than any test: a Recall the node never answers in time. */
const HANG_MS = 10 * 60 * 1000;

/**
 * An in-process memory node whose Recall hangs (Store answers at once) and which counts the
 * health checks it answers.
 */
async function countingNode(
  cleanup: Cleanup,
  /** Recall answers UNAVAILABLE at once instead of hanging. */
  failRecalls = false,
): Promise<{ address: string; checks: () => number; recalls: () => number }> {
  const server = new grpc.Server();
  const routing = {
    servedBy: 'n1',
    attempts: 1,
    fallback: false,
    strategy: 'direct',
    tableEpoch: 0,
  };
  const handlers: MemoryServiceHandlers = {
    Store: (_c, cb) => cb(null, { memoryId: 'm', routing }),
    Recall: (c, cb) => {
      recalls++;
      if (failRecalls) {
        cb({ code: grpc.status.UNAVAILABLE, details: 'failing on purpose' });
        return;
      }
      const t = setTimeout(() => cb(null, { memories: [], routing }), HANG_MS);
      c.on('cancelled', () => clearTimeout(t));
    },
    Consolidate: (_c, cb) => cb(null, { merged: [], memoriesBefore: 0, memoriesAfter: 0, routing }),
    Query: (_c, cb) => cb(null, { results: [], errors: [], routing }),
  };
  server.addService(MemoryServiceDefinition, handlers);
  let checks = 0;
  let recalls = 0;
  const reporter = new HealthReporter();
  const health: HealthHandlers = {
    ...reporter.handlers,
    Check: (call, callback) => {
      checks++;
      reporter.handlers.Check(call, callback);
    },
  };
  server.addService(HealthDefinition, health);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  cleanup.add(() => server.forceShutdown());
  return { address: `127.0.0.1:${port}`, checks: () => checks, recalls: () => recalls };
}

interface LogLine {
  readonly event?: string;
  readonly level?: number;
  readonly key?: string;
  readonly result?: string;
  readonly from?: unknown;
  readonly to?: unknown;
  readonly thread?: number;
}

function logLines(r: RouterProcess): LogLine[] {
  return r
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

/** Sends SIGHUP and waits for the reload's last line (done or failed); returns its key lines. */
async function sighup(r: RouterProcess): Promise<{ ok: boolean; keys: LogLine[] }> {
  const ends = () =>
    logLines(r).filter((l) => l.event === 'reload-done' || l.event === 'reload-failed');
  const before = ends().length;
  const keysBefore = logLines(r).filter((l) => l.event === 'reload').length;
  r.child.kill('SIGHUP');
  const end = await eventually(() => {
    const all = ends();
    return all.length > before ? all[all.length - 1] : undefined;
  });
  return {
    ok: end.event === 'reload-done',
    keys: logLines(r)
      .filter((l) => l.event === 'reload')
      .slice(keysBefore),
  };
}

/** One attempt per call, no deadline short enough to end one: a reload's effect is the only change. */
const ONE_TRY_NO_TIMEOUT = {
  replicateWrites: false,
  maxRetries: 0,
  deadlineMs: 60_000,
  attemptTimeoutMs: 60_000,
};

describe('SIGHUP reload (real router-node process)', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  it('applies router.deadlineMs, health.intervalMs and logLevel live; listen.port needs a restart; nothing else changes', async () => {
    const node = await countingNode(cleanup);
    const base = {
      nodes: [{ id: 'n1', address: node.address }],
      workers: 1,
      router: ONE_TRY_NO_TIMEOUT,
      // Probes rare enough that one interval of it tells this interval from the reloaded one.
      health: { ...TEST_HEALTH, intervalMs: 5000 },
      logLevel: 'info',
    };
    const config = testConfig(base);
    const router = await spawnRouter(cleanup, config);
    const adm = adminClient(cleanup, router.adminPort);
    const client = memoryClient(cleanup, router.address);
    const tableBefore = await getTable(adm);
    expect(logLines(router).some((l) => l.level === 20)).toBe(false);

    // A Recall without a client deadline gets router.deadlineMs: 60 s, the node hangs.
    let earlyDone = false;
    const early = callMemory(client, 'recall', { spaceId: 's', cue: { text: 'x' }, limit: 1 })
      .catch((e: unknown) => e)
      .finally(() => {
        earlyDone = true;
      });
    await eventually(() => node.recalls() === 1); // in flight at the node

    const newDeadlineMs = 500;
    const newIntervalMs = 100;
    const otherPort = await freePort();
    writeFileSync(
      router.configFile,
      JSON.stringify({
        ...config,
        listen: { host: '127.0.0.1', port: otherPort },
        router: { ...base.router, deadlineMs: newDeadlineMs },
        health: { ...base.health, intervalMs: newIntervalMs },
        logLevel: 'debug',
      }),
    );
    const reload = await sighup(router);
    expect(reload.ok).toBe(true);
    expect(reload.keys.map((k) => [k.key, k.result, k.from, k.to])).toEqual([
      ['listen.port', 'needs-restart', 0, otherPort],
      ['router.deadlineMs', 'applied', 60_000, newDeadlineMs],
      ['health.intervalMs', 'applied', 5000, newIntervalMs],
      ['logLevel', 'applied', 'info', 'debug'],
    ]);

    // deadlineMs: a new call without a client deadline ends with DEADLINE_EXCEEDED (the node
    // would hang for minutes), while the call made before the reload keeps its 60 s.
    const err = (await callMemory(client, 'recall', {
      spaceId: 's',
      cue: { text: 'x' },
      limit: 1,
    }).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(earlyDone).toBe(false);

    // health.intervalMs: the probes during one old interval. Rounds at the old interval send
    // at most 2 in it (one at each end); at the new one they send oldMs / newMs (50), of which
    // a quarter is asked (a busy machine delays timers), still far above what the old sends.
    const oldIntervalMs = base.health.intervalMs;
    const oldMost = 2;
    const newLeast = Math.floor(oldIntervalMs / newIntervalMs / 4);
    expect(newLeast).toBeGreaterThan(2 * oldMost);
    const checksFrom = node.checks();
    await new Promise((r) => setTimeout(r, oldIntervalMs));
    expect(node.checks() - checksFrom).toBeGreaterThanOrEqual(newLeast);

    // logLevel: debug lines from the control plane and from the data-plane worker.
    await eventually(() =>
      logLines(router).some((l) => l.level === 20 && l.event === 'reload-apply'),
    );
    await eventually(() =>
      logLines(router).some((l) => l.level === 20 && l.event === 'config-update' && l.thread === 0),
    );

    // listen.port: still served where it was; nothing else changed.
    const stored = await call(client, 'store', { spaceId: 's', memory: { content: 'x' } });
    expect(stored.memoryId).toBe('m');
    const tableAfter = await getTable(adm);
    expect(tableAfter.epoch).toBe(tableBefore.epoch);
    expect(tableAfter.nodes.map((n) => [n.id, n.address])).toEqual(
      tableBefore.nodes.map((n) => [n.id, n.address]),
    );
    const metrics = await scrape(router.metricsPort);
    expect(metricValue(metrics, 'engram_router_config_reloads_total', 'result="success"')).toBe(1);
    expect(metricValue(metrics, 'engram_router_config_reloads_total', 'result="failure"')).toBe(0);
    expect(metricValue(metrics, 'engram_router_config_last_reload_successful')).toBe(1);
    const at = metricValue(metrics, 'engram_router_config_last_reload_success_timestamp_seconds');
    expect(Math.abs(at - Date.now() / 1000)).toBeLessThan(3600);
    void early;
  });

  it('applies router.maxRetries and retryBudget.*: a failing call is tried 1 + maxRetries times, as the budget allows', async () => {
    const node = await countingNode(cleanup, true);
    const base = {
      nodes: [{ id: 'n1', address: node.address }],
      workers: 1,
      router: { replicateWrites: false, maxRetries: 0, retryBaseDelayMs: 1, retryMaxDelayMs: 10 },
    };
    const config = testConfig(base);
    const router = await spawnRouter(cleanup, config);
    const client = memoryClient(cleanup, router.address);
    const recall = () =>
      call(client, 'recall', { spaceId: 's', cue: { text: 'x' }, limit: 1 }).catch(
        (e: unknown) => e as grpc.ServiceError,
      );
    const retries = async () =>
      metricValue(await scrape(router.metricsPort), 'engram_router_retries_total', 'recall');
    expect(await recall()).toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(node.recalls()).toBe(1);
    expect(await retries()).toBe(0);
    writeFileSync(
      router.configFile,
      JSON.stringify({ ...config, router: { ...base.router, maxRetries: 2 } }),
    );
    const reload = await sighup(router);
    expect(reload.keys.map((k) => [k.key, k.result, k.from, k.to])).toEqual([
      ['router.maxRetries', 'applied', 0, 2],
    ]);
    expect(await recall()).toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(node.recalls()).toBe(1 + 3);
    expect(await retries()).toBe(2);
    // retryBudget.*: a budget that allows no retry at all (a new shared budget, every thread).
    writeFileSync(
      router.configFile,
      JSON.stringify({
        ...config,
        router: { ...base.router, maxRetries: 2 },
        retryBudget: { ratio: 0, minRetriesPerSecond: 0 },
      }),
    );
    expect((await sighup(router)).keys.map((k) => [k.key, k.result])).toEqual([
      ['retryBudget.ratio', 'applied'],
      ['retryBudget.minRetriesPerSecond', 'applied'],
    ]);
    await recall();
    expect(node.recalls()).toBe(4 + 1);
    expect(await retries()).toBe(2);
  });

  it('a data-plane worker restarted after a reload starts with the reloaded config', async () => {
    const node = await countingNode(cleanup);
    const base = {
      nodes: [{ id: 'n1', address: node.address }],
      workers: 1,
      router: ONE_TRY_NO_TIMEOUT,
    };
    const config = testConfig(base);
    const router = await spawnRouter(cleanup, config);
    const newDeadlineMs = 500;
    writeFileSync(
      router.configFile,
      JSON.stringify({ ...config, router: { ...base.router, deadlineMs: newDeadlineMs } }),
    );
    expect((await sighup(router)).ok).toBe(true);
    // The spawned router inherits NODE_ENV=test from vitest: SIGUSR2 crashes its worker.
    router.child.kill('SIGUSR2');
    await eventually(() => router.stderr().includes('"event":"worker-restart"'), 30_000);
    const client = memoryClient(cleanup, router.address);
    // Started with the file read at start, the new worker would wait 60 s on the hung node.
    const guardMs = 20 * newDeadlineMs;
    const outcome = await Promise.race([
      callMemory(client, 'recall', { spaceId: 's', cue: { text: 'x' }, limit: 1 }).catch(
        (e: unknown) => e as grpc.ServiceError,
      ),
      new Promise<'pending'>((r) => setTimeout(() => r('pending'), guardMs)),
    ]);
    expect(outcome).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
  });

  it('an invalid file, or a change that cannot apply, changes nothing and counts as a failure', async () => {
    const node = await countingNode(cleanup);
    const config = testConfig({
      nodes: [{ id: 'n1', address: node.address }],
      workers: 1,
      router: { replicateWrites: false },
      logLevel: 'info',
    });
    const router = await spawnRouter(cleanup, config);
    const adm = adminClient(cleanup, router.adminPort);
    const tableBefore = await getTable(adm);

    // Does not parse.
    writeFileSync(router.configFile, '{"logLevel": "warn",');
    const parse = await sighup(router);
    expect(parse.ok).toBe(false);
    expect(parse.keys).toEqual([]);
    let metrics = await scrape(router.metricsPort);
    expect(metricValue(metrics, 'engram_router_config_reloads_total', 'result="failure"')).toBe(1);
    expect(metricValue(metrics, 'engram_router_config_last_reload_successful')).toBe(0);

    // Parses but does not validate (with a valid change beside the bad key).
    writeFileSync(
      router.configFile,
      JSON.stringify({ ...config, logLevel: 'warn', health: { intervalMs: 'fast' } }),
    );
    expect((await sighup(router)).ok).toBe(false);
    expect(router.stderr()).toMatch(/"event":"reload-failed".*health\.intervalMs/);

    // Valid, but the membership cannot follow (no nodes): the other change is not applied.
    writeFileSync(router.configFile, JSON.stringify({ ...config, logLevel: 'warn', nodes: [] }));
    expect((await sighup(router)).ok).toBe(false);
    metrics = await scrape(router.metricsPort);
    expect(metricValue(metrics, 'engram_router_config_reloads_total', 'result="failure"')).toBe(3);
    expect(metricValue(metrics, 'engram_router_config_reloads_total', 'result="success"')).toBe(0);
    expect((await getTable(adm)).epoch).toBe(tableBefore.epoch);

    // A valid file: the config in force was still the first one (logLevel from info).
    writeFileSync(router.configFile, JSON.stringify({ ...config, logLevel: 'debug' }));
    const ok = await sighup(router);
    expect(ok.ok).toBe(true);
    expect(ok.keys.map((k) => [k.key, k.from, k.to])).toEqual([['logLevel', 'info', 'debug']]);
    metrics = await scrape(router.metricsPort);
    expect(metricValue(metrics, 'engram_router_config_reloads_total', 'result="success"')).toBe(1);
    expect(metricValue(metrics, 'engram_router_config_last_reload_successful')).toBe(1);
  });

  it('never logs the inline admin token it reloads', async () => {
    const node = await countingNode(cleanup);
    const config = testConfig({
      nodes: [{ id: 'n1', address: node.address }],
      workers: 0,
      admin: { host: '127.0.0.1', port: 0, token: 'first-secret-0123456789' },
    });
    const router = await spawnRouter(cleanup, config);
    writeFileSync(
      router.configFile,
      JSON.stringify({
        ...config,
        admin: { host: '127.0.0.1', port: 0, token: 'second-secret-0123456789' },
      }),
    );
    const reload = await sighup(router);
    expect(reload.ok).toBe(true);
    expect(reload.keys).toEqual([
      expect.objectContaining({ key: 'admin.token', result: 'applied', from: '<redacted>' }),
    ]);
    expect(router.stderr()).not.toContain('secret-0123456789');
    // The new token is the one in force.
    const second = adminClient(cleanup, router.adminPort, 'second-secret-0123456789');
    expect((await getTable(second)).nodes.map((n) => n.id)).toEqual(['n1']);
  });
});
