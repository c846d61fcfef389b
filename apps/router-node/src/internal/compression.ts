/**
 * gRPC message compression at the router (`grpc-encoding` gzip / deflate, compressed flag 1).
 * A compressed request is inflated to be read (routing, validation, stamps), never past the
 * router's request limit: zlib stops at `maxOutputLength`, so a decompression bomb costs at
 * most that much memory and is refused with RESOURCE_EXHAUSTED before any node sees it.
 * What is forwarded is the data plane's choice (see data-plane.ts and the README).
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { GRPC_STATUS, RouteError } from './errors.js';
import { FRAME_HEADER_BYTES, frameMessage } from './wire.js';

/** The encodings the router reads, as its `grpc-accept-encoding` lists them. */
export const ACCEPT_ENCODING = 'identity,deflate,gzip';

/** True for a `grpc-encoding` the router can read (absent = identity). */
export function isAcceptedEncoding(encoding: string | undefined): boolean {
  return (
    encoding === undefined ||
    encoding === 'identity' ||
    encoding === 'gzip' ||
    encoding === 'deflate'
  );
}

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);

function compressedMessage(frame: Buffer, encoding: string | undefined): Buffer {
  if (encoding !== 'gzip' && encoding !== 'deflate') {
    throw new RouteError(
      'InvalidArgument',
      GRPC_STATUS.INVALID_ARGUMENT,
      `compressed request message with grpc-encoding ${encoding ?? '(absent)'}`,
    );
  }
  if (frame.length < FRAME_HEADER_BYTES || frame[0] !== 1) {
    // gRPC's compressed flag is 0 or 1. A node (grpc-js) reads any other value as "not
    // compressed" and fails to decode the compressed bytes with INTERNAL, a node failure: let
    // through, a handful of such calls would open every breaker.
    throw new RouteError(
      'InvalidArgument',
      GRPC_STATUS.INVALID_ARGUMENT,
      frame.length < FRAME_HEADER_BYTES
        ? `malformed request message: ${frame.length}-byte body, shorter than a gRPC frame header`
        : `malformed request message: compressed flag ${frame[0]}, expected 0 or 1`,
    );
  }
  const end = FRAME_HEADER_BYTES + frame.readUInt32BE(1);
  if (end !== frame.length) {
    throw new RouteError(
      'InvalidArgument',
      GRPC_STATUS.INVALID_ARGUMENT,
      `malformed request message: frame says ${end - FRAME_HEADER_BYTES} bytes, body has ${frame.length - FRAME_HEADER_BYTES}`,
    );
  }
  return frame.subarray(FRAME_HEADER_BYTES);
}

function inflateError(err: unknown, encoding: string, maxBytes: number): RouteError {
  if ((err as { code?: unknown })?.code === 'ERR_BUFFER_TOO_LARGE') {
    return new RouteError(
      'InvalidArgument',
      GRPC_STATUS.RESOURCE_EXHAUSTED,
      `request message decompresses to more than ${maxBytes} bytes`,
    );
  }
  return new RouteError(
    'InvalidArgument',
    GRPC_STATUS.INVALID_ARGUMENT,
    `malformed request message: bad ${encoding} data (${(err as Error).message})`,
  );
}

/**
 * The uncompressed frame (flag 0) of a compressed request frame (flag 1), inflated on the
 * libuv pool, at most `maxBytes` of message. Throws `RouteError`: RESOURCE_EXHAUSTED past
 * `maxBytes`, INVALID_ARGUMENT for bad data or a missing/identity encoding.
 */
export async function inflateRequest(
  frame: Buffer,
  encoding: string | undefined,
  maxBytes: number,
): Promise<Buffer> {
  const message = compressedMessage(frame, encoding);
  try {
    const opts = { maxOutputLength: maxBytes };
    return frameMessage(
      encoding === 'gzip' ? await gunzip(message, opts) : await inflate(message, opts),
    );
  } catch (err) {
    throw inflateError(err, encoding!, maxBytes);
  }
}

/**
 * The uncompressed frame of a node's compressed reply frame (synchronous: replies are settled
 * in a stream callback); null when it cannot be read (unknown encoding, bad data, or more than
 * `maxBytes`).
 */
export function inflateReply(
  frame: Buffer,
  encoding: string | undefined,
  maxBytes: number,
): Buffer | null {
  if (encoding !== 'gzip' && encoding !== 'deflate') return null;
  if (FRAME_HEADER_BYTES + frame.readUInt32BE(1) !== frame.length) return null;
  try {
    const message = frame.subarray(FRAME_HEADER_BYTES);
    const opts = { maxOutputLength: maxBytes };
    return frameMessage(
      encoding === 'gzip' ? zlib.gunzipSync(message, opts) : zlib.inflateSync(message, opts),
    );
  } catch {
    return null;
  }
}
