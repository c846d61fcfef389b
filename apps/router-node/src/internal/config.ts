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
  getPath,
  isObject,
  type Json,
  type JsonObject,
  nullableSectionOf,
  setPath,
  validateConfig,
} from './config-validate.js';
import { ConfigError } from './errors.js';
import { jsonErrorOffset, jsonExcerpt, lineAndColumn } from './json-error.js';
import type { OutlierSettings } from './outlier-detector.js';

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
  /** Nodes the shared table, breakers and per-node words hold at once (sized at start). */
  readonly maxNodes: number;
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
    readonly readBalancing: 'placement' | 'least-request';
    readonly readBalancingThreshold: number;
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
    readonly unhealthyIntervalMs: number;
    readonly healthyEdgeIntervalMs: number;
    readonly unhealthyThreshold: number;
    readonly healthyThreshold: number;
    readonly panicThreshold: number;
    readonly slowStartMs: number;
  };
  /** Outlier detection: ejecting nodes that fail, stall or answer slower than their peers. */
  readonly outlier: { readonly enabled: boolean } & OutlierSettings;
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
  /** The local cluster of `run --local-cluster` and `demo` (`nodes`: 0 = never). */
  readonly localCluster: {
    readonly nodes: number;
    readonly zones: number;
    readonly dataDir: string | null;
  };
  /** Many routers, one truth: membership, pins and drains kept in etcd; null = this router's own. */
  readonly etcd: EtcdConfig | null;
}

/** The etcd cluster several routers share their membership through (`etcd`). */
export interface EtcdConfig {
  /** `host:port` of the etcd members to dial. */
  readonly endpoints: readonly string[];
  /** Key prefix of this router cluster's state. */
  readonly prefix: string;
  /** This router's name among the routers (its lease key); null = `<hostname>-<pid>`. */
  readonly routerId: string | null;
  /** CA of etcd's server certificate (PEM): etcd over TLS; null = plaintext. */
  readonly ca: string | null;
  /** Client certificate and key (PEM) for etcd's client-cert auth; null = none. */
  readonly cert: string | null;
  readonly key: string | null;
  /** TTL of the router's registration lease. */
  readonly leaseTtlMs: number;
  /** Deadline of one etcd request (read, transaction). */
  readonly requestTimeoutMs: number;
  /** Allocator tokens per node (0: `vnodesPerNode` random ones); the seeding router's wins. */
  readonly tokensPerNode: number;
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
    case 'addresses':
      return text.split(',').map((a) => a.trim());
  }
}

/**
 * A config file that is not valid JSON: the message gives the line and column, `excerpt` the
 * offending line with a caret under the column (two lines, for a terminal).
 */
export class ConfigSyntaxError extends ConfigError {
  readonly line: number;
  readonly column: number;
  readonly excerpt: string;
  constructor(path: string, text: string, cause: Error) {
    const scanned = jsonErrorOffset(text);
    const v8 = /at position (\d+)/.exec(cause.message);
    const offset = scanned >= 0 ? scanned : v8 === null ? text.length : Number(v8[1]);
    const { line, column } = lineAndColumn(text, offset);
    // V8's own "at position N" (and on newer Node "(line L column C)") is replaced by ours.
    const what = cause.message.replace(/ in JSON at position \d+.*$/, '');
    super('config', path, `not valid JSON at line ${line}, column ${column}: ${what}`, { cause });
    this.name = 'ConfigSyntaxError';
    this.line = line;
    this.column = column;
    this.excerpt = jsonExcerpt(text, line, column);
  }
}

/**
 * Reads a JSON config file; errors name the file, and for bad JSON (a `ConfigSyntaxError`)
 * the line and column.
 */
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
    throw new ConfigSyntaxError(path, text, err as Error);
  }
  if (!isObject(parsed)) throw new ConfigError('config', path, 'must hold a JSON object');
  return parsed;
}

export interface ConfigSources {
  /** Parsed config file contents (may be partial). */
  readonly file?: unknown;
  /** The file's path, for messages only (`file router.json`). */
  readonly filePath?: string;
  /** Environment (only `ENGRAM_ROUTER_*` keys are read). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Flags as `{ 'health.intervalMs': '100' }` (already matched to keys). */
  readonly flags?: Readonly<Record<string, string>>;
}

/** A problem `checkConfig` found, and where the value it quotes came from. */
export interface ConfigProblem {
  readonly error: ConfigError;
  /** `file router.json`, `env ENGRAM_ROUTER_…`, `flag --…`, or `default`. */
  readonly source: string;
}

/**
 * Variables of the admin CLI (`engram-router`): where its commands connect. They share the
 * router's prefix, so an operator can export them in the shell that starts the router: the
 * router ignores them rather than refusing them as unknown keys. (`ENGRAM_ROUTER_ADMIN_TOKEN`
 * is `admin.token` for both.)
 */
export const ADMIN_CLI_ENV = Object.freeze({
  /** `--admin`: the admin listener. */
  admin: 'ENGRAM_ROUTER_ADMIN',
  /** `--router`: the data listener (store, recall). */
  router: 'ENGRAM_ROUTER_ADDRESS',
} as const);
const ADMIN_CLI_ENV_NAMES: ReadonlySet<string> = new Set(Object.values(ADMIN_CLI_ENV));

// Defaults ← file ← env ← flags, as one JSON object; `origin` holds which env var or flag set
// a key. A value that cannot be read goes to `report` and the one below it stays.
function merge(
  sources: ConfigSources,
  report: (error: ConfigError, source: string) => void,
): { merged: JsonObject; origin: Map<string, string> } {
  const file = sources.file ?? {};
  const origin = new Map<string, string>();
  if (!isObject(file)) {
    report(new ConfigError('config', file, 'must be an object'), 'file');
    return { merged: {}, origin };
  }
  const merged = structuredClone(file) as JsonObject;
  for (const [name, raw] of Object.entries(sources.env ?? {})) {
    if (raw === undefined || !name.startsWith('ENGRAM_ROUTER_') || ADMIN_CLI_ENV_NAMES.has(name))
      continue;
    const source = `env ${name}`;
    const key = ENV_KEYS.get(name);
    if (key === undefined) {
      report(new ConfigError(name, raw, 'unknown environment variable'), source);
      continue;
    }
    try {
      setPath(merged, key, coerce(key, CONFIG_SCHEMA[key] as ScalarSpec, raw, name));
      origin.set(key, source);
    } catch (err) {
      report(err as ConfigError, source);
    }
  }
  for (const [key, raw] of Object.entries(sources.flags ?? {})) {
    const spec = specOf(key);
    if (spec === undefined || !isScalar(spec)) {
      report(new ConfigError(key, raw, 'unknown flag'), 'flag');
      continue;
    }
    const source = `flag ${flagName(key)}`;
    try {
      setPath(merged, key, coerce(key, spec, raw, flagName(key)));
      origin.set(key, source);
    } catch (err) {
      report(err as ConfigError, source);
    }
  }
  return { merged, origin };
}

/**
 * Merges defaults ← file ← env ← flags and validates the result. Throws `ConfigError`
 * naming the first bad key (`field`) and its value.
 */
export function resolveConfig(sources: ConfigSources = {}): RouterNodeConfig {
  const { merged } = merge(sources, (error) => {
    throw error;
  });
  return validateConfig(merged);
}

/**
 * `resolveConfig` that goes on after a problem: every problem found, each with where its
 * value came from (`router-node check`). `config` is null when there is any problem.
 */
export function checkConfig(sources: ConfigSources = {}): {
  readonly config: RouterNodeConfig | null;
  readonly problems: readonly ConfigProblem[];
  /** Where the value of `field` (`nodes[2].address`, `tls.cert`) came from. */
  readonly sourceOf: (field: string) => string;
} {
  const problems: ConfigProblem[] = [];
  const { merged, origin } = merge(sources, (error, source) => problems.push({ error, source }));
  const fileLabel = sources.filePath === undefined ? 'file' : `file ${sources.filePath}`;
  // `nodes[2].address` came from where `nodes` did; `tls.cert` from where `tls.cert` or `tls` did.
  const sourceOf = (field: string): string => {
    const parts = field.replace(/\[.*$/, '').split('.');
    for (let n = parts.length; n > 0; n--) {
      const key = parts.slice(0, n).join('.');
      const set = origin.get(key);
      if (set !== undefined) return set;
      if (isObject(sources.file) && getPath(sources.file as JsonObject, key) !== undefined) {
        return fileLabel;
      }
    }
    return 'default';
  };
  const config = validateConfig(merged, (error) =>
    problems.push({ error, source: sourceOf(error.field) }),
  );
  return { config: problems.length === 0 ? config : null, problems, sourceOf };
}

/**
 * Where the nodes come from, given how router-node is started: `nodes` listed, or a local
 * cluster started for them (`run --local-cluster`, `demo`), never both, never neither. A
 * config with no nodes once started a throwaway local cluster without a word; a production
 * config that lost its `nodes` must not serve from temp dirs.
 */
export function nodesProblem(cfg: RouterNodeConfig, localCluster: boolean): ConfigError | null {
  if (localCluster && cfg.nodes.length > 0) {
    return new ConfigError(
      'nodes',
      cfg.nodes.map((n) => n.id),
      '--local-cluster starts its own memory nodes: drop --local-cluster to route to these, or remove nodes',
    );
  }
  if (localCluster && cfg.localCluster.nodes === 0) {
    return new ConfigError('localCluster.nodes', 0, '--local-cluster needs at least one node');
  }
  // etcd mode: the placement may already be in etcd (a file without nodes cannot seed it).
  if (!localCluster && cfg.nodes.length === 0 && cfg.etcd === null) {
    return new ConfigError(
      'nodes',
      [],
      'no memory nodes configured: list them in the config file, or start a throwaway local cluster (localCluster.nodes nodes, temp-dir data) with `router-node run --local-cluster` or `router-node demo`',
    );
  }
  return null;
}

/** Shown instead of a secret by `redactConfig`. */
export const REDACTED = '<redacted>';

/** `cfg` with its secrets (the inline admin token) replaced by `REDACTED`, for printing. */
export function redactConfig(cfg: RouterNodeConfig): RouterNodeConfig {
  return {
    ...cfg,
    admin: { ...cfg.admin, token: cfg.admin.token === null ? null : REDACTED },
  };
}
