// The base of H2Error and the common bad-input class, re-exported (same bindings).
export { EngramError, InvalidArgumentError } from '@engram/common';
export { H2ClientConnection, type H2ClientOptions } from './internal/client.js';
export {
  CLOSE,
  type ConnectionOptions,
  DEFAULT_LOCAL_SETTINGS,
  H2Connection,
  H2Stream,
  type LocalSettings,
  STREAM_RESET_BURST,
  STREAM_RESET_PER_SECOND,
  type StreamHandler,
} from './internal/connection.js';
export {
  H2_ERROR_CODES,
  H2Error,
  type H2ErrorCode,
  isH2Error,
} from './internal/errors.js';
export { FLAG, FRAME_TYPE, H2_ERROR, SETTING } from './internal/frames.js';
export {
  encodeHeaderBlock,
  HpackDecoder,
  type HpackDecoderOptions,
  HpackEncoder,
  HpackError,
} from './internal/hpack.js';
export {
  DEFAULT_BODY_MIN_BYTES_PER_SECOND,
  DEFAULT_BODY_TIMEOUT_MS,
  DEFAULT_HEADER_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_SEND_TIMEOUT_MS,
  H2Server,
  H2ServerConnection,
  type H2ServerOptions,
  LIMIT_KINDS,
  type LimitKind,
  type StreamListener,
} from './internal/server.js';
export { StreamTable } from './internal/stream-table.js';
