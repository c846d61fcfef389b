/** Stable error codes of `@engram/h2`; callers match on these, never on messages. */
export const H2_ERROR_CODE = {
  /** The peer broke the protocol; the connection was closed with GOAWAY. */
  PROTOCOL: 'H2ProtocolError',
  /** The connection closed (socket error, GOAWAY, destroy) before the stream finished. */
  CONNECTION_CLOSED: 'H2ConnectionClosed',
  /** The connection does not take new streams (GOAWAY sent or received, ids exhausted, closed). */
  UNAVAILABLE: 'H2Unavailable',
  /** An option or argument is invalid. */
  INVALID_ARGUMENT: 'InvalidArgument',
} as const;

export type H2ErrorCode = (typeof H2_ERROR_CODE)[keyof typeof H2_ERROR_CODE];

/** Base class of every error `@engram/h2` throws or reports. */
export class H2Error extends Error {
  readonly code: H2ErrorCode;
  /** The HTTP/2 error code (RFC 9113 §7) involved, when there is one. */
  readonly h2Code: number;
  constructor(code: H2ErrorCode, message: string, h2Code = 0, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'H2Error';
    this.code = code;
    this.h2Code = h2Code;
  }
}

/** An invalid option: names the field and the value received. */
export class H2InvalidArgumentError extends H2Error {
  readonly field: string;
  readonly value: unknown;
  constructor(field: string, value: unknown, expected: string) {
    super(
      H2_ERROR_CODE.INVALID_ARGUMENT,
      `${field} must be ${expected}, got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`,
    );
    this.name = 'H2InvalidArgumentError';
    this.field = field;
    this.value = value;
  }
}
