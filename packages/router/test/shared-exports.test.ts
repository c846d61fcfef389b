import * as Breaker from '@engram/breaker';
import * as Common from '@engram/common';
import * as Pool from '@engram/pool';
import * as Retry from '@engram/retry';
import * as Ring from '@engram/ring';
import { describe, expect, it } from 'vitest';
import * as Router from '../src/index.js';

// One class (one object) per concept: a name exported by several packages is the owner's
// binding re-exported, so `instanceof` holds whichever package the class was imported from.
describe('names shared between packages', () => {
  it('InvalidArgumentError is @engram/common’s everywhere', () => {
    for (const pkg of [Breaker, Pool, Retry, Ring, Router]) {
      expect(pkg.InvalidArgumentError).toBe(Common.InvalidArgumentError);
    }
  });

  it('the router throws the breaker’s CircuitBreakerOpenError', () => {
    expect(Router.CircuitBreakerOpenError).toBe(Breaker.CircuitBreakerOpenError);
    const error = new Router.CircuitBreakerOpenError('n1');
    expect(error).toBeInstanceOf(Breaker.BreakerError);
    expect(Breaker.isCircuitBreakerOpenError(error)).toBe(true);
    expect(Router.isRouterError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'CircuitBreakerOpen', nodeId: 'n1' });
  });

  it('the router throws retry’s DeadlineExceeded, RetryBudgetExhausted and Aborted errors', () => {
    expect(Router.DeadlineExceededError).toBe(Retry.DeadlineExceededError);
    expect(Router.RetryBudgetExhaustedError).toBe(Retry.RetryBudgetExhaustedError);
    expect(Router.AbortedError).toBe(Retry.AbortedError);
    for (const error of [
      new Router.DeadlineExceededError(),
      new Router.RetryBudgetExhaustedError(),
      new Router.AbortedError(),
    ]) {
      expect(error).toBeInstanceOf(Retry.RetryError);
      expect(Retry.isRetryError(error)).toBe(true);
      expect(Router.isRouterError(error)).toBe(true);
    }
  });

  it('systemClock is @engram/common’s everywhere', () => {
    for (const pkg of [Breaker, Pool, Retry]) expect(pkg.systemClock).toBe(Common.systemClock);
  });

  it('EngramError, the base of every error, is @engram/common’s everywhere', () => {
    for (const pkg of [Breaker, Pool, Retry, Ring, Router]) {
      expect(pkg.EngramError).toBe(Common.EngramError);
    }
    expect(Router.RetryError).toBe(Retry.RetryError);
    expect(Router.BreakerError).toBe(Breaker.BreakerError);
  });

  it('LayoutMismatchError is @engram/common’s everywhere', () => {
    for (const pkg of [Breaker, Retry]) {
      expect(pkg.LayoutMismatchError).toBe(Common.LayoutMismatchError);
    }
  });
});
