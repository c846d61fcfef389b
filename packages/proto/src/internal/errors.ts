import { EngramError, isEngramError } from '@engram/common';

/** Stable codes of every error @engram/proto throws. */
export const PROTO_ERROR_CODES = Object.freeze({
  /** A service is missing from the loaded protos (a broken or partial `protos/` directory). */
  ServiceNotFound: 'ServiceNotFound',
  /** A `.proto` file is missing under the root it is loaded from. */
  ProtoNotFound: 'ProtoNotFound',
} as const);

export type ProtoErrorCode = (typeof PROTO_ERROR_CODES)[keyof typeof PROTO_ERROR_CODES];

/**
 * Base class of @engram/proto's errors; `code` is stable, messages are not. Calls made through
 * the helpers reject with grpc-js's own `ServiceError`, which is not one of these.
 */
export class ProtoError extends EngramError {
  declare readonly code: ProtoErrorCode;
  constructor(code: ProtoErrorCode, message: string) {
    super(code, message);
    this.name = 'ProtoError';
  }
}

/**
 * True for every error @engram/proto throws, by brand and code (so also for errors of another
 * copy of the package, which `instanceof` would miss).
 */
export function isProtoError(error: unknown): error is ProtoError {
  return isEngramError(error) && Object.hasOwn(PROTO_ERROR_CODES, error.code);
}
