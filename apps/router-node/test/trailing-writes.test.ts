import {
  addHealthService,
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
  getTable,
  memoryClient,
  metricValue,
  scrape,
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
  const server = new grpc.Server();
  server.addService(MemoryServiceDefinition, handlers);
  addHealthService(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  cleanup.add(() => server.forceShutdown());
  return {
    address: `127.0.0.1:${port}`,
    stores: () => stores,
    /** Answers the oldest Store still held. */
    release: () => waiting.shift()!(),
  };
}

describe('writes trailing their answer (router.maxTrailingWrites)', () => {
  it('a Store waits for a replica that already trails the limit, the gauge shows the trailing writes, and the answer goes once its own copy on that replica lands', async () => {
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
        router: { writeConsistency: 'one', maxTrailingWrites: 1, attemptTimeoutMs: 60_000 },
        outlier: { enabled: false },
      }),
    );
    const adm = adminClient(cleanup, router.adminPort);
    await eventually(async () => (await getTable(adm)).nodes.every((n) => n.state === 'up'));
    const client = memoryClient(cleanup, router.address);
    const upstream = async (id: string) =>
      metricValue(await scrape(router.metricsPort), UPSTREAM, `node="${id}"`);

    // The first Store is answered by a or b while c still runs it: c trails one write.
    const first = await call(client, 'store', { spaceId: 's', memory: { content: 'one' } });
    expect(first.routing).toMatchObject({ strategy: 'Replicated', acknowledged: 1 });
    await eventually(
      async () => metricValue(await scrape(router.metricsPort), TRAILING, 'node="c"') === 1,
    );

    // The second has its acknowledgement from a and b, but c is at the limit: no answer yet.
    let answered = false;
    const second = call(client, 'store', { spaceId: 's', memory: { content: 'two' } }).then((r) => {
      answered = true;
      return r;
    });
    await eventually(
      async () => slow.stores() === 2 && (await upstream('a')) === 2 && (await upstream('b')) === 2,
    );
    // A later call on the same connection is answered after any reply the router had sent.
    await call(client, 'recall', { spaceId: 's', cue: { text: 'x' } });
    expect(answered).toBe(false);

    // c applies the first write: c has room again, but the second waits for its own copy.
    slow.release();
    await eventually(async () => (await upstream('c')) === 1);
    await call(client, 'recall', { spaceId: 's', cue: { text: 'x' } });
    expect(answered).toBe(false);
    // c applies the second: its answer goes, every replica with the write, nothing trailing.
    slow.release();
    const res = await second;
    expect(res.routing).toMatchObject({ strategy: 'Replicated', acknowledged: 3, degraded: false });
    await eventually(
      async () => metricValue(await scrape(router.metricsPort), TRAILING, 'node="c"') === 0,
    );
    const text = await scrape(router.metricsPort);
    expect(metricValue(text, TRAILING, 'node="a"')).toBe(0);
    expect(metricValue(text, UPSTREAM, 'node="c"')).toBe(2);
  });
});
