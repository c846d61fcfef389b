import { fileURLToPath } from 'node:url';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';
import { PROTO_ERROR_CODES, ProtoError } from './errors.js';

/**
 * Absolute path of the repository's `protos/` directory. Resolved relative to this module,
 * which sits at the same depth in `src/internal/` (vitest, tsx) and `dist/internal/` (node).
 */
export const PROTO_ROOT: string = fileURLToPath(new URL('../../../../protos/', import.meta.url));

export const MEMORY_PROTO_FILE = 'engram/v1/memory.proto';
export const HEALTH_PROTO_FILE = 'grpc/health/v1/health.proto';

/** proto-loader options; the message types in this package match what they produce. */
export const LOADER_OPTIONS: Readonly<Options> = Object.freeze({
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  objects: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
});

export const MEMORY_SERVICE_NAME = 'engram.v1.MemoryService';
export const REPLICA_SERVICE_NAME = 'engram.v1.ReplicaService';
export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

/** Loaded once at import. */
export const packageDefinition = loadSync([MEMORY_PROTO_FILE, HEALTH_PROTO_FILE], {
  ...LOADER_OPTIONS,
});

/** The loaded definition of service `name`; throws ProtoError (ServiceNotFound) without one. */
export function service(name: string): ServiceDefinition {
  const def = packageDefinition[name];
  // Message and enum definitions carry a `format`; a service is a map of method definitions.
  if (def === undefined || 'format' in def || Object.keys(def).length === 0) {
    throw new ProtoError(
      PROTO_ERROR_CODES.ServiceNotFound,
      `proto service ${name} not found under ${PROTO_ROOT}`,
    );
  }
  return def as ServiceDefinition;
}

export const memoryServiceDefinitionUntyped: ServiceDefinition = service(MEMORY_SERVICE_NAME);
export const replicaServiceDefinitionUntyped: ServiceDefinition = service(REPLICA_SERVICE_NAME);
export const healthDefinitionUntyped: ServiceDefinition = service(HEALTH_SERVICE_NAME);
