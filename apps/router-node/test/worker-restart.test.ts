import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Cleanup,
  call,
  eventually,
  memoryClient,
  metricValue,
  scrape,
  spawnRouter,
  startSlowNode,
  testConfig,
} from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe('data-plane worker restarts', () => {
  it('restarts a crashed worker on the shared socket: new connections keep succeeding and the worker count returns', async () => {
    // The spawned router inherits NODE_ENV=test from vitest, which enables the SIGUSR2 crash hook.
    expect(process.env.NODE_ENV).toBe('test');
    const node = await startSlowNode(cleanup, 'a', 0);
    const router = await spawnRouter(
      cleanup,
      testConfig({ nodes: [{ id: 'a', address: node.address, zone: 'z1' }], workers: 2 }),
    );
    const freshCalls = async (count: number) => {
      // A fresh connection per call: each one is accepted by whichever worker the kernel picks.
      for (let i = 0; i < count; i++) {
        const client = memoryClient(cleanup, router.address, true);
        const r = await call(client, 'recall', { spaceId: `s${i}`, cue: { text: 'x' } }, 3000);
        expect(r.routing?.servedBy).toBe('a');
        client.close();
      }
    };
    await freshCalls(6);
    let text = await scrape(router.metricsPort);
    expect(metricValue(text, 'engram_router_workers')).toBe(2);
    expect(metricValue(text, 'engram_router_worker_restarts_total')).toBe(0);

    for (let crash = 1; crash <= 2; crash++) {
      router.child.kill('SIGUSR2');
      text = await eventually(async () => {
        const t = await scrape(router.metricsPort);
        return metricValue(t, 'engram_router_worker_restarts_total') === crash &&
          metricValue(t, 'engram_router_workers') === 2
          ? t
          : undefined;
      });
      // The listening socket outlived the crashed thread: fresh connections are accepted.
      await freshCalls(10);
    }
    if (process.platform === 'linux') {
      // Each data-plane thread is named (the restarted ones too), so `top -H` tells them from
      // V8's and libuv's threads, which Node names after the process.
      const names = readdirSync(`/proc/${router.child.pid}/task`).map((tid) =>
        readFileSync(`/proc/${router.child.pid}/task/${tid}/comm`, 'utf8').trim(),
      );
      expect(names.filter((n) => n.startsWith('engram-data-')).sort()).toEqual([
        'engram-data-0',
        'engram-data-1',
      ]);
    }
    expect(router.stderr()).toContain('"event":"worker-exit"');
    expect(router.stderr()).toContain('"event":"worker-restart"');
    // And it still stops cleanly.
    router.child.kill('SIGTERM');
    expect(await router.exited).toEqual({ code: 0, signal: null });
  });
});
