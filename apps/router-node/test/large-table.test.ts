import { Worker } from 'node:worker_threads';
import { TableReader, TableWriter } from '@engram/ring';
import { afterEach, describe, expect, it } from 'vitest';
import { TABLE_MAX_REPLICATION_FACTOR } from '../src/internal/config-caps.js';
import { controlWords, createStateBuffer } from '../src/internal/layout.js';
import { Membership } from '../src/internal/membership.js';
import { TablePublisher } from '../src/internal/table-publisher.js';

const NODES = 1000;
/** What a 1000-node table takes: 1000 × 8192 would be over the table's token cap. */
const VNODES = 256;
const FIXTURE = new URL('./fixtures/table-lookups.mjs', import.meta.url);

interface Lookups {
  readonly epoch: number;
  readonly nodes: number;
  readonly out: [string, number, string[]][];
}

describe('a 1000-node table', () => {
  const workers: Worker[] = [];
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.terminate()));
  });

  it('is built, published and looked up alike in two worker threads', async () => {
    const nodes = Array.from({ length: NODES }, (_, i) => ({
      id: `node-${i}`,
      // Never dialled: the table only holds addresses.
      address: `127.0.0.1:${20_000 + i}`,
      zone: `z${i % 3}`,
    }));
    const membership = Membership.create(nodes, [], null, { maxNodes: NODES, maxSlots: NODES });
    const writer = new TableWriter({
      maxNodes: NODES,
      maxTokens: NODES * VNODES,
      maxReplicationFactor: TABLE_MAX_REPLICATION_FACTOR,
      maxBlobBytes: 2 * 1024 * 1024,
    });
    const control = controlWords(createStateBuffer(2, NODES));
    const publisher = new TablePublisher(writer, control, {
      replicationFactor: 3,
      vnodesPerNode: VNODES,
    });
    const epoch = publisher.publish(membership, false);
    const spaces = Array.from({ length: 2000 }, (_, i) => `space-${i}`);
    const results = await Promise.all(
      [0, 1].map(
        () =>
          new Promise<Lookups>((resolve, reject) => {
            const w = new Worker(FIXTURE, { workerData: { table: writer.buffer, spaces } });
            workers.push(w);
            w.once('message', resolve);
            w.once('error', reject);
          }),
      ),
    );
    const ring = publisher.ring;
    const main = new TableReader(writer.buffer);
    const primaries = new Set<string>();
    for (const r of results) {
      expect(r.epoch).toBe(epoch);
      expect(r.nodes).toBe(NODES);
      r.out.forEach(([primary, slot, replicas], i) => {
        const p = ring.lookup(spaces[i]!);
        expect(primary).toBe(p.primary.id);
        expect(replicas).toEqual(p.replicas.map((x) => x.id));
        // The slot the thread reads is the membership's (breakers, node words, metrics).
        expect(slot).toBe(membership.get(primary)!.slot);
        expect(slot).toBeLessThan(NODES);
        primaries.add(primary);
      });
    }
    expect(main.lookup(spaces[0]!).primary.id).toBe(results[0]!.out[0]![0]);
    // 2000 spaces over 1000 nodes land on many of them (not a degenerate table).
    expect(primaries.size).toBeGreaterThan(500);
  });
});
