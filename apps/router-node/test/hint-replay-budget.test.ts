import { describe, expect, it } from 'vitest';
import { replayBudget } from '../src/internal/hint-manager.js';

describe('hint replay budget', () => {
  it("is the tick's share of replayPerSecond for a node not in slow start", () => {
    expect(replayBudget(1000, 100, 1)).toBe(100);
    expect(replayBudget(25, 100, 1)).toBe(2);
  });

  it("ramps with the node's slow start, and never drops below one hint per tick", () => {
    expect(replayBudget(1000, 100, 0)).toBe(1);
    expect(replayBudget(1000, 100, 0.25)).toBe(25);
    expect(replayBudget(1000, 100, 0.5)).toBe(50);
    expect(replayBudget(1000, 100, 0.999)).toBe(99);
    expect(replayBudget(5, 100, 0.5)).toBe(1);
  });

  it('takes a warmth outside [0, 1] as no ramp', () => {
    for (const w of [Number.NaN, -0.5, 1.5, Number.POSITIVE_INFINITY]) {
      expect(replayBudget(1000, 100, w)).toBe(100);
    }
  });
});
