import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError } from '@engram/common';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';
import { PROTO_ERROR_CODES, ProtoError } from './errors.js';

/** Environment variable naming another protos directory for the load at import. */
export const PROTO_ROOT_ENV = 'ENGRAM_PROTO_ROOT';

/**
 * The protos shipped inside this package (`<package>/protos/`), which its build copies from the
 * repository's `protos/`. Resolved relative to this module, which sits at the same depth in
 * `src/internal/` (vitest, tsx) and `dist/internal/` (node, installed or not). Never a path
 * outside the package: from `node_modules/@engram/proto/` that would be someone else's folder.
 */
export const BUNDLED_PROTO_ROOT: string = fileURLToPath(new URL('../../protos/', import.meta.url));

/** Directory the protos were loaded from at import: `$ENGRAM_PROTO_ROOT`, else the bundled one. */
export const PROTO_ROOT: string = rootFromEnv(process.env[PROTO_ROOT_ENV]);

function rootFromEnv(value: string | undefined): string {
  // Empty counts as unset, so `ENGRAM_PROTO_ROOT= node …` restores the default.
  return value === undefined || value === '' ? BUNDLED_PROTO_ROOT : resolve(value);
}

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

/** Options of {@link loadProtos}. */
export interface LoadProtosOptions {
  /**
   * Directory the files are found under, e.g. one holding `engram/v1/memory.proto`; relative
   * paths resolve against the working directory. Default: {@link PROTO_ROOT}.
   */
  readonly root?: string;
  /**
   * Files to load, relative to `root`; their imports resolve under `root` too.
   * Default: `[MEMORY_PROTO_FILE, HEALTH_PROTO_FILE]`.
   */
  readonly files?: readonly string[];
}

/**
 * Loads protos with {@link LOADER_OPTIONS} from `root`, so the message types of this package
 * describe what the definitions decode. Throws InvalidArgumentError for a `root` or `files`
 * that is not a non-empty string (list), and ProtoError (ProtoNotFound) when a file is missing.
 */
export function loadProtos(options: LoadProtosOptions = {}): PackageDefinition {
  const root = options.root ?? PROTO_ROOT;
  if (typeof root !== 'string' || root === '') {
    throw new InvalidArgumentError('root', root, 'a non-empty directory path');
  }
  const files = options.files ?? [MEMORY_PROTO_FILE, HEALTH_PROTO_FILE];
  if (!Array.isArray(files) || files.length === 0) {
    throw new InvalidArgumentError('files', files, 'a non-empty array of paths under root');
  }
  const dir = resolve(root);
  for (const [i, file] of files.entries()) {
    if (typeof file !== 'string' || file === '') {
      throw new InvalidArgumentError(`files[${i}]`, file, 'a non-empty path under root');
    }
    // proto-loader would say ENOENT for a path it made up; say which root and how to change it.
    if (!existsSync(resolve(dir, file))) {
      throw new ProtoError(
        PROTO_ERROR_CODES.ProtoNotFound,
        `${file} not found under ${dir}` +
          (dir === resolve(BUNDLED_PROTO_ROOT)
            ? ' (the bundled protos, copied by the package build: run it, or set ' +
              `${PROTO_ROOT_ENV} or pass \`root\`)`
            : ''),
      );
    }
  }
  return loadSync([...files], { ...LOADER_OPTIONS, includeDirs: [dir] });
}

export const MEMORY_SERVICE_NAME = 'engram.v1.MemoryService';
export const REPLICA_SERVICE_NAME = 'engram.v1.ReplicaService';
export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

/** Loaded once at import, from {@link PROTO_ROOT}. */
export const packageDefinition: PackageDefinition = loadProtos();

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
