import { isEngramError } from '@engram/common';
import type * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { MEMORY_NODE_ERROR_CODES, StorageFailedError } from './errors.js';

/** The gRPC status a handler answers an error with: bad input is INVALID_ARGUMENT, the rest INTERNAL. */
export function toServiceError(err: unknown): Partial<grpc.StatusObject> {
  if (isEngramError(err, MEMORY_NODE_ERROR_CODES.InvalidArgument)) {
    return { code: status.INVALID_ARGUMENT, details: err.message };
  }
  if (err instanceof StorageFailedError) {
    return { code: status.INTERNAL, details: err.message };
  }
  return { code: status.INTERNAL, details: err instanceof Error ? err.message : String(err) };
}
