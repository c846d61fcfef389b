import { GRPC_STATUS, RouteError } from './errors.js';
import { isValidFieldName, isValidFieldValue } from './wire.js';

/** Headers not forwarded upstream (pseudo-headers are skipped separately). */
const HOP_HEADERS = new Set([
  'grpc-timeout',
  'te',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'host',
  'http2-settings',
  'proxy-connection',
  // The body the node gets may not be the client's (a Store gets its id, version and creation
  // time stamped), and HTTP/2 frames carry their own lengths: a stale content-length would make
  // the node reset the stream as malformed (RFC 9113 §8.1.1).
  'content-length',
]);

/** Where `upstreamHeaders` leaves the per-attempt values, set in place before each request. */
export const AUTHORITY_AT = 7;
export const TIMEOUT_AT = 9;

function badHeader(name: string, value: string): RouteError {
  return new RouteError(
    'InvalidArgument',
    GRPC_STATUS.INVALID_ARGUMENT,
    `malformed request header ${JSON.stringify(name)}${value === '' ? '' : ` = ${JSON.stringify(value)}`}`,
  );
}

/**
 * The upstream header list of a call: pseudo-headers, then the client's metadata minus
 * hop-by-hop headers. `:authority` and `grpc-timeout` are set per attempt in place
 * (`AUTHORITY_AT`, `TIMEOUT_AT`): a list is encoded synchronously by `request()`. Throws
 * InvalidArgument for a header a node would refuse: checked here, because a node refusing a
 * malformed header would look like a node failure and count on its breaker.
 */
export function upstreamHeaders(
  headers: readonly string[],
  path: string,
  scheme: 'http' | 'https',
): string[] {
  const fwd = [
    ':method',
    'POST',
    ':scheme',
    scheme,
    ':path',
    path,
    ':authority',
    '',
    'grpc-timeout',
    '',
    'te',
    'trailers',
  ];
  if (!isValidFieldValue(path) || path.includes(' ')) throw badHeader(':path', path);
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.charCodeAt(0) === 58 /* ':' */ || HOP_HEADERS.has(name)) continue;
    const value = headers[i + 1]!;
    if (!isValidFieldName(name)) throw badHeader(name, '');
    if (!isValidFieldValue(value)) throw badHeader(name, value);
    fwd.push(name, value);
  }
  return fwd;
}
