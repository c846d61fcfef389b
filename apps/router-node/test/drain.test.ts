import http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import { HealthClient } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.js';
import { Cleanup, call, eventually, memoryClient, spawnRouter, testConfig } from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** The drain window the test sets: health NOT_SERVING, calls still served. */
const DRAIN_MS = 3000;
/** Calls in flight at GOAWAY may take this long (they take milliseconds here). */
const GRACE_MS = 3000;
/**
 * A client's call starts (our timestamp) a little before its HEADERS reach the socket; on a
 * busy machine the test process's own event loop may lag. Calls started within this of the
 * window's end may meet the GOAWAY and fail: they are not counted as "during the window".
 */
const CLIENT_SLACK_MS = DRAIN_MS / 4;
/** Health must turn NOT_SERVING well inside the window: within this of the signal. */
const NOT_SERVING_WITHIN_MS = DRAIN_MS / 2;
/**
 * The router's drain timer counts from when it handled the signal (after our timestamp), but
 * a timer may fire a little early against the test's clock (libuv's cached loop time).
 */
const TIMER_SLOP_MS = DRAIN_MS / 10;
/** After the grace period: stopping workers, pools and the control plane, on a busy machine. */
const STOP_MARGIN_MS = 5000;
const CONNECTIONS = 4;
const HEALTH_POLL_MS = 25;
const STATUS = { SERVING: 1, NOT_SERVING: 2 } as const;

/** grpc.health.v1 Check over a raw HTTP/2 session (which reports the server's GOAWAY). */
function healthCheck(session: http2.ClientHttp2Session): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Check',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('error', reject);
    req.on('end', () => {
      // One gRPC frame: 5-byte header, then HealthCheckResponse { status = 1 } (0x08, value).
      const body = Buffer.concat(chunks);
      resolve(body.length >= 7 && body[5] === 0x08 ? body[6]! : -1);
    });
    req.end(Buffer.alloc(5)); // an empty HealthCheckRequest
  });
}

interface CallRecord {
  readonly startedAt: number;
  readonly error: unknown;
}

/** A loop of Store and Recall calls on one connection, recording when each started. */
function steadyCalls(client: ReturnType<typeof memoryClient>, n: number) {
  const ok: number[] = [];
  const failed: CallRecord[] = [];
  let running = true;
  const done = (async () => {
    for (let i = 0; running; i++) {
      const startedAt = performance.now();
      const spaceId = `drain-${n}-${i % 16}`;
      try {
        if (i % 2 === 0) await call(client, 'store', { spaceId, memory: { content: `m${i}` } });
        else await call(client, 'recall', { spaceId, cue: { text: 'm' } });
        ok.push(startedAt);
      } catch (error) {
        failed.push({ startedAt, error });
        // After the router is gone calls fail at once: do not spin.
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  })();
  const stop = () => {
    running = false;
    return done;
  };
  cleanup.add(stop);
  return { ok, failed, stop };
}

describe('SIGTERM drain (shutdownDrainMs)', () => {
  it.each([0, 2])(
    'health goes NOT_SERVING at once, every call is served through the drain window, then GOAWAY and exit 0 (workers %i)',
    async (workers) => {
      const cluster = await LocalCluster.start(3, 2);
      cleanup.add(() => cluster.stop());
      const router = await spawnRouter(
        cleanup,
        testConfig({
          nodes: cluster.configs,
          workers,
          shutdownDrainMs: DRAIN_MS,
          shutdownGraceMs: GRACE_MS,
        }),
      );
      const session = http2.connect(`http://${router.address}`);
      session.on('error', () => {});
      cleanup.add(() => session.destroy());
      let goawayAt: number | null = null;
      session.on('goaway', () => {
        goawayAt ??= performance.now();
      });
      expect(await healthCheck(session)).toBe(STATUS.SERVING);

      const health = new HealthClient(router.address, grpc.credentials.createInsecure());
      cleanup.add(() => health.close());
      const watched: { status: string; at: number }[] = [];
      const watch = health.watch({ service: '' });
      watch.on('data', (r: { status: string }) =>
        watched.push({ status: r.status, at: performance.now() }),
      );
      watch.on('error', () => {});
      const watchEnded = new Promise<grpc.StatusObject>((resolve) => watch.on('status', resolve));
      cleanup.add(() => watch.cancel());

      const loops = Array.from({ length: CONNECTIONS }, (_, n) =>
        steadyCalls(memoryClient(cleanup, router.address, true), n),
      );
      await eventually(() => loops.every((l) => l.ok.length >= 5) && watched.length === 1);
      expect(watched.map((w) => w.status)).toEqual(['SERVING']);

      const signalledAt = performance.now();
      router.child.kill('SIGTERM');
      const exitedAt = router.exited.then((exit) => ({ ...exit, at: performance.now() }));

      // Health answers NOT_SERVING while calls go on being served.
      let notServingAt: number | null = null;
      while (notServingAt === null && goawayAt === null) {
        const status = await healthCheck(session).catch(() => -1);
        if (status === STATUS.NOT_SERVING) notServingAt = performance.now();
        else await new Promise((r) => setTimeout(r, HEALTH_POLL_MS));
      }
      expect(notServingAt).not.toBeNull();
      expect(notServingAt! - signalledAt).toBeLessThan(NOT_SERVING_WITHIN_MS);

      // A new connection inside the window is still accepted and served.
      const late = memoryClient(cleanup, router.address, true);
      const reply = await call(late, 'recall', { spaceId: 'drain-late', cue: { text: 'm' } });
      expect(reply.routing?.servedBy).toBeTruthy();

      const exit = await exitedAt;
      await Promise.all(loops.map((l) => l.stop()));

      // No call that started inside the window failed, and calls kept flowing to its end.
      const windowEnd = signalledAt + DRAIN_MS - CLIENT_SLACK_MS;
      const failedInWindow = loops.flatMap((l) => l.failed.filter((f) => f.startedAt < windowEnd));
      expect(failedInWindow).toEqual([]);
      const okLateInWindow = loops.map(
        (l) => l.ok.filter((t) => t >= signalledAt + DRAIN_MS / 2 && t < windowEnd).length,
      );
      for (const count of okLateInWindow) expect(count).toBeGreaterThan(0);

      // The Watch stream saw NOT_SERVING inside the window, and ended cleanly at GOAWAY.
      expect(watched.map((w) => w.status)).toEqual(['SERVING', 'NOT_SERVING']);
      expect(watched[1]!.at - signalledAt).toBeLessThan(NOT_SERVING_WITHIN_MS);
      expect((await watchEnded).code).toBe(grpc.status.OK);

      // GOAWAY only once the window was over; then a clean exit within drain + grace.
      expect(goawayAt).not.toBeNull();
      expect(goawayAt! - signalledAt).toBeGreaterThanOrEqual(DRAIN_MS - TIMER_SLOP_MS);
      expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
      expect(exit.at - signalledAt).toBeLessThan(DRAIN_MS + GRACE_MS + STOP_MARGIN_MS);
      expect(router.stderr()).toContain('"event":"drain"');
    },
  );

  it('with shutdownDrainMs 0 goes straight to GOAWAY and exits 0', async () => {
    const cluster = await LocalCluster.start(1, 1);
    cleanup.add(() => cluster.stop());
    const router = await spawnRouter(
      cleanup,
      testConfig({
        nodes: cluster.configs,
        workers: 1,
        shutdownDrainMs: 0,
        shutdownGraceMs: GRACE_MS,
      }),
    );
    const session = http2.connect(`http://${router.address}`);
    session.on('error', () => {});
    cleanup.add(() => session.destroy());
    const goaway = new Promise<void>((resolve) => session.on('goaway', () => resolve()));
    expect(await healthCheck(session)).toBe(STATUS.SERVING);
    router.child.kill('SIGTERM');
    await goaway;
    expect(await router.exited).toEqual({ code: 0, signal: null });
    expect(router.stderr()).not.toContain('"event":"drain"');
  });
});
