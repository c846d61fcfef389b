import { describe, expect, it } from 'vitest';
import {
  buildRing,
  CapacityExceededError,
  InvalidArgumentError,
  InvalidTableError,
  isRingError,
  RING_ERROR_CODES,
  RingError,
} from '../src/index.js';

const BRAND = Symbol.for('@engram/error');

describe('ring errors', () => {
  it('lists every code once, keys equal to values, frozen', () => {
    expect(Object.isFrozen(RING_ERROR_CODES)).toBe(true);
    for (const [key, value] of Object.entries(RING_ERROR_CODES)) expect(value).toBe(key);
    expect(Object.values(RING_ERROR_CODES).sort()).toEqual([
      'CapacityExceeded',
      'InvalidArgument',
      'InvalidTable',
    ]);
  });

  it('isRingError recognises what ring throws, bad input included', () => {
    let thrown: unknown;
    try {
      buildRing({ nodes: [] });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidArgumentError);
    expect(thrown).toBeInstanceOf(RangeError);
    expect(isRingError(thrown)).toBe(true);
    expect(isRingError(new CapacityExceededError('maxNodes', 3, 2))).toBe(true);
    expect(isRingError(new InvalidTableError('bad magic'))).toBe(true);
    expect(new InvalidTableError('bad magic')).toBeInstanceOf(RingError);
  });

  it('isRingError goes by brand and code, so an error of another copy of ring passes', () => {
    const foreign = Object.assign(new Error('from another copy'), { code: 'InvalidTable' });
    Object.defineProperty(foreign, BRAND, { value: true });
    expect(foreign).not.toBeInstanceOf(RingError);
    expect(isRingError(foreign)).toBe(true);
    expect(isRingError({ [BRAND]: true, code: 'CapacityExceeded' })).toBe(true);
  });

  it('isRingError refuses unbranded look-alikes and other packages’ codes', () => {
    expect(isRingError(Object.assign(new Error('x'), { code: 'InvalidTable' }))).toBe(false);
    expect(isRingError({ [BRAND]: true, code: 'CircuitBreakerOpen' })).toBe(false);
    expect(isRingError({ [BRAND]: true, code: 'toString' })).toBe(false);
    expect(isRingError(undefined)).toBe(false);
  });
});
