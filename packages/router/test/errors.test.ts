import { EngramError } from '@engram/common';
import { describe, expect, it } from 'vitest';
import {
  AbortedError,
  AllReplicasFailedError,
  CircuitBreakerOpenError,
  ConnectionFailedError,
  DeadlineExceededError,
  InsufficientReplicasError,
  InvalidArgumentError,
  InvalidEndpointError,
  isRouterError,
  NoAssignmentError,
  NoLocalDataError,
  ReplicaServiceMissingError,
  RetryBudgetExhaustedError,
  ROUTER_ERROR_CODES,
  RouterClosedError,
  RouterError,
  toGrpcStatus,
} from '../src/index.js';

const SHARED = new Set([
  'CircuitBreakerOpen',
  'DeadlineExceeded',
  'RetryBudgetExhausted',
  'Aborted',
]);

describe('errors', () => {
  const all: [Error & { readonly code: string }, string, number][] = [
    [new NoAssignmentError('s'), 'NoAssignment', 14],
    [new NoLocalDataError('s', 'n1', 'why'), 'NoLocalData', 14],
    [new InvalidEndpointError('n1', 'x'), 'InvalidEndpoint', 14],
    [new ConnectionFailedError('n1'), 'ConnectionFailed', 14],
    [new CircuitBreakerOpenError('n1'), 'CircuitBreakerOpen', 14],
    [new DeadlineExceededError(), 'DeadlineExceeded', 4],
    [
      new AllReplicasFailedError([{ nodeId: 'n1', error: new Error('x') }]),
      'AllReplicasFailed',
      14,
    ],
    [new RetryBudgetExhaustedError(), 'RetryBudgetExhausted', 14],
    [new InvalidArgumentError('spaceId', '', 'non-empty'), 'InvalidArgument', 3],
    [new AbortedError(), 'Aborted', 1],
    [new RouterClosedError(), 'RouterClosed', 14],
    [new InsufficientReplicasError('write', 2, 1, 3, []), 'InsufficientReplicas', 14],
    [
      new ReplicaServiceMissingError('n1', '/engram.v1.ReplicaService/ScanSpace'),
      'ReplicaServiceMissing',
      9,
    ],
  ];

  it('every class has its stable code, name and gRPC status', () => {
    expect(all.map(([e]) => e.code).sort()).toEqual(Object.values(ROUTER_ERROR_CODES).sort());
    for (const [error, code, status] of all) {
      // Bad input is the one class every package shares (@engram/common), a RangeError; an
      // open breaker is @engram/breaker's class, a deadline, budget or abort @engram/retry's.
      if (code === 'InvalidArgument') expect(error).toBeInstanceOf(RangeError);
      else if (SHARED.has(code)) expect(error).toBeInstanceOf(EngramError);
      else expect(error).toBeInstanceOf(RouterError);
      expect(isRouterError(error)).toBe(true);
      expect(error.code).toBe(code);
      expect(error.name).toBe(`${code}Error`);
      expect(toGrpcStatus(error)).toEqual({ code: status, message: `${code}: ${error.message}` });
    }
  });

  it('passes a node s gRPC status through and maps anything else to INTERNAL', () => {
    expect(
      toGrpcStatus(Object.assign(new Error('5 NOT_FOUND: gone'), { code: 5, details: 'gone' })),
    ).toEqual({
      code: 5,
      message: 'gone',
    });
    expect(
      toGrpcStatus(Object.assign(new Error('refused'), { code: 'ConnectionFailed' })).code,
    ).toBe(14);
    expect(toGrpcStatus(new TypeError('boom'))).toEqual({ code: 13, message: 'boom' });
    expect(toGrpcStatus('weird').code).toBe(13);
  });

  it('AllReplicasFailed keeps each target error and the last one as cause', () => {
    const first = new Error('a');
    const last = new Error('b');
    const e = new AllReplicasFailedError([
      { nodeId: 'a', error: first },
      { nodeId: 'b', error: last },
    ]);
    expect(e.errors.map((t) => t.nodeId)).toEqual(['a', 'b']);
    expect(e.cause).toBe(last);
  });

  it('recognises router errors by brand and code, also from another copy of the package', () => {
    const foreign = Object.assign(new Error('x'), { code: 'NoLocalData' });
    Object.defineProperty(foreign, Symbol.for('@engram/error'), { value: true });
    expect(isRouterError(foreign)).toBe(true);
    expect(isRouterError(Object.assign(new Error('x'), { code: 'NoLocalData' }))).toBe(false);
    const other = Object.assign(new Error('x'), { code: 'SomethingElse' });
    Object.defineProperty(other, Symbol.for('@engram/error'), { value: true });
    expect(isRouterError(other)).toBe(false);
  });
});
