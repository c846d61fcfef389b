import { GRPC_STATUS, RouteError } from './errors.js';

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
/** Entries before the client's own headers: six fields (pseudo-headers, grpc-timeout, te). */
const FIXED_FIELDS = 12;

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
 * (`AUTHORITY_AT`, `TIMEOUT_AT`): a list is encoded synchronously by `request()`. Every field
 * is already valid HTTP/2: @engram/h2 resets a malformed request (RFC 9113 §8.2, §8.3: names,
 * values, pseudo-headers, connection-specific fields) before the data plane sees it, so none
 * can reach a node and count on its breaker. What HTTP/2 allows and a gRPC method path does
 * not (a space) is refused here with InvalidArgument.
 */
export function upstreamHeaders(
  headers: readonly string[],
  path: string,
  scheme: 'http' | 'https',
): string[] {
  if (path.includes(' ')) throw badHeader(':path', path);
  // Sized once (a list grown by push reallocates on the first client header).
  let passed = 0;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.charCodeAt(0) !== 58 /* ':' */ && !HOP_HEADERS.has(name)) passed += 2;
  }
  const fwd = new Array<string>(FIXED_FIELDS + passed);
  fwd[0] = ':method';
  fwd[1] = 'POST';
  fwd[2] = ':scheme';
  fwd[3] = scheme;
  fwd[4] = ':path';
  fwd[5] = path;
  fwd[6] = ':authority';
  fwd[AUTHORITY_AT] = '';
  fwd[8] = 'grpc-timeout';
  fwd[TIMEOUT_AT] = '';
  fwd[10] = 'te';
  fwd[11] = 'trailers';
  let at = FIXED_FIELDS;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.charCodeAt(0) === 58 /* ':' */ || HOP_HEADERS.has(name)) continue;
    fwd[at++] = name;
    fwd[at++] = headers[i + 1]!;
  }
  return fwd;
}
