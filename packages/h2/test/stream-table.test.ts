import { describe, expect, it } from 'vitest';
import { StreamTable } from '../src/internal/stream-table.js';

interface S {
  readonly id: number;
  readonly tag: string;
}
const s = (id: number, tag = `s${id}`): S => ({ id, tag });

/** Every id of `model` is found with its value, and ids around them are not. */
function expectSame(table: StreamTable<S>, model: Map<number, S>): void {
  expect(table.size).toBe(model.size);
  for (const [id, v] of model) expect(table.get(id)).toBe(v);
  expect(table.values()).toEqual([...model.values()].sort((a, b) => a.id - b.id));
}

describe('StreamTable', () => {
  it('gets, replaces and deletes like a Map', () => {
    const t = new StreamTable<S>();
    expect(t.get(1)).toBeUndefined();
    expect(t.delete(1)).toBe(false);
    const a = s(1);
    t.set(1, a);
    t.set(3, s(3));
    expect(t.get(1)).toBe(a);
    expect(t.size).toBe(2);
    const a2 = s(1, 'again');
    t.set(1, a2); // replaced, not added
    expect(t.size).toBe(2);
    expect(t.get(1)).toBe(a2);
    expect(t.delete(1)).toBe(true);
    expect(t.delete(1)).toBe(false);
    expect(t.get(1)).toBeUndefined();
    expect(t.get(3)?.tag).toBe('s3');
    expect(t.size).toBe(1);
  });

  it('refuses stream 0 and negative ids, naming the value', () => {
    const t = new StreamTable<S>();
    expect(() => t.set(0, s(0))).toThrow(/stream id must be positive, not 0/);
    expect(() => t.set(-3, s(-3))).toThrow(RangeError);
    expect(t.size).toBe(0);
  });

  it('keeps every entry of a run that collides and wraps around the end when one leaves', () => {
    const t = new StreamTable<S>();
    const model = new Map<number, S>();
    // 8 slots (4 entries before growing): ids 13, 29 and 45 hash to slot 6 (id >>> 1 & 7), id
    // 15 to slot 7: the run 6, 7, 0, 1 wraps past the end of the table.
    for (const id of [13, 29, 15, 45]) {
      const v = s(id);
      t.set(id, v);
      model.set(id, v);
    }
    expectSame(t, model);
    for (const id of [13, 15, 29]) {
      t.delete(id);
      model.delete(id);
      expectSame(t, model);
      expect(t.get(id)).toBeUndefined();
    }
  });

  it('grows past its first slots and keeps everything', () => {
    const t = new StreamTable<S>();
    const model = new Map<number, S>();
    for (let id = 1; id < 2000; id += 2) {
      const v = s(id);
      t.set(id, v);
      model.set(id, v);
    }
    expectSame(t, model);
  });

  it('matches a Map over a seeded random life: rising ids, long-lived and short streams', () => {
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const t = new StreamTable<S>();
    const model = new Map<number, S>();
    let next = 1;
    for (let step = 0; step < 20_000; step++) {
      const r = rand();
      if (r < 0.5 || model.size === 0) {
        // Mostly the next id; sometimes a jump (a peer may skip ids), sometimes colliding.
        next += rand() < 0.9 ? 2 : 2 * (1 + Math.floor(rand() * 64));
        const v = s(next);
        t.set(next, v);
        model.set(next, v);
      } else if (r < 0.95) {
        // Mostly the oldest few (calls end in about the order they started), else any.
        const ids = [...model.keys()];
        const id =
          rand() < 0.7
            ? ids[Math.floor(rand() * Math.min(4, ids.length))]!
            : ids[Math.floor(rand() * ids.length)]!;
        expect(t.delete(id)).toBe(true);
        model.delete(id);
      } else {
        const id = 1 + 2 * Math.floor(rand() * (next / 2 + 8));
        expect(t.get(id)).toBe(model.get(id));
      }
      if (step % 97 === 0) expectSame(t, model);
    }
    expectSame(t, model);
    for (const id of [...model.keys()]) t.delete(id);
    expect(t.size).toBe(0);
    expect(t.values()).toEqual([]);
  });
});
