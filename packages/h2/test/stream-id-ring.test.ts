import fc from 'fast-check';
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

  it('answers as a plain list of the last `capacity` ids would, whatever was added', () => {
    // Small id ranges and capacities: many repeats, collisions and wrap-arounds in the hash.
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 4, 8, 16),
        fc.array(
          fc.integer({ min: -40, max: 40 }).filter((id) => id !== 0),
          { maxLength: 300 },
        ),
        (capacity, added) => {
          const ring = new StreamIdRing(capacity);
          const model: number[] = [];
          for (const id of added) {
            ring.add(id);
            model.push(id);
            if (model.length > capacity) model.shift();
            for (let probe = -41; probe <= 41; probe++) {
              if (ring.has(probe) !== model.includes(probe)) return false;
            }
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });

  it('answers alike when looked up only now and then, after runs of adds that wrap the ring', () => {
    // `has` indexes what was added since it last ran: runs shorter than, equal to and longer
    // than the capacity (an id overwritten within a run, the whole ring rewritten) between looks.
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 4, 8, 16),
        fc.array(
          fc.tuple(
            fc.array(
              fc.integer({ min: -40, max: 40 }).filter((id) => id !== 0),
              { maxLength: 40 },
            ),
            fc.integer({ min: -41, max: 41 }),
          ),
          { maxLength: 30 },
        ),
        (capacity, runs) => {
          const ring = new StreamIdRing(capacity);
          const model: number[] = [];
          for (const [added, first] of runs) {
            for (const id of added) {
              ring.add(id);
              model.push(id);
              if (model.length > capacity) model.shift();
            }
            // One probe first (it indexes the run), then every id against the model.
            if (ring.has(first) !== model.includes(first)) return false;
            for (let probe = -41; probe <= 41; probe++) {
              if (ring.has(probe) !== model.includes(probe)) return false;
            }
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });

  it('ids far apart that share a home slot stay findable as others leave', () => {
    const ring = new StreamIdRing(4);
    // Odd client stream ids 2^16 apart land close in an 8-slot table; add and overwrite them.
    const ids = [1, 65_537, 131_073, 196_609, 262_145, 327_681];
    for (const id of ids) ring.add(id);
    expect(ids.map((id) => ring.has(id))).toEqual([false, false, true, true, true, true]);
  });

  it('refuses a capacity that is not a power of two', () => {
    expect(() => new StreamIdRing(3)).toThrow(RangeError);
  });
});
