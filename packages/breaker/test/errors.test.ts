import { describe, expect, it } from 'vitest';
import {
  BREAKER_ERROR_CODES,
  BreakerError,
  BreakerTable,
  CircuitBreaker,
  CircuitBreakerOpenError,
  ConsecutiveFailures,
  FailureRate,
  InvalidArgumentError,
  isBreakerError,
  isCircuitBreakerOpenError,
  LayoutMismatchError,
} from '../src/index.js';

const BRAND = Symbol.for('@engram/error');

function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('breaker errors', () => {
  it('lists every code once, keys equal to values, frozen', () => {
    expect(Object.isFrozen(BREAKER_ERROR_CODES)).toBe(true);
    for (const [key, value] of Object.entries(BREAKER_ERROR_CODES)) expect(value).toBe(key);
  });

  it('bad options are InvalidArgumentErrors (RangeErrors) naming the field and the value', () => {
    const cases: [() => unknown, string, unknown][] = [
      [() => new BreakerTable({ capacity: 0 }), 'capacity', 0],
      [() => new BreakerTable({}), 'capacity', undefined],
      [() => new BreakerTable({ capacity: 1, halfOpenProbes: 17 }), 'halfOpenProbes', 17],
      [() => new BreakerTable({ capacity: 1, openTimeoutMs: -1 }), 'openTimeoutMs', -1],
      [
        () => new BreakerTable({ capacity: 1, openTimeoutMultiplier: 0 }),
        'openTimeoutMultiplier',
        0,
      ],
      [() => new BreakerTable({ capacity: 1, trip: [] }), 'trip', []],
      [() => new ConsecutiveFailures(0), 'threshold', 0],
      [() => new FailureRate({ threshold: 2 }), 'threshold', 2],
      [() => new FailureRate({ windowSize: 2000 }), 'windowSize', 2000],
      [() => new BreakerTable({ capacity: 2 }).tryAcquire(2), 'slot', 2],
    ];
    for (const [fn, field, value] of cases) {
      const error = thrownBy(fn);
      expect(error, field).toBeInstanceOf(InvalidArgumentError);
      expect(error, field).toBeInstanceOf(RangeError);
      expect(error, field).toMatchObject({ code: 'InvalidArgument', field });
      expect((error as InvalidArgumentError).value, field).toEqual(value);
      expect(isBreakerError(error), field).toBe(true);
    }
  });

  it('a buffer that is not a SharedArrayBuffer is an InvalidArgument naming buffer', () => {
    const error = thrownBy(
      () => new BreakerTable({ buffer: new ArrayBuffer(64) as unknown as SharedArrayBuffer }),
    );
    expect(error).toMatchObject({ code: 'InvalidArgument', field: 'buffer' });
  });

  it('a foreign or truncated SharedArrayBuffer is a LayoutMismatch', () => {
    const table = new BreakerTable({ capacity: 4 });
    const truncated = new SharedArrayBuffer(table.buffer.byteLength - 64);
    new Int32Array(truncated).set(new Int32Array(table.buffer, 0, truncated.byteLength / 4));
    for (const buffer of [
      new SharedArrayBuffer(1024),
      new SharedArrayBuffer(8),
      new SharedArrayBuffer(66),
      truncated,
    ]) {
      const error = thrownBy(() => new BreakerTable({ buffer }));
      expect(error).toBeInstanceOf(LayoutMismatchError);
      expect(error).toMatchObject({ code: 'LayoutMismatch', what: 'breaker table' });
      expect(isBreakerError(error)).toBe(true);
    }
  });

  it('CircuitBreakerOpenError is a BreakerError that both guards recognise', async () => {
    const breaker = new CircuitBreaker({ trip: new ConsecutiveFailures(1) });
    breaker.onFailure(breaker.tryAcquire());
    const error = await breaker.execute(() => 1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CircuitBreakerOpenError);
    expect(error).toBeInstanceOf(BreakerError);
    expect(isBreakerError(error)).toBe(true);
    expect(isCircuitBreakerOpenError(error)).toBe(true);
  });

  it('the guards go by brand and code, so errors of another copy of breaker pass', () => {
    const foreign = Object.assign(new Error('circuit breaker is open'), {
      code: 'CircuitBreakerOpen',
    });
    Object.defineProperty(foreign, BRAND, { value: true });
    expect(foreign).not.toBeInstanceOf(BreakerError);
    expect(isCircuitBreakerOpenError(foreign)).toBe(true);
    expect(isBreakerError(foreign)).toBe(true);
    expect(isBreakerError({ [BRAND]: true, code: 'LayoutMismatch' })).toBe(true);
  });

  it('the guards refuse unbranded look-alikes and other packages’ codes', () => {
    const lookAlike = Object.assign(new Error('x'), { code: 'CircuitBreakerOpen' });
    expect(isCircuitBreakerOpenError(lookAlike)).toBe(false);
    expect(isBreakerError(lookAlike)).toBe(false);
    expect(isBreakerError({ [BRAND]: true, code: 'DeadlineExceeded' })).toBe(false);
    expect(isCircuitBreakerOpenError({ [BRAND]: true, code: 'LayoutMismatch' })).toBe(false);
  });
});
