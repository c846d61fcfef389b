import { describe, expect, it } from 'vitest';
import {
  buildRing,
  DEFAULT_TABLE_MAX_BLOB_BYTES,
  DEFAULT_TABLE_MAX_NODES,
  DEFAULT_TABLE_MAX_REPLICATION_FACTOR,
  DEFAULT_TABLE_MAX_TOKENS,
  DEFAULT_VNODES_PER_NODE,
  MIN_TABLE_BLOB_BYTES,
  TABLE_GROWTH_FACTOR,
  TableReader,
  TableWriter,
} from '../src/index.js';
import { makeNodes } from './reference.js';

const MiB = 1024 * 1024;

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('TableWriter sizing', () => {
  it('sizes a default writer from the first table it publishes, with room to double', () => {
    const ring = buildRing({ nodes: makeNodes(5, 3) });
    const writer = new TableWriter();
    writer.publish(ring);
    expect(writer.capacity).toEqual({
      maxNodes: 5 * TABLE_GROWTH_FACTOR,
      maxTokens: 5 * DEFAULT_VNODES_PER_NODE * TABLE_GROWTH_FACTOR,
      maxReplicationFactor: DEFAULT_TABLE_MAX_REPLICATION_FACTOR,
      maxBlobBytes: MIN_TABLE_BLOB_BYTES,
    });
    // 5 nodes at 8192 vnodes: ~3 MiB where the fixed defaults reserved ~36.5 MiB.
    expect(writer.buffer.byteLength).toBeLessThan(4 * MiB);
    const reader = new TableReader(writer.buffer);
    const out = new Uint16Array(8);
    for (const space of ['a', 'b', 'c']) {
      const expected = ring.lookup(space);
      const count = reader.lookupInto(space, out);
      expect(count).toBe(1 + expected.replicas.length);
      expect(reader.nodes[out[0]!]!.id).toBe(expected.primary.id);
    }
  });

  it('a later table past a derived capacity throws CapacityExceeded naming the option, publishing nothing', () => {
    const writer = new TableWriter();
    writer.publish(buildRing({ nodes: makeNodes(4, 2), vnodesPerNode: 16 }));
    // Doubling fits (8 nodes); more does not.
    writer.publish(buildRing({ nodes: makeNodes(8, 2), vnodesPerNode: 16 }));
    const error = caught(() =>
      writer.publish(buildRing({ nodes: makeNodes(9, 2), vnodesPerNode: 16 })),
    );
    expect(error).toMatchObject({
      code: 'CapacityExceeded',
      limit: 'maxNodes',
      required: 9,
      capacity: 8,
    });
    expect((error as Error).message).toContain('larger maxNodes');
    expect(writer.epoch).toBe(2);
    expect(new TableReader(writer.buffer).nodes).toHaveLength(8);
  });

  it('an option given is a hard maximum and is kept; the others are derived', () => {
    const writer = new TableWriter({ maxNodes: 100 });
    writer.publish(buildRing({ nodes: makeNodes(3, 3), vnodesPerNode: 16 }));
    expect(writer.capacity.maxNodes).toBe(100);
    expect(writer.capacity.maxTokens).toBe(3 * 16 * TABLE_GROWTH_FACTOR);
  });

  it('with every option given the buffer exists before the first publish, at that size', () => {
    const options = { maxNodes: 8, maxTokens: 128, maxReplicationFactor: 3, maxBlobBytes: 4096 };
    const writer = new TableWriter(options);
    expect(writer.capacity).toEqual(options);
    const reader = new TableReader(writer.buffer);
    expect(reader.published).toBe(false);
    writer.publish(buildRing({ nodes: makeNodes(4, 2), vnodesPerNode: 16, replicationFactor: 3 }));
    expect(reader.lookupInto('alice', new Uint16Array(8))).toBe(3);
    expect(reader.nodes).toHaveLength(4);
  });

  it('a buffer read before the first publish takes the fixed defaults for what was left out', () => {
    const writer = new TableWriter({ maxNodes: 16 });
    const buffer = writer.buffer;
    expect(writer.capacity).toEqual({
      maxNodes: 16,
      maxTokens: DEFAULT_TABLE_MAX_TOKENS,
      maxReplicationFactor: DEFAULT_TABLE_MAX_REPLICATION_FACTOR,
      maxBlobBytes: DEFAULT_TABLE_MAX_BLOB_BYTES,
    });
    writer.publish(buildRing({ nodes: makeNodes(3, 3), vnodesPerNode: 16 }));
    expect(writer.buffer).toBe(buffer);
    expect(new TableWriter().capacity.maxNodes).toBe(DEFAULT_TABLE_MAX_NODES);
  });
});
