import { describe, expect, it } from 'vitest';
import { groups } from '../soak-heapdiff.js';

describe('heap snapshot groups', () => {
  it('sums count and self size by constructor for objects, by type for the rest', () => {
    const snapshot = {
      snapshot: {
        meta: {
          node_fields: ['type', 'name', 'id', 'self_size', 'edge_count'],
          node_types: [['hidden', 'object', 'string', 'closure'] as string[]] as [string[]],
        },
      },
      // type, name (index into strings), id, self_size, edge_count
      nodes: [1, 0, 1, 32, 0, 1, 0, 3, 48, 0, 1, 1, 5, 16, 0, 2, 2, 7, 100, 0, 2, 0, 9, 20, 0],
      strings: ['Session', 'Object', 'some text'],
    };
    const g = groups(snapshot);
    expect(g.get('object:Session')).toEqual({ count: 2, bytes: 80 });
    expect(g.get('object:Object')).toEqual({ count: 1, bytes: 16 });
    expect(g.get('string')).toEqual({ count: 2, bytes: 120 });
    expect(g.size).toBe(3);
  });
});
