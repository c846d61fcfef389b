import { describe, expect, it } from 'vitest';
import {
  AbortedError,
  backoffStep,
  DeadlineExceededError,
  INITIAL_BACKOFF_STATE,
  InvalidArgumentError,
  isRetryError,
  RETRY_ERROR_CODES,
  RetryBudgetExhaustedError,
  RetryError,
} from '../src/index.js';

const BRAND = Symbol.for('@engram/error');

describe('retry errors', () => {
  it('lists every code once, keys equal to values, frozen', () => {
    expect(Object.isFrozen(RETRY_ERROR_CODES)).toBe(true);
    for (const [key, value] of Object.entries(RETRY_ERROR_CODES)) expect(value).toBe(key);
  });

  it('isRetryError recognises what retry throws, bad options included', () => {
    for (const error of [
      new DeadlineExceededError(2),
      new RetryBudgetExhaustedError(1),
      new AbortedError(0),
    ]) {
      expect(error).toBeInstanceOf(RetryError);
      expect(isRetryError(error)).toBe(true);
    }
    let thrown: unknown;
    try {
      backoffStep(INITIAL_BACKOFF_STATE, { baseMs: -1 }, () => 0);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidArgumentError);
    expect(thrown).toMatchObject({ code: 'InvalidArgument', field: 'baseMs', value: -1 });
    expect(isRetryError(thrown)).toBe(true);
  });

  it('isRetryError goes by brand and code, so an error of another copy of retry passes', () => {
    const foreign = Object.assign(new Error('deadline exceeded'), {
      code: 'DeadlineExceeded',
      attempts: 3,
    });
    Object.defineProperty(foreign, BRAND, { value: true });
    expect(foreign).not.toBeInstanceOf(RetryError);
    expect(isRetryError(foreign)).toBe(true);
    expect(isRetryError({ [BRAND]: true, code: 'RetryBudgetExhausted' })).toBe(true);
  });

  it('isRetryError refuses unbranded look-alikes and other packages’ codes', () => {
    expect(isRetryError(Object.assign(new Error('x'), { code: 'DeadlineExceeded' }))).toBe(false);
    expect(isRetryError({ [BRAND]: true, code: 'PoolClosed' })).toBe(false);
    expect(isRetryError(null)).toBe(false);
  });
});
