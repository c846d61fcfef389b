import type { Memory } from '@engram/proto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareCodePoints } from '../src/internal/code-point.js';
import { MemoryStore, type ScanPage } from '../src/internal/store.js';

const memory = (id: string, version: number, extra: Partial<Memory> = {}): Memory => ({
  id,
  content: `content of ${id}`,
  embedding: [],
  confidence: 0.5,
  createdAtMs: 1,
  version,
  ...extra,
});

const NO_BYTE_CAP = Number.POSITIVE_INFINITY;

/** Every page of a scan, following `more`. */
function scanAll(store: MemoryStore, spaceId: string, limit: number, maxBytes = NO_BYTE_CAP) {
  const pages: ScanPage[] = [];
  let after = '';
  for (;;) {
    const page = store.scan(spaceId, after, limit, maxBytes);
    pages.push(page);
    const ids = [...page.memories.map((m) => m.id), ...page.tombstones.map((t) => t.id)];
    if (!page.more) return pages;
    after = ids.sort(compareCodePoints).at(-1)!;
  }
}

const idsOf = (page: ScanPage) =>
  [...page.memories.map((m) => m.id), ...page.tombstones.map((t) => t.id)].sort(compareCodePoints);

describe('ListSpaces paging', () => {
  it('returns every space exactly once, in code-point order, `more` until the last page', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ unit: 'binary', minLength: 1, maxLength: 4 }), {
          maxLength: 40,
        }),
        fc.integer({ min: 1, max: 7 }),
        (spaceIds, limit) => {
          const store = new MemoryStore();
          for (const s of spaceIds) store.put(s, memory('m', 1));
          const seen: string[] = [];
          let after = '';
          for (;;) {
            const page = store.listSpaces(after, limit, NO_BYTE_CAP);
            expect(page.spaces.length).toBeLessThanOrEqual(limit);
            seen.push(...page.spaces.map((d) => d.spaceId));
            if (!page.more) break;
            expect(page.spaces).toHaveLength(limit);
            after = page.spaces.at(-1)!.spaceId;
          }
          expect(seen).toEqual([...spaceIds].sort(compareCodePoints));
        },
      ),
    );
  });

  it('lists spaces that hold only tombstones, with their digest', () => {
    const store = new MemoryStore();
    store.tombstone('gone', 'x', 3);
    expect(store.listSpaces('', 10, NO_BYTE_CAP)).toEqual({
      spaces: [store.digest('gone')],
      more: false,
    });
    expect(store.digest('gone')).toMatchObject({ memories: 0, tombstones: 1 });
  });

  it('stops a page at the byte budget, but never before one space', () => {
    const store = new MemoryStore();
    for (const s of ['a', 'b', 'c']) store.put(s.repeat(100), memory('m', 1));
    const first = store.listSpaces('', 10, 1);
    expect(first.spaces.map((d) => d.spaceId)).toEqual(['a'.repeat(100)]);
    expect(first.more).toBe(true);
    expect(store.listSpaces('', 10, 300).spaces).toHaveLength(2);
  });
});

describe('ScanSpace paging', () => {
  function mixed(n: number): MemoryStore {
    const store = new MemoryStore();
    for (let i = 0; i < n; i++) {
      const id = `id-${String(i).padStart(3, '0')}`;
      if (i % 3 === 0) store.tombstone('s', id, i + 1);
      else store.put('s', memory(id, i + 1));
    }
    return store;
  }

  it('merges memories and tombstones in id order, every entry exactly once', () => {
    for (const limit of [1, 2, 7, 50, 500]) {
      const pages = scanAll(mixed(50), 's', limit);
      const ids = pages.flatMap(idsOf);
      expect(ids).toEqual(Array.from({ length: 50 }, (_, i) => `id-${String(i).padStart(3, '0')}`));
      for (const page of pages.slice(0, -1)) {
        expect(idsOf(page)).toHaveLength(limit);
        expect(page.more).toBe(true);
      }
      expect(pages.at(-1)?.more).toBe(false);
    }
    const tombs = scanAll(mixed(50), 's', 500)[0]!.tombstones;
    expect(tombs).toHaveLength(17);
    expect(tombs[1]).toEqual({ id: 'id-003', version: 4 });
  });

  it('resumes after any id, present or not, and sees writes ahead of the cursor', () => {
    const store = mixed(10);
    expect(idsOf(store.scan('s', 'id-004x', 2, NO_BYTE_CAP))).toEqual(['id-005', 'id-006']);
    const first = store.scan('s', '', 3, NO_BYTE_CAP);
    store.put('s', memory('id-000a', 99)); // behind the cursor: the next page does not see it
    store.put('s', memory('id-999', 99)); // ahead of it: a later page does
    const rest = scanAll(store, 's', 100).flatMap(idsOf);
    expect(rest).toContain('id-999');
    const next = store.scan('s', idsOf(first).at(-1)!, 100, NO_BYTE_CAP);
    expect(idsOf(next)).not.toContain('id-000a');
    expect(idsOf(next)).toContain('id-999');
  });

  it('stops a page at the byte budget (with `more`), never before one entry', () => {
    const store = new MemoryStore();
    for (let i = 0; i < 10; i++) {
      store.put('s', memory(`m${i}`, 1, { content: 'x'.repeat(1000) }));
    }
    const pages = scanAll(store, 's', 500, 2500);
    expect(pages.map((p) => p.memories.length)).toEqual([2, 2, 2, 2, 2]);
    expect(scanAll(store, 's', 500, 1).map((p) => p.memories.length)).toEqual(Array(10).fill(1));
  });

  it('answers an unknown space with an empty last page', () => {
    expect(new MemoryStore().scan('nope', '', 10, NO_BYTE_CAP)).toEqual({
      memories: [],
      tombstones: [],
      more: false,
    });
  });
});

describe('consolidation at a version', () => {
  const data = [
    memory('a1', 1, { content: 'alpha', embedding: [1, 0], confidence: 0.2, createdAtMs: 1 }),
    memory('a2', 2, {
      content: 'alpha 2',
      embedding: [0.99, 0.01],
      confidence: 0.9,
      createdAtMs: 2,
    }),
    memory('b1', 3, { content: 'Beta', confidence: 0.7, createdAtMs: 3 }),
    memory('b2', 4, { content: 'beta', confidence: 0.1, createdAtMs: 4 }),
    memory('c', 5, { content: 'gamma', embedding: [0, 1], createdAtMs: 5 }),
  ];
  const V = 100;

  it('gives the same tombstones and digest on two replicas holding the same data', () => {
    const a = new MemoryStore();
    for (const m of data) a.put('s', m);
    const b = new MemoryStore();
    for (const m of [...data].reverse()) b.put('s', m);
    const planA = a.planMerge('s', 0.95, V);
    const planB = b.planMerge('s', 0.95, V);
    expect(planB).toEqual(planA);
    expect(planA.groups.map((g) => [g.kept.id, g.removed])).toEqual([
      ['a1', ['a2']],
      ['b1', ['b2']],
    ]);
    // a1's confidence rose (0.2 → 0.9): rewritten at V; b1's did not: left alone
    expect(planA.writes.memories).toEqual([{ ...data[0]!, confidence: 0.9, version: V }]);
    expect(planA.writes.tombstones).toEqual([
      { id: 'a2', version: V },
      { id: 'b2', version: V },
    ]);
    a.applyEntries('s', planA.writes.memories, planA.writes.tombstones);
    b.applyEntries('s', planB.writes.memories, planB.writes.tombstones);
    expect(b.digest('s')).toEqual(a.digest('s'));
    expect(a.digest('s')).toMatchObject({ memories: 3, tombstones: 2 });
    expect(a.get('s', 'b1')?.version).toBe(3);
  });

  it('a replica that consolidated nothing converges by applying the other’s scan', () => {
    const a = new MemoryStore();
    const b = new MemoryStore();
    for (const m of data) {
      a.put('s', m);
      b.put('s', m);
    }
    const plan = a.planMerge('s', 0.95, V);
    a.applyEntries('s', plan.writes.memories, plan.writes.tombstones);
    expect(b.digest('s')).not.toEqual(a.digest('s'));
    for (const page of scanAll(a, 's', 2)) b.applyEntries('s', page.memories, page.tombstones);
    expect(b.digest('s')).toEqual(a.digest('s'));
    expect(scanAll(b, 's', 500)).toEqual(scanAll(a, 's', 500));
    // and streaming back changes nothing
    for (const page of scanAll(b, 's', 500)) {
      expect(a.applyEntries('s', page.memories, page.tombstones)).toBe(0);
    }
  });

  it('leaves out memories written at or after its version', () => {
    const store = new MemoryStore();
    store.put('s', memory('old', 5, { content: 'same', createdAtMs: 1 }));
    store.put('s', memory('at', 10, { content: 'same', createdAtMs: 2 }));
    store.put('s', memory('after', 11, { content: 'same', createdAtMs: 3 }));
    expect(store.planMerge('s', 0.95, 10).groups).toEqual([]);
    const plan = store.planMerge('s', 0.95, 12);
    expect(plan.groups.map((g) => [g.kept.id, g.removed])).toEqual([['old', ['at', 'after']]]);
    expect(plan.before).toBe(3);
  });
});
