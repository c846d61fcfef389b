/** Stable codes of every error @engram/ring throws. */
export const RING_ERROR_CODES = {
  InvalidArgument: 'InvalidArgument',
  CapacityExceeded: 'CapacityExceeded',
  InvalidTable: 'InvalidTable',
} as const;

export type RingErrorCode = (typeof RING_ERROR_CODES)[keyof typeof RING_ERROR_CODES];

/** Base class of @engram/ring errors: `code` is stable, `message` is for humans. */
export class RingError extends Error {
  override name = 'RingError';
  readonly code: RingErrorCode;

  constructor(code: RingErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Bad input: names the offending field (a path such as `nodes[2].address`) and the value. */
export class InvalidArgumentError extends RingError {
  override name = 'InvalidArgumentError';
  declare readonly code: 'InvalidArgument';
  readonly field: string;
  readonly value: unknown;

  constructor(field: string, value: unknown, reason: string) {
    super(RING_ERROR_CODES.InvalidArgument, `${field}: ${reason} (got ${describe(value)})`);
    this.field = field;
    this.value = value;
  }
}

/** A table does not fit the shared buffer's capacity: names the limit, the need and the cap. */
export class CapacityExceededError extends RingError {
  override name = 'CapacityExceededError';
  declare readonly code: 'CapacityExceeded';
  readonly limit: string;
  readonly required: number;
  readonly capacity: number;

  constructor(limit: string, required: number, capacity: number) {
    super(
      RING_ERROR_CODES.CapacityExceeded,
      `${limit}: the table needs ${required} but the buffer holds at most ${capacity}`,
    );
    this.limit = limit;
    this.required = required;
    this.capacity = capacity;
  }
}

/** The buffer handed to a reader is not a table written by a compatible `TableWriter`. */
export class InvalidTableError extends RingError {
  override name = 'InvalidTableError';
  declare readonly code: 'InvalidTable';

  constructor(reason: string) {
    super(RING_ERROR_CODES.InvalidTable, reason);
  }
}

export function isRingError(error: unknown): error is RingError {
  return error instanceof RingError;
}

function describe(value: unknown): string {
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  }
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return String(value);
  try {
    const json = JSON.stringify(value);
    return json.length > 80 ? `${json.slice(0, 80)}…` : json;
  } catch {
    return Object.prototype.toString.call(value);
  }
}
