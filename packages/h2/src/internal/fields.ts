/**
 * HTTP/2 message checks (RFC 9113 §8.1.1, §8.2, §8.3): one pass over a header list HPACK
 * already decoded (`[name, value, …]`), no allocation, no regular expression. A message that
 * fails them is malformed: the connection answers it with a stream error (PROTOCOL_ERROR) and
 * the stream's owner never sees it.
 */
import { isValidName, isValidValue } from './field-chars.js';

/** Which header section a list is: the rules for pseudo-headers and `te` differ. */
export const FIELD_SECTION = {
  /** Request headers (server side). */
  REQUEST: 0,
  /** Final or informational response headers (client side). */
  RESPONSE: 1,
  /** Trailers of either direction: no pseudo-headers at all. */
  TRAILERS: 2,
} as const;
export type FieldSection = (typeof FIELD_SECTION)[keyof typeof FIELD_SECTION];

/** `checkFields` verdicts below zero; a verdict >= 0 is the message's `content-length`. */
export const FIELDS_VERDICT = {
  /** Well-formed, without `content-length`. */
  NO_CONTENT_LENGTH: -1,
  /** Malformed (§8.1.1): a stream error PROTOCOL_ERROR. */
  MALFORMED: -2,
  /** A well-formed CONNECT request (§8.5), which this implementation does not tunnel. */
  CONNECT: -3,
} as const;

const { NO_CONTENT_LENGTH, MALFORMED, CONNECT } = FIELDS_VERDICT;

/** Pseudo-header bits, so "seen twice" and "all required seen" are single mask tests. */
const METHOD = 1;
const SCHEME = 2;
const PATH = 4;
const AUTHORITY = 8;
const STATUS = 16;
const REQUIRED_REQUEST = METHOD | SCHEME | PATH;

const COLON = 0x3a;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/**
 * Checks a decoded header list in one pass (RFC 9113):
 * - names: non-empty, lowercase `token` characters (§8.2.1); values: no NUL, CR or LF, no
 *   leading or trailing SP/HTAB (§8.2.1);
 * - pseudo-headers: only the section's own (`:method`, `:scheme`, `:path`, `:authority` in a
 *   request, `:status` in a response, none in trailers), each at most once, all before the
 *   regular fields (§8.3); a request has non-empty `:method`, `:scheme` and `:path` (§8.3.1);
 *   a response has a three-digit `:status` (§8.3.2);
 * - no connection-specific field (`connection`, `keep-alive`, `proxy-connection`,
 *   `transfer-encoding`, `upgrade`), and `te` only in request headers and only as `trailers`
 *   (§8.2.2);
 * - `content-length`, outside trailers: decimal digits, at most once, at most 2^53 - 1.
 *
 * Returns `MALFORMED`, `CONNECT` (a request with `:method` CONNECT shaped as §8.5 says: an
 * `:authority` and no `:scheme` or `:path`; any other CONNECT is `MALFORMED`), or the
 * `content-length` (`NO_CONTENT_LENGTH` when absent).
 */
export function checkFields(
  list: readonly string[],
  section: FieldSection,
  /** The HPACK decoder vouched for every field's characters (`HpackDecoder.charsValid`). */
  charsValid = false,
): number {
  let pseudo = 0;
  let regular = false;
  let connect = false;
  let contentLength: number = NO_CONTENT_LENGTH;
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!;
    const value = list[i + 1]!;
    const n = name.length;
    if (n === 0) return MALFORMED;
    if (name.charCodeAt(0) === COLON) {
      if (regular) return MALFORMED;
      const bit = pseudoBit(name, section);
      if (bit === 0 || (pseudo & bit) !== 0) return MALFORMED;
      pseudo |= bit;
      if (bit === STATUS) {
        if (!isStatusCode(value)) return MALFORMED;
        continue;
      }
      if (value.length === 0 && bit !== AUTHORITY) return MALFORMED;
      if (bit === METHOD && value === 'CONNECT') connect = true;
    } else {
      regular = true;
      if (!charsValid && !isValidName(name)) return MALFORMED;
      // Connection-specific names by length first: most names are compared to nothing.
      switch (n) {
        case 2:
          if (name === 'te' && (section !== FIELD_SECTION.REQUEST || !isTrailers(value)))
            return MALFORMED;
          break;
        case 7:
          if (name === 'upgrade') return MALFORMED;
          break;
        case 10:
          if (name === 'connection' || name === 'keep-alive') return MALFORMED;
          break;
        case 14:
          if (name === 'content-length' && section !== FIELD_SECTION.TRAILERS) {
            if (contentLength !== NO_CONTENT_LENGTH) return MALFORMED;
            contentLength = parseContentLength(value);
            if (contentLength === MALFORMED) return MALFORMED;
            continue; // digits only: the value needs no other check
          }
          break;
        case 16:
          if (name === 'proxy-connection') return MALFORMED;
          break;
        case 17:
          if (name === 'transfer-encoding') return MALFORMED;
          break;
        default:
          break;
      }
    }
    if (!charsValid && !isValidValue(value)) return MALFORMED;
  }
  if (section === FIELD_SECTION.REQUEST) {
    if (connect) {
      return (pseudo & (SCHEME | PATH)) === 0 && (pseudo & AUTHORITY) !== 0 ? CONNECT : MALFORMED;
    }
    if ((pseudo & REQUIRED_REQUEST) !== REQUIRED_REQUEST) return MALFORMED;
  } else if (section === FIELD_SECTION.RESPONSE && pseudo === 0) {
    return MALFORMED;
  }
  return contentLength;
}

function pseudoBit(name: string, section: FieldSection): number {
  if (section === FIELD_SECTION.REQUEST) {
    switch (name) {
      case ':method':
        return METHOD;
      case ':scheme':
        return SCHEME;
      case ':path':
        return PATH;
      case ':authority':
        return AUTHORITY;
      default:
        return 0; // `:protocol` too: SETTINGS_ENABLE_CONNECT_PROTOCOL is never advertised
    }
  }
  return section === FIELD_SECTION.RESPONSE && name === ':status' ? STATUS : 0;
}

function isStatusCode(value: string): boolean {
  if (value.length !== 3) return false;
  for (let k = 0; k < 3; k++) {
    const c = value.charCodeAt(k);
    if (c < DIGIT_0 || c > DIGIT_9) return false;
  }
  return true;
}

/** `te: trailers`, the one value §8.2.2 allows (compared case-insensitively, as nghttp2 does). */
function isTrailers(value: string): boolean {
  return value === 'trailers' || (value.length === 8 && value.toLowerCase() === 'trailers');
}

/** Decimal digits up to 2^53 - 1 (no larger body can be counted exactly), else `MALFORMED`. */
function parseContentLength(value: string): number {
  const n = value.length;
  if (n === 0) return MALFORMED;
  let v = 0;
  for (let k = 0; k < n; k++) {
    const c = value.charCodeAt(k);
    if (c < DIGIT_0 || c > DIGIT_9) return MALFORMED;
    v = v * 10 + (c - DIGIT_0);
    if (v > Number.MAX_SAFE_INTEGER) return MALFORMED;
  }
  return v;
}
