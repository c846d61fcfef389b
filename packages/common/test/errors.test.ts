import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  describeValue,
  ENGRAM_ERROR_BRAND,
  EngramError,
  InvalidArgumentError,
  isEngramError,
  LayoutMismatchError,
} from '../src/index.js';

describe('EngramError', () => {
  it('carries a stable code, the message, the cause and the brand', () => {
    const cause = new Error('socket hang up');
    const error = new EngramError('ConnectionFailed', 'node a failed', { cause });
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('ConnectionFailed');
    expect(error.message).toBe('node a failed');
    expect(error.cause).toBe(cause);
    expect(error.name).toBe('EngramError');
    expect(error[ENGRAM_ERROR_BRAND]).toBe(true);
  });

  it('keeps the brand out of logs (not enumerable)', () => {
    const error = new EngramError('X', 'm');
    expect(Object.getOwnPropertySymbols(error)).toEqual([ENGRAM_ERROR_BRAND]);
    expect(Object.getOwnPropertyDescriptor(error, ENGRAM_ERROR_BRAND)?.enumerable).toBe(false);
    expect(inspect(error)).not.toContain('@engram/error');
  });

  it('is the global symbol @engram/error, so every copy of this package shares it', () => {
    expect(ENGRAM_ERROR_BRAND).toBe(Symbol.for('@engram/error'));
  });
});

describe('isEngramError', () => {
  it('recognises every branded error, and filters by code when asked', () => {
    const error = new EngramError('PoolClosed', 'closed');
    expect(isEngramError(error)).toBe(true);
    expect(isEngramError(error, 'PoolClosed')).toBe(true);
    expect(isEngramError(error, 'UnknownNode')).toBe(false);
  });

  it('recognises an error of a structurally identical copy by its brand, not instanceof', () => {
    // What a second installed copy of @engram/common produces: another class, same brand.
    class CopiedEngramError extends Error {
      readonly code = 'CircuitBreakerOpen';
      constructor() {
        super('circuit breaker is open');
        Object.defineProperty(this, Symbol.for('@engram/error'), { value: true });
      }
    }
    const copy = new CopiedEngramError();
    expect(copy).not.toBeInstanceOf(EngramError);
    expect(isEngramError(copy)).toBe(true);
    expect(isEngramError(copy, 'CircuitBreakerOpen')).toBe(true);
    expect(isEngramError({ [Symbol.for('@engram/error')]: true, code: 'InvalidArgument' })).toBe(
      true,
    );
  });

  it('rejects look-alikes without the brand, a brand without a string code, and non-objects', () => {
    expect(isEngramError(Object.assign(new Error('x'), { code: 'PoolClosed' }))).toBe(false);
    expect(isEngramError({ [Symbol('@engram/error')]: true, code: 'PoolClosed' })).toBe(false);
    expect(isEngramError({ [ENGRAM_ERROR_BRAND]: 'yes', code: 'PoolClosed' })).toBe(false);
    expect(isEngramError({ [ENGRAM_ERROR_BRAND]: true, code: 14 })).toBe(false);
    for (const value of [undefined, null, 'InvalidArgument', 3, () => {}]) {
      expect(isEngramError(value)).toBe(false);
    }
  });
});

describe('InvalidArgumentError', () => {
  it('is a branded RangeError naming the field, the value and what was expected', () => {
    const error = new InvalidArgumentError('nodes[2].address', 'localhost', 'a "host:port" string');
    expect(error).toBeInstanceOf(RangeError);
    expect(error.code).toBe('InvalidArgument');
    expect(error.field).toBe('nodes[2].address');
    expect(error.value).toBe('localhost');
    expect(error.name).toBe('InvalidArgumentError');
    expect(error.message).toBe(
      'nodes[2].address must be a "host:port" string, received "localhost"',
    );
    expect(isEngramError(error, 'InvalidArgument')).toBe(true);
  });

  it('keeps a long value out of the message but on the error', () => {
    const secret = 'x'.repeat(10_000);
    const error = new InvalidArgumentError('content', secret, 'at most 64 characters');
    expect(error.message).toBe(
      'content must be at most 64 characters, received a string of 10000 characters',
    );
    expect(error.value).toBe(secret);
  });
});

describe('LayoutMismatchError', () => {
  it('names the structure and the difference, with code LayoutMismatch', () => {
    const error = new LayoutMismatchError('breaker table', 'halfOpenProbes differs');
    expect(error).toBeInstanceOf(EngramError);
    expect(error.code).toBe('LayoutMismatch');
    expect(error.name).toBe('LayoutMismatchError');
    expect(error.what).toBe('breaker table');
    expect(error.reason).toBe('halfOpenProbes differs');
    expect(error.message).toBe('buffer is not a compatible breaker table: halfOpenProbes differs');
    expect(isEngramError(error, 'LayoutMismatch')).toBe(true);
  });
});

describe('describeValue', () => {
  it.each([
    ['abc', '"abc"'],
    ['a'.repeat(64), JSON.stringify('a'.repeat(64))],
    ['a'.repeat(65), 'a string of 65 characters'],
    ['', '""'],
    [0, '0'],
    [-1.5, '-1.5'],
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
    [10n, '10n'],
    [true, 'true'],
    [undefined, 'undefined'],
    [null, 'null'],
    [Symbol('s'), 'a symbol'],
    [() => 1, 'a function'],
    [[1, 2, 3], 'an array of 3 items'],
    [[1], 'an array of 1 item'],
    [{ id: 'a' }, 'an object'],
    [Object.create(null), 'an object'],
    [new Map([[1, 2]]), 'a Map of 1 entry'],
    [new Set([1, 2]), 'a Set of 2 entries'],
    [new ArrayBuffer(8), 'an ArrayBuffer of 8 bytes'],
    [new SharedArrayBuffer(16), 'a SharedArrayBuffer of 16 bytes'],
    [new Uint16Array(4), 'a Uint16Array of 4 elements'],
    [new Int32Array(1), 'an Int32Array of 1 element'],
    [Buffer.from('ab'), 'a Buffer of 2 elements'],
    [new DataView(new ArrayBuffer(2)), 'a DataView of 2 bytes'],
    [new Date(0), 'an instance of Date'],
  ])('renders %o as %s', (value, expected) => {
    expect(describeValue(value)).toBe(expected);
  });

  it('calls none of the value’s methods or getters', () => {
    const hostile = {
      toString() {
        throw new Error('toString called');
      },
      toJSON() {
        throw new Error('toJSON called');
      },
      get size() {
        throw new Error('getter called');
      },
    };
    expect(describeValue(hostile)).toBe('an object');
  });

  it('never throws, even for a revoked Proxy', () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(describeValue(proxy)).toBe('an object');
  });
});
