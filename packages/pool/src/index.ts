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
  InvalidPoolArgumentError,
  isConnectionFailed,
  POOL_ERROR_CODE,
  PoolClosedError,
  PoolError,
  type PoolErrorCode,
  UnknownNodeError,
} from './internal/errors.js';
export { H2_CONNECTION_WINDOW_BYTES } from './internal/h2-connections.js';
export {
  type Clock,
  type ConnectionEvent,
  type ConnectionKind,
  type ConnectionStateEvent,
  DEFAULTS,
  MAX_CHANNELS_PER_NODE,
  type MakeClient,
  type PoolCredentials,
  type PoolOptions,
  type Random,
  type ResolvedOptions,
} from './internal/options.js';
export {
  ConnectionPool,
  type NodeHealth,
  type PoolHealthReport,
} from './internal/pool.js';
