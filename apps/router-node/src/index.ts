// Types the node's signatures use, re-exported.
export { EngramError } from '@engram/common';
export { NodeState } from '@engram/router';
export type { Logger } from 'pino';
export {
  ADMIN_SERVICE_NAME,
  ROUTER_PROTO_FILE,
  RouterAdminClient,
  routerAdminDefinition,
  type TableView,
} from './internal/admin.js';
export {
  type AssignmentConfig,
  CONFIG_DEFAULTS,
  type ConfigProblem,
  type ConfigSources,
  ConfigSyntaxError,
  checkConfig,
  envName,
  flagName,
  type ListenerTlsConfig,
  type NodeConfig,
  REDACTED,
  type RouterNodeConfig,
  readConfigFile,
  redactConfig,
  resolveConfig,
  type UpstreamTlsConfig,
} from './internal/config.js';
export { TABLE_MAX_REPLICATION_FACTOR, TABLE_MAX_TOKENS } from './internal/config-caps.js';
export { CONFIG_SCHEMA } from './internal/config-schema.js';
export {
  type BoolSpec,
  CONFIG_KEYS,
  type ConfigKey,
  type ConfigSchema,
  type EnumSpec,
  type KeySpec,
  type ListSpec,
  NULLABLE_SECTIONS,
  type NullableStringSpec,
  type NumberSpec,
  type ScalarSpec,
  type StringSpec,
} from './internal/config-spec.js';
export {
  ConfigError,
  GRPC_STATUS,
  ListenError,
  ROUTER_NODE_ERROR_CODES,
  RouteError,
  RouterNodeError,
  type RouterNodeErrorCode,
} from './internal/errors.js';
export { OPERATIONS, OUTCOMES } from './internal/layout.js';
export { LocalCluster, MEMORY_NODE_MAIN } from './internal/local-cluster.js';
export {
  type RouterNode,
  type StartOptions,
  startRouterNode,
} from './internal/router-node.js';
export {
  appendRouting,
  assignMemoryId,
  parseGrpcTimeout,
  readSpaceId,
  stampStore,
} from './internal/wire.js';
