import { readFileSync } from 'node:fs';
import { CONFIG_SCHEMA } from './config-schema.js';
import {
  CONFIG_KEYS,
  type ConfigKey,
  envName,
  flagName,
  isScalar,
  type KeySpec,
  type ScalarSpec,
  specOf,
} from './config-spec.js';
import {
  isObject,
  type Json,
  type JsonObject,
  nullableSectionOf,
  setPath,
  validateConfig,
} from './config-validate.js';
import { ConfigError } from './errors.js';

export { addressKey, validateAssignment, validateNode } from './config-validate.js';
export { envName, flagName };

/** A memory node of the cluster. */
export interface NodeConfig {
  readonly id: string;
  /** `host:port`. */
  readonly address: string;
  /** Failure domain. Default `""`. */
  readonly zone: string;
}

export interface AssignmentConfig {
  readonly spaceId: string;
  readonly primary: string;
  readonly replicas: readonly string[];
}

/** TLS files for a listener (PEM paths). `clientCa` makes it require client certificates. */
export interface ListenerTlsConfig {
  readonly cert: string;
  readonly key: string;
  readonly clientCa: string | null;
}

/** TLS to the memory nodes (PEM paths); `cert` + `key` = mutual TLS. */
export interface UpstreamTlsConfig {
  readonly ca: string | null;
  readonly cert: string | null;
  readonly key: string | null;
  readonly serverName: string | null;
}

/**
 * Every setting of router-node, with units in the names. Each key has its entry (type, range,
 * default, description) in `CONFIG_SCHEMA`; the compiler keeps the two in step.
 */
export interface RouterNodeConfig {
  readonly listen: {
    readonly host: string;
    readonly port: number;
    /** HTTP/2 streams one client connection may have open at once. */
    readonly maxConcurrentStreams: number;
    /** A client connection with no stream and no traffic this long gets GOAWAY; 0 = never. */
    readonly idleTimeoutMs: number;
    /** Largest request header list accepted (names + values + 32 per field); larger: HTTP 431. */
    readonly maxHeaderListBytes: number;
    /** Client connections one data-plane thread serves at once; more are closed at accept. */
    readonly maxConnectionsPerWorker: number;
    /** Time to finish the handshake, a frame or a header block once started; 0 = off. */
    readonly headerTimeoutMs: number;
    /** Time from a request's headers to its last byte; 0 = off. */
    readonly bodyTimeoutMs: number;
    /** Body bytes per second that earn a request one more second beyond `bodyTimeoutMs`. */
    readonly bodyMinBytesPerSecond: number;
    /** Time a reply held back by the client's flow control may make no progress; 0 = off. */
    readonly sendTimeoutMs: number;
  };
  readonly tls: ListenerTlsConfig | null;
  readonly admin: {
    readonly enabled: boolean;
    readonly host: string;
    readonly port: number;
    /** Bearer token admin calls must carry (inline: discouraged, see `tokenFile`); null = none. */
    readonly token: string | null;
    /** File holding the bearer token, read at start and on SIGHUP; null = none. */
    readonly tokenFile: string | null;
    readonly tls: ListenerTlsConfig | null;
  };
  readonly metrics: { readonly enabled: boolean; readonly host: string; readonly port: number };
  /** Data-plane worker threads; 0 = data plane on the main thread. */
  readonly workers: number;
  /** Young-generation (semi-space) size of each data-plane thread, MiB; 0 = V8 default. */
  readonly youngGenerationMb: number;
  readonly nodes: readonly NodeConfig[];
  readonly assignments: readonly AssignmentConfig[];
  readonly localNodeId: string | null;
  readonly replicationFactor: number;
  readonly vnodesPerNode: number;
  readonly router: {
    readonly maxRetries: number;
    readonly retryBaseDelayMs: number;
    readonly retryMaxDelayMs: number;
    readonly deadlineMs: number;
    readonly attemptTimeoutMs: number;
    readonly replicaFallback: boolean;
    readonly storeFallback: boolean;
    readonly replicateWrites: boolean;
    readonly writeConsistency: 'one' | 'quorum' | 'all';
    readonly readConsistency: 'one' | 'quorum';
    readonly breakerThreshold: number;
    readonly breakerTimeoutMs: number;
    readonly maxMessageBytes: number;
  };
  readonly retryBudget: {
    readonly ratio: number;
    readonly minRetriesPerSecond: number;
    readonly ttlMs: number;
  };
  readonly pool: {
    readonly channelsPerNode: number;
    readonly connectTimeoutMs: number;
    readonly keepaliveIntervalMs: number;
    readonly keepaliveTimeoutMs: number;
    readonly tls: UpstreamTlsConfig | null;
  };
  readonly health: {
    readonly intervalMs: number;
    readonly timeoutMs: number;
    readonly unhealthyThreshold: number;
    readonly healthyThreshold: number;
    readonly panicThreshold: number;
  };
  /** Durable state of this router (hints, streaming progress); null = memory only. */
  readonly dataDir: string | null;
  readonly hints: {
    readonly maxBytesPerNode: number;
    readonly maxAgeMs: number;
    readonly replayPerSecond: number;
  };
  readonly streaming: {
    readonly concurrency: number;
  };
  readonly repair: {
    readonly intervalMs: number;
    readonly spacesPerSecond: number;
  };
  readonly shutdownGraceMs: number;
  /** On SIGTERM, health NOT_SERVING while still serving for this long, then GOAWAY (0 = none). */
  readonly shutdownDrainMs: number;
  readonly logLevel: string;
  /** With no `nodes`, start this many local memory nodes as child processes (0 = never). */
  readonly localCluster: {
    readonly nodes: number;
    readonly zones: number;
    readonly dataDir: string | null;
  };
}

const ENV_KEYS: ReadonlyMap<string, ConfigKey> = new Map(
  CONFIG_KEYS.filter((k) => isScalar(CONFIG_SCHEMA[k])).map((k) => [envName(k), k]),
);

function defaultOf(spec: KeySpec): Json {
  return isScalar(spec) ? (spec.default ?? null) : [];
}

/** Defaults, built from `CONFIG_SCHEMA` (units there); the TLS sections are `null`. */
export const CONFIG_DEFAULTS: RouterNodeConfig = Object.freeze(
  CONFIG_KEYS.reduce<JsonObject>((out, key) => {
    const section = nullableSectionOf(key);
    if (section !== undefined) setPath(out, section, null);
    else setPath(out, key, defaultOf(CONFIG_SCHEMA[key]));
    return out;
  }, {}) as unknown as RouterNodeConfig,
);

// Env vars and flags are strings; they become the JSON type a file would hold, so one
// validation covers all three sources.
function coerce(key: string, spec: ScalarSpec, text: string, source: string): Json {
  switch (spec.type) {
    case 'int':
    case 'number': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n)) {
        throw new ConfigError(key, text, `${source}: must be a number`);
      }
      return n;
    }
    case 'bool':
      if (text === 'true' || text === '1') return true;
      if (text === 'false' || text === '0') return false;
      throw new ConfigError(key, text, `${source}: must be true or false`);
    case 'string-or-null':
      return text === '' || text === 'null' ? null : text;
    case 'string':
    case 'enum':
      return text;
  }
}

// V8 gives a character offset ("at position N"; none at the end of input); a person editing
// the file needs the 1-based line and column.
function jsonErrorLocation(text: string, message: string): { line: number; column: number } {
  const match = /at position (\d+)/.exec(message);
  const position = Math.min(match === null ? text.length : Number(match[1]), text.length);
  const before = text.slice(0, position);
  const lineStart = before.lastIndexOf('\n') + 1;
  return { line: before.split('\n').length, column: position - lineStart + 1 };
}

/** Reads a JSON config file; errors name the file, and for bad JSON the line and column. */
export function readConfigFile(path: string): JsonObject {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('config', path, `cannot read: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const { line, column } = jsonErrorLocation(text, message);
    // V8's own "at position N" (and on newer Node "(line L column C)") is replaced by ours.
    const what = message.replace(/ in JSON at position \d+.*$/, '');
    throw new ConfigError(
      'config',
      path,
      `not valid JSON at line ${line}, column ${column}: ${what}`,
      { cause: err },
    );
  }
  if (!isObject(parsed)) throw new ConfigError('config', path, 'must hold a JSON object');
  return parsed;
}

export interface ConfigSources {
  /** Parsed config file contents (may be partial). */
  readonly file?: unknown;
  /** Environment (only `ENGRAM_ROUTER_*` keys are read). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Flags as `{ 'health.intervalMs': '100' }` (already matched to keys). */
  readonly flags?: Readonly<Record<string, string>>;
}

/**
 * Merges defaults ← file ← env ← flags and validates the result. Throws `ConfigError`
 * naming the first bad key (`field`) and its value.
 */
export function resolveConfig(sources: ConfigSources = {}): RouterNodeConfig {
  const file = sources.file ?? {};
  if (!isObject(file)) throw new ConfigError('config', file, 'must be an object');
  const merged = structuredClone(file) as JsonObject;
  for (const [name, raw] of Object.entries(sources.env ?? {})) {
    if (raw === undefined || !name.startsWith('ENGRAM_ROUTER_')) continue;
    const key = ENV_KEYS.get(name);
    if (key === undefined) throw new ConfigError(name, raw, 'unknown environment variable');
    setPath(merged, key, coerce(key, CONFIG_SCHEMA[key] as ScalarSpec, raw, name));
  }
  for (const [key, raw] of Object.entries(sources.flags ?? {})) {
    const spec = specOf(key);
    if (spec === undefined || !isScalar(spec)) throw new ConfigError(key, raw, 'unknown flag');
    setPath(merged, key, coerce(key, spec, raw, flagName(key)));
  }
  return validateConfig(merged);
}
