import type { MemoryServiceHandlers } from '@engram/proto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  adminClient,
  Cleanup,
  call,
  eventually,
  getTable,
  memoryClient,
  metricValue,
  scrape,
  serveMemoryService,
  spawnRouter,
  testConfig,
} from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const UPSTREAM = 'engram_router_upstream_requests_total';
const TRAILING = 'engram_router_trailing_writes';

/**
 * A MemoryService (health serving) that answers Store at once, or, with `held`, only when the
 * test releases it (oldest first); Recall answers at once.
 */
async function startNode(id: string, held: boolean) {
  const waiting: (() => void)[] = [];
  let stores = 0;
  const routing = { servedBy: id, attempts: 1, fallback: false, strategy: 'direct', tableEpoch: 0 };
  const handlers: MemoryServiceHandlers = {
    Store: (_c, cb) => {
      stores++;
      const answer = () => cb(null, { memoryId: 'm', routing });
      if (held) waiting.push(answer);
      else answer();
    },
    Recall: (_c, cb) => cb(null, { memories: [], routing }),
    Consolidate: (_c, cb) => cb(null, { merged: [], memoriesBefore: 0, memoriesAfter: 0, routing }),
    Query: (_c, cb) => cb(null, { results: [], errors: [], routing }),
  };
  const address = await serveMemoryService(cleanup, handlers);
  return {
    address,
    stores: () => stores,
    /** Answers the oldest Store still held. */
    release: () => waiting.shift()!(),
  };
}

describe('writes trailing their answer (engram_router_trailing_writes)', () => {
  it('a replica that has not applied its writes yet is counted per node, and no answer waits for it', async () => {
    const fast = [await startNode('a', false), await startNode('b', false)];
    const slow = await startNode('c', true);
    const router = await spawnRouter(
      cleanup,
      testConfig({
        nodes: [
          { id: 'a', address: fast[0]!.address, zone: 'z1' },
          { id: 'b', address: fast[1]!.address, zone: 'z2' },
          { id: 'c', address: slow.address, zone: 'z3' },
        ],
        replicationFactor: 3,
        workers: 1,
        // Nothing here may time out or be ejected: c holds its Stores as long as the test says.
        router: { writeConsistency: 'one', attemptTimeoutMs: 60_000 },
        outlier: { enabled: false },
      }),
    );
    const adm = adminClient(cleanup, router.adminPort);
    await eventually(async () => (await getTable(adm)).nodes.every((n) => n.state === 'up'));
    const client = memoryClient(cleanup, router.address);
    const trailing = async (id: string) =>
      metricValue(await scrape(router.metricsPort), TRAILING, `node="${id}"`);

    // Both Stores are answered while c still holds its copies: c trails two writes.
    for (const content of ['one', 'two']) {
      const res = await call(client, 'store', { spaceId: 's', memory: { content } });
      expect(res.routing).toMatchObject({ strategy: 'Replicated', acknowledged: 1 });
    }
    expect(slow.stores()).toBe(2);
    await eventually(async () => (await trailing('c')) === 2);
    expect(await trailing('a')).toBe(0);

    // c applies them: nothing trails any more, and c got both (no hint, no retry).
    slow.release();
    slow.release();
    await eventually(async () => (await trailing('c')) === 0);
    const text = await scrape(router.metricsPort);
    expect(metricValue(text, UPSTREAM, 'node="c"', 'grpc_status="OK"')).toBe(2);
  });
});
