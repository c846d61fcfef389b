import { EngramError, InvalidArgumentError, isEngramError } from '@engram/common';

export { InvalidArgumentError };

/** Stable codes of every error @engram/ring throws. */
export const RING_ERROR_CODES = Object.freeze({
  InvalidArgument: 'InvalidArgument',
  CapacityExceeded: 'CapacityExceeded',
  InvalidTable: 'InvalidTable',
} as const);

export type RingErrorCode = (typeof RING_ERROR_CODES)[keyof typeof RING_ERROR_CODES];

/**
 * Base class of @engram/ring's own errors: `code` is stable, `message` is for humans. Bad
 * input throws the common `InvalidArgumentError` (code `InvalidArgument`, a RangeError);
 * `isRingError` recognises all of them.
 */
export class RingError extends EngramError {
  declare readonly code: RingErrorCode;

  constructor(code: RingErrorCode, message: string) {
    super(code, message);
    this.name = 'RingError';
  }
}

/** A table does not fit the shared buffer's capacity: names the limit, the need and the cap. */
export class CapacityExceededError extends RingError {
  declare readonly code: 'CapacityExceeded';
  readonly limit: string;
  readonly required: number;
  readonly capacity: number;

  constructor(limit: string, required: number, capacity: number) {
    super(
      RING_ERROR_CODES.CapacityExceeded,
      `${limit}: the table needs ${required} but the buffer holds at most ${capacity}` +
        (limit === 'epoch'
          ? ''
          : ` (a shared buffer cannot grow: create the TableWriter with a larger ${limit})`),
    );
    this.name = 'CapacityExceededError';
    this.limit = limit;
    this.required = required;
    this.capacity = capacity;
  }
}

/**
 * The buffer handed to a reader is not a table written by a compatible `TableWriter`, or no
 * table has been published in it yet. Covers more than a layout mismatch, hence its own code.
 */
export class InvalidTableError extends RingError {
  declare readonly code: 'InvalidTable';

  constructor(reason: string) {
    super(RING_ERROR_CODES.InvalidTable, reason);
    this.name = 'InvalidTableError';
  }
}

/**
 * True for every error @engram/ring throws, by brand and code (so also for errors of another
 * copy of the package, which `instanceof` would miss).
 */
export function isRingError(error: unknown): error is RingError | InvalidArgumentError {
  return isEngramError(error) && Object.hasOwn(RING_ERROR_CODES, error.code);
}
