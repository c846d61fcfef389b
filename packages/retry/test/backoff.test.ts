import { describe, expect, it } from 'vitest';
import {
  BACKOFF_DEFAULTS,
  type BackoffState,
  backoffDelay,
  backoffStep,
  INITIAL_BACKOFF_STATE,
  type JitterMode,
  seededRandom,
} from '../src/index.js';

function delays(jitter: JitterMode, n: number, seed = 7): number[] {
  const random = seededRandom(seed);
  let state: BackoffState = INITIAL_BACKOFF_STATE;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const [delay, next] = backoffStep(state, { jitter }, random);
    out.push(delay);
    state = next;
  }
  return out;
}

describe('backoff', () => {
  const caps = [100, 200, 400, 800, 1600, 3200, 5000, 5000];

  it('defaults to full jitter, 100 ms base and 5 s cap', () => {
    expect(BACKOFF_DEFAULTS).toEqual({ baseMs: 100, maxMs: 5000, jitter: 'full' });
  });

  it("'none' is base * 2^attempt capped at max", () => {
    expect(delays('none', 8)).toEqual(caps);
  });

  it("'full' draws each delay from [0, capped) with the seeded randomness", () => {
    const random = seededRandom(7);
    const expected = caps.map((d) => random() * d);
    expect(delays('full', 8)).toEqual(expected);
  });

  it("'equal' is d/2 + random(0, d/2) (the seed's formula)", () => {
    const random = seededRandom(7);
    const expected = caps.map((d) => d / 2 + random() * (d / 2));
    const got = delays('equal', 8);
    expect(got).toEqual(expected);
    got.forEach((delay, i) => {
      expect(delay).toBeGreaterThanOrEqual(caps[i]! / 2);
      expect(delay).toBeLessThan(caps[i]!);
    });
  });

  it("'decorrelated' is min(max, random(base, prev * 3)) starting from base", () => {
    const random = seededRandom(7);
    let prev = 100;
    const expected: number[] = [];
    for (let i = 0; i < 8; i++) {
      prev = Math.min(5000, 100 + random() * (prev * 3 - 100));
      expected.push(prev);
    }
    expect(delays('decorrelated', 8)).toEqual(expected);
  });

  it('gives exact values with fixed randomness', () => {
    const half = () => 0.5;
    expect(backoffDelay(2, 0, { jitter: 'full' }, half)).toBe(200);
    expect(backoffDelay(2, 0, { jitter: 'equal' }, half)).toBe(300);
    expect(backoffDelay(0, 0, { jitter: 'decorrelated' }, half)).toBe(200);
    expect(backoffDelay(0, 1000, { jitter: 'decorrelated' }, half)).toBe(1550);
    expect(backoffDelay(60, 0, { jitter: 'none', baseMs: 10, maxMs: 50 }, half)).toBe(50);
    expect(backoffDelay(5000, 0, { jitter: 'none' }, half)).toBe(5000);
  });

  it('rejects bad options with a RangeError naming the field and value', () => {
    const r = () => 0;
    expect(() => backoffStep(INITIAL_BACKOFF_STATE, { baseMs: -1 }, r)).toThrow(
      /baseMs.*received -1/,
    );
    expect(() => backoffStep(INITIAL_BACKOFF_STATE, { baseMs: 10, maxMs: 5 }, r)).toThrow(
      /maxMs.*received 5/,
    );
    expect(() => backoffStep(INITIAL_BACKOFF_STATE, { jitter: 'fuzzy' as JitterMode }, r)).toThrow(
      /jitter.*received "fuzzy"/,
    );
  });
});
