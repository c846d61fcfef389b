import { createHash } from 'node:crypto';
import { encodeMemory, type Memory } from '@engram/proto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareCodePoints } from '../src/internal/code-point.js';
import { entryHash } from '../src/internal/digest.js';
import { MemoryStore } from '../src/internal/store.js';
import { VersionStamper } from '../src/internal/versions.js';

const memory = (id: string, version: number, extra: Partial<Memory> = {}): Memory => ({
  id,
  content: `content of ${id}`,
  embedding: [],
  confidence: 0.5,
  createdAtMs: 1,
  version,
  ...extra,
});

const sha8 = (text: string) => createHash('sha256').update(text).digest().subarray(0, 8);

describe('last write wins per (space, id)', () => {
  it('a newer version replaces the stored memory; an older one is ignored', () => {
    const store = new MemoryStore();
    expect(store.put('s', memory('a', 10, { content: 'ten' }))).toBe(true);
    expect(store.put('s', memory('a', 20, { content: 'twenty' }))).toBe(true);
    expect(store.put('s', memory('a', 15, { content: 'fifteen' }))).toBe(false);
    expect(store.get('s', 'a')).toMatchObject({ content: 'twenty', version: 20 });
    expect(store.size('s')).toBe(1);
  });

  it('breaks a tie of equal versions by the larger canonical encoding, in either order', () => {
    const x = memory('a', 7, { content: 'xylophone' });
    const y = memory('a', 7, { content: 'apple', confidence: 0.9 });
    const winner = Buffer.compare(encodeMemory(x), encodeMemory(y)) > 0 ? x : y;
    const one = new MemoryStore();
    one.put('s', x);
    one.put('s', y);
    const two = new MemoryStore();
    two.put('s', y);
    two.put('s', x);
    expect(one.get('s', 'a')).toEqual(winner);
    expect(two.get('s', 'a')).toEqual(winner);
    expect(one.digest('s')).toEqual(two.digest('s'));
  });

  it('treats a replay of the stored memory as no change', () => {
    const store = new MemoryStore();
    store.put('s', memory('a', 3));
    const before = store.digest('s');
    expect(store.put('s', memory('a', 3))).toBe(false);
    expect(store.digest('s')).toEqual(before);
  });
});

describe('tombstones', () => {
  it('block a memory of the same or an older version; a newer memory supersedes them', () => {
    const store = new MemoryStore();
    store.put('s', memory('a', 5));
    expect(store.tombstone('s', 'a', 10)).toBe(true);
    expect(store.get('s', 'a')).toBeUndefined();
    expect(store.digest('s')).toMatchObject({ memories: 0, tombstones: 1 });
    expect(store.put('s', memory('a', 9))).toBe(false); // a replayed hint
    expect(store.put('s', memory('a', 10))).toBe(false); // the tombstone wins a tie
    expect(store.tombstoneVersion('s', 'a')).toBe(10);
    expect(store.put('s', memory('a', 11, { content: 'back' }))).toBe(true);
    expect(store.get('s', 'a')).toMatchObject({ content: 'back' });
    expect(store.tombstoneVersion('s', 'a')).toBeUndefined();
    expect(store.digest('s')).toMatchObject({ memories: 1, tombstones: 0 });
  });

  it('an older tombstone is ignored; one at the memory’s own version removes it', () => {
    const store = new MemoryStore();
    store.put('s', memory('a', 5));
    expect(store.tombstone('s', 'a', 4)).toBe(false);
    expect(store.get('s', 'a')).toBeDefined();
    expect(store.tombstone('s', 'a', 5)).toBe(true);
    expect(store.get('s', 'a')).toBeUndefined();
    // a tombstone for an id never seen is kept: it blocks a copy still on its way
    expect(store.tombstone('s', 'never', 8)).toBe(true);
    expect(store.put('s', memory('never', 8))).toBe(false);
    expect(store.tombstone('s', 'never', 8)).toBe(false);
    expect(store.digest('s')).toMatchObject({ memories: 0, tombstones: 2 });
  });

  it('applyEntries counts only the entries that changed the store', () => {
    const store = new MemoryStore();
    store.put('s', memory('a', 5));
    const applied = store.applyEntries(
      's',
      [memory('a', 4), memory('b', 1), memory('b', 1)],
      [
        { id: 'a', version: 6 },
        { id: 'c', version: 2 },
        { id: 'c', version: 1 },
      ],
    );
    expect(applied).toBe(3); // b once, a's tombstone, c at 2
    expect(store.digest('s')).toMatchObject({ memories: 1, tombstones: 2 });
  });
});

describe('space digest', () => {
  it('is the XOR of the first 8 bytes of SHA-256(id NUL version NUL kind), in hex', () => {
    const store = new MemoryStore();
    store.put('s', memory('a', 1));
    expect(store.digest('s')).toEqual({
      spaceId: 's',
      memories: 1,
      tombstones: 0,
      digest: sha8('a\x001\x00m').toString('hex'),
    });
    store.tombstone('s', 'b', 1_700_000_000_000_000);
    const x = sha8('a\x001\x00m');
    const y = sha8('b\x001700000000000000\x00t');
    const xor = Buffer.from(x.map((byte, i) => byte ^ y[i]!));
    expect(store.digest('s')?.digest).toBe(xor.toString('hex'));
    expect(entryHash('b', 1_700_000_000_000_000, 't')).toBe(y.readBigUInt64BE(0));
  });

  it('keeps leading zeros (16 hex digits) and is undefined for a space the node lacks', () => {
    let id = 0;
    while (sha8(`${id}\x001\x00m`)[0] !== 0) id++; // about 1 in 256 ids
    const store = new MemoryStore();
    store.put('s', memory(String(id), 1));
    expect(store.digest('s')?.digest).toMatch(/^00[0-9a-f]{14}$/);
    expect(store.digest('nothing')).toBeUndefined();
  });

  type Write = { kind: 'm'; memory: Memory } | { kind: 't'; id: string; version: number };
  const writeArb: fc.Arbitrary<Write> = fc.oneof(
    fc
      .record({
        id: fc.constantFrom('a', 'b', 'c', 'd', 'é', '😀'),
        version: fc.integer({ min: 1, max: 6 }),
        content: fc.constantFrom('x', 'y', 'zz'),
        confidence: fc.constantFrom(0, 0.5, 1),
      })
      .map(({ id, version, content, confidence }) => ({
        kind: 'm' as const,
        memory: memory(id, version, { content, confidence }),
      })),
    fc.record({
      kind: fc.constant('t' as const),
      id: fc.constantFrom('a', 'b', 'c', 'd', 'é', '😀'),
      version: fc.integer({ min: 1, max: 6 }),
    }),
  );
  const apply = (writes: readonly Write[]) => {
    const store = new MemoryStore();
    for (const w of writes) {
      if (w.kind === 'm') store.put('s', w.memory);
      else store.tombstone('s', w.id, w.version);
    }
    return store;
  };

  it('is the same, and so is the scan, whatever order the writes arrive in and however often', () => {
    fc.assert(
      fc.property(
        fc.array(writeArb, { minLength: 1, maxLength: 30 }).chain((writes) =>
          fc.tuple(
            fc.constant(writes),
            // the same writes shuffled, some of them replayed again
            fc
              .shuffledSubarray(writes, { minLength: writes.length })
              .chain((shuffled) =>
                fc
                  .subarray(writes)
                  .map((replays) => [...shuffled, ...replays, ...shuffled.slice(0, 3)]),
              ),
          ),
        ),
        ([writes, reordered]) => {
          const a = apply(writes);
          const b = apply(reordered);
          expect(b.digest('s')).toEqual(a.digest('s'));
          expect(b.scan('s', '', 1000, Number.POSITIVE_INFINITY)).toEqual(
            a.scan('s', '', 1000, Number.POSITIVE_INFINITY),
          );
        },
      ),
    );
  });

  it('changes when any entry differs', () => {
    const a = apply([{ kind: 'm', memory: memory('a', 1) }]);
    const b = apply([{ kind: 'm', memory: memory('a', 2) }]);
    const c = apply([{ kind: 't', id: 'a', version: 1 }]);
    const digests = new Set([a, b, c].map((s) => s.digest('s')?.digest));
    expect(digests.size).toBe(3);
  });
});

describe('version stamps', () => {
  it('are the wall clock in µs, and still increase when the clock stalls or steps back', () => {
    let now = 1_700_000_000_000; // ms
    const stamper = new VersionStamper({ now: () => now });
    const first = stamper.stamp();
    expect(first).toBe(1_700_000_000_000_000);
    expect(stamper.stamp()).toBe(first + 1); // same ms
    now -= 5000; // NTP stepped the clock back 5 s
    expect(stamper.stamp()).toBe(first + 2);
    now += 10_000;
    expect(stamper.stamp()).toBe((1_700_000_000_000 + 5000) * 1000);
  });
});

describe('code-point order', () => {
  it('orders like the UTF-8 bytes, unlike UTF-16 code units', () => {
    // U+FF5E (one unit, 0xFF5E) sorts after U+1F600 (units 0xD83D 0xDE00) in UTF-16 order
    expect('\uff5e' < '😀').toBe(false);
    expect(compareCodePoints('\uff5e', '😀')).toBeLessThan(0);
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
        const expected = Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)));
        expect(Math.sign(compareCodePoints(a, b))).toBe(expected);
      }),
    );
  });
});
