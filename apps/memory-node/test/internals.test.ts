import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFrames, encodeFrame, type LogRecord } from '../src/internal/log.js';
import { MemoryStore } from '../src/internal/store.js';

const memory = (id: string, content: string, extra: object = {}) => ({
  id,
  content,
  embedding: [] as number[],
  confidence: 0,
  createdAtMs: 1,
  version: 0,
  ...extra,
});

describe('log framing', () => {
  const memoryArb = fc.record({
    id: fc.string(),
    content: fc.string(),
    embedding: fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { maxLength: 4 }),
    confidence: fc.constant(0.5),
    createdAtMs: fc.nat(),
    version: fc.nat(),
  });
  const recordArb: fc.Arbitrary<LogRecord> = fc.oneof(
    fc.record({ t: fc.constant('store' as const), s: fc.string({ minLength: 1 }), m: memoryArb }),
    fc.record({
      t: fc.constant('apply' as const),
      s: fc.string({ minLength: 1 }),
      m: fc.array(memoryArb, { maxLength: 3 }),
      d: fc.array(fc.record({ id: fc.string(), version: fc.nat() }), { maxLength: 3 }),
    }),
  );

  it('replays exactly the whole records of any prefix of the log (torn tails are dropped)', () => {
    fc.assert(
      fc.property(fc.array(recordArb, { maxLength: 8 }), fc.nat(), (records, cutSeed) => {
        const frames = records.map(encodeFrame);
        const log = Buffer.concat(frames);
        const cut = log.length === 0 ? 0 : cutSeed % (log.length + 1);
        const replay = decodeFrames(log.subarray(0, cut));
        let whole = 0;
        let bytes = 0;
        for (const f of frames) {
          if (bytes + f.length > cut) break;
          bytes += f.length;
          whole++;
        }
        expect(replay.records).toEqual(
          records.slice(0, whole).map((r) => JSON.parse(JSON.stringify(r))),
        );
        expect(replay.validBytes).toBe(bytes);
        expect(replay.droppedBytes).toBe(cut - bytes);
      }),
    );
  });

  it('stops at a flipped bit in a payload', () => {
    const a = encodeFrame({ t: 'store', s: 's', m: memory('a', 'x') });
    const b = encodeFrame({ t: 'store', s: 's', m: memory('b', 'y') });
    const log = Buffer.concat([a, b]);
    log[a.length + 12]! ^= 0x01;
    expect(decodeFrames(log).records).toHaveLength(1);
  });
});

describe('MemoryStore', () => {
  it('breaks score ties by recency, then id', () => {
    const store = new MemoryStore();
    store.put('s', memory('b', 'red', { createdAtMs: 5 }));
    store.put('s', memory('a', 'red', { createdAtMs: 5 }));
    store.put('s', memory('c', 'red', { createdAtMs: 9 }));
    expect(store.recall('s', { text: 'red', embedding: [] }, 10).map((m) => m.memory?.id)).toEqual([
      'c',
      'a',
      'b',
    ]);
  });

  it('gives zero score to a zero vector instead of NaN', () => {
    const store = new MemoryStore();
    store.put('s', memory('z', 'zero', { embedding: [0, 0] }));
    expect(store.recall('s', { text: '', embedding: [1, 0] }, 10)[0]?.score).toBe(0);
  });

  it('merges a group around its oldest member, even when later members only match it', () => {
    const store = new MemoryStore();
    store.put('s', memory('old', 'a', { embedding: [1, 0], createdAtMs: 1 }));
    store.put('s', memory('mid', 'b', { embedding: [0.96, 0.28], createdAtMs: 2 })); // cos 0.96
    store.put('s', memory('new', 'c', { embedding: [0.96, -0.28], createdAtMs: 3 })); // cos 0.96 with old, 0.84 with mid
    const plan = store.planMerge('s', 0.95, 10);
    expect(plan.groups.map((g) => [g.kept.id, g.removed])).toEqual([['old', ['mid', 'new']]]);
    store.applyEntries('s', plan.writes.memories, plan.writes.tombstones);
    expect(store.size('s')).toBe(1);
  });

  // Under last write wins the kept memory's fate depends on versions only, never on whether a
  // re-store landed before or after the consolidation was applied.
  for (const [name, version, expected] of [
    ['newer', 11, { content: 'rewritten', confidence: 0.1, version: 11 }],
    ['older', 5, { content: 'same', confidence: 0.8, version: 10 }],
  ] as const) {
    for (const when of ['before', 'after'] as const) {
      it(`a re-store under the kept id ${name} than the consolidation, landing ${when} it applies, ${name === 'newer' ? 'wins' : 'loses'}`, () => {
        const store = new MemoryStore();
        store.put('s', memory('k', 'same', { confidence: 0.2, createdAtMs: 1, version: 1 }));
        store.put('s', memory('d', 'same', { confidence: 0.8, createdAtMs: 2, version: 2 }));
        const plan = store.planMerge('s', 0.95, 10);
        const restore = memory('k', 'rewritten', { confidence: 0.1, createdAtMs: 3, version });
        if (when === 'before') store.put('s', restore);
        store.applyEntries('s', plan.writes.memories, plan.writes.tombstones);
        if (when === 'after') store.put('s', restore);
        expect(store.get('s', 'k')).toMatchObject(expected);
        expect(store.get('s', 'd')).toBeUndefined();
        expect(store.tombstoneVersion('s', 'd')).toBe(10);
      });
    }
  }
});
