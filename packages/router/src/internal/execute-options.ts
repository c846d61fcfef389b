import type { ExecuteOptions } from './types.js';

/** Every `ExecuteOptions` field, writable: a per-call copy to change a field in. */
export type ExecuteOptionsCopy = { -readonly [K in keyof ExecuteOptions]-?: ExecuteOptions[K] };

/**
 * `options` copied field by field, to pass on with a field changed. Not `{ ...options, field }`:
 * V8 in Node 20 builds an object literal with properties after a spread in its runtime, ~1 µs
 * each time (a replicated Store made three such copies per call), where this is one literal of
 * one shape. The return type makes the compiler ask for any field added to `ExecuteOptions`.
 */
export function copyExecuteOptions(options: ExecuteOptions): ExecuteOptionsCopy {
  return {
    signal: options.signal,
    deadline: options.deadline,
    deadlineMs: options.deadlineMs,
    operation: options.operation,
    hedge: options.hedge,
    attemptTimeoutMs: options.attemptTimeoutMs,
    isRetryable: options.isRetryable,
  };
}
