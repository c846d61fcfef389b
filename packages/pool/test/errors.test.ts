import { describe, expect, it } from 'vitest';
import {
  ConnectionFailedError,
  ConnectionPool,
  InvalidArgumentError,
  isConnectionFailed,
  isPoolError,
  POOL_ERROR_CODES,
  PoolClosedError,
  PoolError,
  UnknownNodeError,
} from '../src/index.js';

const BRAND = Symbol.for('@engram/error');

describe('pool errors', () => {
  it('lists every code once, keys equal to values, frozen', () => {
    expect(Object.isFrozen(POOL_ERROR_CODES)).toBe(true);
    for (const [key, value] of Object.entries(POOL_ERROR_CODES)) expect(value).toBe(key);
    expect(Object.values(POOL_ERROR_CODES).sort()).toEqual([
      'ConnectionFailed',
      'InvalidArgument',
      'PoolClosed',
      'UnknownNode',
    ]);
  });

  it('isPoolError recognises what the pool throws, bad arguments included', () => {
    const failed = new ConnectionFailedError('a', '127.0.0.1:1', new Error('refused'));
    for (const error of [failed, new UnknownNodeError('a'), new PoolClosedError()]) {
      expect(error).toBeInstanceOf(PoolError);
      expect(isPoolError(error)).toBe(true);
    }
    expect(isConnectionFailed(failed)).toBe(true);
    let thrown: unknown;
    try {
      new ConnectionPool().addNode('a', 'no-port');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidArgumentError);
    expect(isPoolError(thrown)).toBe(true);
  });

  it('the guards go by brand and code, so errors of another copy of the pool pass', () => {
    const foreign = Object.assign(new Error('refused'), {
      code: 'ConnectionFailed',
      nodeId: 'a',
      address: '127.0.0.1:1',
    });
    Object.defineProperty(foreign, BRAND, { value: true });
    expect(foreign).not.toBeInstanceOf(ConnectionFailedError);
    expect(isConnectionFailed(foreign)).toBe(true);
    expect(isPoolError(foreign)).toBe(true);
    expect(isPoolError({ [BRAND]: true, code: 'UnknownNode' })).toBe(true);
  });

  it('the guards refuse unbranded look-alikes and other packages’ codes', () => {
    const lookAlike = Object.assign(new Error('refused'), { code: 'ConnectionFailed' });
    expect(isConnectionFailed(lookAlike)).toBe(false);
    expect(isPoolError(lookAlike)).toBe(false);
    expect(isPoolError({ [BRAND]: true, code: 'CircuitBreakerOpen' })).toBe(false);
    expect(isConnectionFailed({ [BRAND]: true, code: 'PoolClosed' })).toBe(false);
  });

  it('validates addresses with the common host:port rules, brackets and all', () => {
    const pool = new ConnectionPool();
    expect(pool.addNode('v6', '[::1]:7000')).toBe(0);
    expect(() => pool.addNode('bad', 'local host:80')).toThrow(
      expect.objectContaining({ code: 'InvalidArgument', field: 'address' }),
    );
    expect(() => pool.addNode('bad', '::1:80')).toThrow(
      expect.objectContaining({ code: 'InvalidArgument', field: 'address' }),
    );
  });
});
