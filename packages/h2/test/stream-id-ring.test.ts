import { describe, expect, it } from 'vitest';
import { StreamIdRing } from '../src/internal/stream-id-ring.js';

describe('StreamIdRing', () => {
  it('remembers the last `capacity` ids, forgetting the oldest first', () => {
    const ring = new StreamIdRing(4);
    for (const id of [1, 3, 5, 7]) ring.add(id);
    expect([1, 3, 5, 7].every((id) => ring.has(id))).toBe(true);
    ring.add(9);
    expect(ring.has(1)).toBe(false);
    expect([3, 5, 7, 9].every((id) => ring.has(id))).toBe(true);
    expect(ring.has(-3)).toBe(false); // the sign is part of the id
  });

  it('keeps an id added twice until its last copy is overwritten', () => {
    const ring = new StreamIdRing(2);
    ring.add(5);
    ring.add(5);
    ring.add(7); // overwrites the first 5
    expect(ring.has(5)).toBe(true);
    ring.add(9); // overwrites the second 5
    expect(ring.has(5)).toBe(false);
  });

  it('refuses a capacity that is not a power of two', () => {
    expect(() => new StreamIdRing(3)).toThrow(RangeError);
  });
});
