// One Clock and Random for every package: @engram/common's, re-exported.
export {
  type Clock,
  EngramError,
  InvalidArgumentError,
  type Random,
  systemClock,
} from '@engram/common';
export { reconnectDelayMs } from './internal/backoff.js';
export {
  CONNECTION_STATE,
  type ConnectionFactory,
  type ConnectionHooks,
  ConnectionSet,
  type ConnectionSetOptions,
  type ConnectionState,
  type ConnectionStateCode,
} from './internal/connection-set.js';
export {
  ConnectionFailedError,
  isConnectionFailed,
  isPoolError,
  POOL_ERROR_CODES,
  PoolClosedError,
  PoolError,
  type PoolErrorCode,
  UnknownNodeError,
} from './internal/errors.js';
export { H2_CONNECTION_WINDOW_BYTES } from './internal/h2-connections.js';
export {
  type ConnectionEvent,
  type ConnectionKind,
  type ConnectionStateEvent,
  DEFAULTS,
  MAX_CHANNELS_PER_NODE,
  type MakeClient,
  type PoolCredentials,
  type PoolOptions,
  type ResolvedOptions,
  type TimerClock,
} from './internal/options.js';
export {
  ConnectionPool,
  type NodeHealth,
  type PoolHealthReport,
} from './internal/pool.js';
