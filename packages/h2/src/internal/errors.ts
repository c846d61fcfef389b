import { EngramError, type InvalidArgumentError, isEngramError } from '@engram/common';

/**
 * Stable codes of every error `@engram/h2` throws or reports; callers match on these, never on
 * messages. The values keep their `H2` prefix: they were on the wire of logs and metrics first.
 */
export const H2_ERROR_CODES = Object.freeze({
  /** The peer broke the protocol; the connection was closed with GOAWAY. */
  H2ProtocolError: 'H2ProtocolError',
  /** The connection closed (socket error, GOAWAY, destroy) before the stream finished. */
  H2ConnectionClosed: 'H2ConnectionClosed',
  /** The connection does not take new streams (GOAWAY sent or received, ids exhausted, closed). */
  H2Unavailable: 'H2Unavailable',
  /** A malformed HPACK header block (`HpackError`); the connection fails with COMPRESSION_ERROR. */
  CompressionError: 'CompressionError',
  /** An option or argument is invalid (the common `InvalidArgumentError`). */
  InvalidArgument: 'InvalidArgument',
} as const);

export type H2ErrorCode = (typeof H2_ERROR_CODES)[keyof typeof H2_ERROR_CODES];

/**
 * Base class of the errors `@engram/h2` throws or reports (bad options throw the common
 * `InvalidArgumentError`; `isH2Error` recognises both).
 */
export class H2Error extends EngramError {
  declare readonly code: H2ErrorCode;
  /** The HTTP/2 error code (RFC 9113 §7) involved, when there is one. */
  readonly h2Code: number;
  constructor(code: H2ErrorCode, message: string, h2Code = 0, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'H2Error';
    this.h2Code = h2Code;
  }
}

/**
 * True for every error @engram/h2 throws or reports, by brand and code (so also for errors of
 * another copy of the package, which `instanceof` would miss).
 */
export function isH2Error(error: unknown): error is H2Error | InvalidArgumentError {
  return isEngramError(error) && Object.hasOwn(H2_ERROR_CODES, error.code);
}
