import { readFileSync } from 'node:fs';
import { addressProblem } from '@engram/ring';
import { ConfigError } from './errors.js';

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

/** Every setting of router-node, with units in the names. See `CONFIG_DEFAULTS`. */
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
  };
  readonly tls: ListenerTlsConfig | null;
  readonly admin: {
    readonly enabled: boolean;
    readonly host: string;
    readonly port: number;
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
  };
  readonly shutdownGraceMs: number;
  readonly logLevel: string;
  /** With no `nodes`, start this many local memory nodes as child processes (0 = never). */
  readonly localCluster: {
    readonly nodes: number;
    readonly zones: number;
    readonly dataDir: string | null;
  };
}

/** Defaults; the seed's router and pool defaults, units in the key names. */
export const CONFIG_DEFAULTS: RouterNodeConfig = Object.freeze({
  listen: {
    host: '127.0.0.1',
    port: 50051,
    maxConcurrentStreams: 1000,
    idleTimeoutMs: 5 * 60 * 1000, // 5 min
    maxHeaderListBytes: 64 * 1024, // 64 KiB, nghttp2's and grpc's usual limit
  },
  tls: null,
  admin: { enabled: true, host: '127.0.0.1', port: 50052, tls: null },
  metrics: { enabled: true, host: '127.0.0.1', port: 9464 },
  // One data-plane thread beside the control plane. Measured (bench/README.md, 2 cores shared
  // with the load and the node): 23.8k calls/s against 22.2k for the main-thread data plane
  // and 22.4k for 2 threads, the lowest added p99, the same memory. And with `workers: 0` a
  // table rebuild on the main thread (124 ms for 100 nodes at 8192 vnodes) pauses traffic.
  workers: 1,
  youngGenerationMb: 0,
  nodes: [],
  assignments: [],
  localNodeId: null,
  replicationFactor: 3,
  vnodesPerNode: 8192,
  router: {
    maxRetries: 3,
    retryBaseDelayMs: 100, // 100 ms
    retryMaxDelayMs: 5 * 1000, // 5 s
    deadlineMs: 10 * 1000, // 10 s
    attemptTimeoutMs: 2 * 1000, // 2 s: a node silent this long is failed over
    replicaFallback: true,
    storeFallback: true,
    breakerThreshold: 5,
    breakerTimeoutMs: 30 * 1000, // 30 s
    maxMessageBytes: 4 * 1024 * 1024, // 4 MiB, grpc's default receive limit
  },
  retryBudget: { ratio: 0.2, minRetriesPerSecond: 10, ttlMs: 10 * 1000 },
  pool: {
    channelsPerNode: 1,
    connectTimeoutMs: 5 * 1000, // 5 s
    keepaliveIntervalMs: 30 * 1000, // 30 s
    keepaliveTimeoutMs: 10 * 1000, // 10 s
    tls: null,
  },
  health: {
    intervalMs: 1000, // 1 s
    timeoutMs: 500, // 0.5 s
    unhealthyThreshold: 2,
    healthyThreshold: 2,
  },
  shutdownGraceMs: 10 * 1000, // 10 s
  logLevel: 'info',
  localCluster: { nodes: 3, zones: 2, dataDir: null },
});

type Kind = 'int' | 'number' | 'bool' | 'string' | 'string?';
interface Scalar {
  readonly kind: Kind;
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const PORT: Scalar = { kind: 'int', min: 0, max: 65_535 };
const MS = (min: number, max: number): Scalar => ({ kind: 'int', min, max });

/** Every scalar key, dotted, with its type and range (files, env vars and flags share it). */
export const SCALAR_KEYS: Readonly<Record<string, Scalar>> = Object.freeze({
  'listen.host': { kind: 'string' },
  'listen.port': PORT,
  'listen.maxConcurrentStreams': { kind: 'int', min: 1, max: 100_000 },
  'listen.idleTimeoutMs': MS(0, 2_147_483_647),
  'listen.maxHeaderListBytes': { kind: 'int', min: 1024, max: 16 * 1024 * 1024 },
  'admin.enabled': { kind: 'bool' },
  'admin.host': { kind: 'string' },
  'admin.port': PORT,
  'metrics.enabled': { kind: 'bool' },
  'metrics.host': { kind: 'string' },
  'metrics.port': PORT,
  workers: { kind: 'int', min: 0, max: 256 },
  youngGenerationMb: { kind: 'int', min: 0, max: 1024 },
  localNodeId: { kind: 'string?' },
  replicationFactor: { kind: 'int', min: 1, max: 5 },
  vnodesPerNode: { kind: 'int', min: 1, max: 65_536 },
  'router.maxRetries': { kind: 'int', min: 0, max: 10 },
  'router.retryBaseDelayMs': MS(0, 60_000),
  'router.retryMaxDelayMs': MS(0, 600_000),
  'router.deadlineMs': MS(1, 3_600_000),
  'router.attemptTimeoutMs': MS(1, 3_600_000),
  'router.replicaFallback': { kind: 'bool' },
  'router.storeFallback': { kind: 'bool' },
  'router.breakerThreshold': { kind: 'int', min: 1, max: 1000 },
  'router.breakerTimeoutMs': MS(1, 86_400_000),
  'router.maxMessageBytes': { kind: 'int', min: 1024, max: 1 << 30 },
  'retryBudget.ratio': { kind: 'number', min: 0, max: 1 },
  'retryBudget.minRetriesPerSecond': { kind: 'number', min: 0, max: 10_000 },
  'retryBudget.ttlMs': MS(100, 600_000),
  'pool.channelsPerNode': { kind: 'int', min: 1, max: 64 },
  'pool.connectTimeoutMs': MS(1, 600_000),
  'pool.keepaliveIntervalMs': MS(1, 86_400_000),
  'pool.keepaliveTimeoutMs': MS(1, 600_000),
  'health.intervalMs': MS(10, 3_600_000),
  'health.timeoutMs': MS(1, 600_000),
  'health.unhealthyThreshold': { kind: 'int', min: 1, max: 100 },
  'health.healthyThreshold': { kind: 'int', min: 1, max: 100 },
  shutdownGraceMs: MS(0, 3_600_000),
  logLevel: { kind: 'string', values: LOG_LEVELS },
  'localCluster.nodes': { kind: 'int', min: 0, max: 16 },
  'localCluster.zones': { kind: 'int', min: 1, max: 16 },
  'localCluster.dataDir': { kind: 'string?' },
  'tls.cert': { kind: 'string' },
  'tls.key': { kind: 'string' },
  'tls.clientCa': { kind: 'string?' },
  'admin.tls.cert': { kind: 'string' },
  'admin.tls.key': { kind: 'string' },
  'admin.tls.clientCa': { kind: 'string?' },
  'pool.tls.ca': { kind: 'string?' },
  'pool.tls.cert': { kind: 'string?' },
  'pool.tls.key': { kind: 'string?' },
  'pool.tls.serverName': { kind: 'string?' },
});

/** `health.intervalMs` → `ENGRAM_ROUTER_HEALTH_INTERVAL_MS`. */
export function envName(key: string): string {
  return `ENGRAM_ROUTER_${key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/\./g, '_')
    .toUpperCase()}`;
}

/** `health.intervalMs` → `--health.interval-ms`. */
export function flagName(key: string): string {
  return `--${key.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase()}`;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses a string from an env var or flag into the key's type. */
function coerce(key: string, text: string, source: string): Json {
  const spec = SCALAR_KEYS[key]!;
  switch (spec.kind) {
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
    case 'string?':
      return text === '' || text === 'null' ? null : text;
    case 'string':
      return text;
  }
}

function setPath(target: JsonObject, key: string, value: Json): void {
  const parts = key.split('.');
  let obj = target;
  for (let i = 0; i < parts.length - 1; i++) {
    const part = parts[i]!;
    const next = obj[part];
    if (!isObject(next)) {
      const fresh: JsonObject = {};
      obj[part] = fresh;
      obj = fresh;
    } else {
      obj = next;
    }
  }
  obj[parts[parts.length - 1]!] = value;
}

/** Reads a JSON config file; errors name the file. */
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
    throw new ConfigError('config', path, `not valid JSON: ${(err as Error).message}`);
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
 * naming the first bad key and its value.
 */
export function resolveConfig(sources: ConfigSources = {}): RouterNodeConfig {
  const file = sources.file ?? {};
  if (!isObject(file)) throw new ConfigError('config', file, 'must be an object');
  const merged = structuredClone(file) as JsonObject;
  for (const [key, raw] of Object.entries(sources.env ?? {})) {
    if (raw === undefined || !key.startsWith('ENGRAM_ROUTER_')) continue;
    const match = Object.keys(SCALAR_KEYS).find((k) => envName(k) === key);
    if (match === undefined) throw new ConfigError(key, raw, 'unknown environment variable');
    setPath(merged, match, coerce(match, raw, key));
  }
  for (const [key, raw] of Object.entries(sources.flags ?? {})) {
    if (SCALAR_KEYS[key] === undefined) throw new ConfigError(key, raw, 'unknown flag');
    setPath(merged, key, coerce(key, raw, flagName(key)));
  }
  return validate(merged);
}

const TOP_KEYS = new Set([
  'listen',
  'tls',
  'admin',
  'metrics',
  'workers',
  'youngGenerationMb',
  'nodes',
  'assignments',
  'localNodeId',
  'replicationFactor',
  'vnodesPerNode',
  'router',
  'retryBudget',
  'pool',
  'health',
  'shutdownGraceMs',
  'logLevel',
  'localCluster',
]);

function scalar(obj: JsonObject, prefix: string, name: string, fallback: Json): Json {
  const key = prefix === '' ? name : `${prefix}.${name}`;
  const spec = SCALAR_KEYS[key];
  if (spec === undefined) throw new Error(`internal: no spec for ${key}`);
  const value = obj[name] === undefined ? fallback : obj[name];
  switch (spec.kind) {
    case 'int':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        throw new ConfigError(key, value, 'must be a number');
      }
      if (spec.kind === 'int' && !Number.isInteger(value)) {
        throw new ConfigError(key, value, 'must be an integer');
      }
      if (value < spec.min! || value > spec.max!) {
        throw new ConfigError(key, value, `must be from ${spec.min} to ${spec.max}`);
      }
      return value;
    }
    case 'bool':
      if (typeof value !== 'boolean') throw new ConfigError(key, value, 'must be true or false');
      return value;
    case 'string':
      if (typeof value !== 'string' || value === '') {
        throw new ConfigError(key, value, 'must be a non-empty string');
      }
      if (spec.values !== undefined && !spec.values.includes(value)) {
        throw new ConfigError(key, value, `must be one of ${spec.values.join(', ')}`);
      }
      return value;
    case 'string?':
      if (value !== null && (typeof value !== 'string' || value === '')) {
        throw new ConfigError(key, value, 'must be a non-empty string or null');
      }
      return value;
  }
}

function section(root: JsonObject, key: string, known: readonly string[]): JsonObject {
  const value = root[key.split('.').pop()!];
  if (value === undefined) return {};
  if (!isObject(value)) throw new ConfigError(key, value, 'must be an object');
  for (const k of Object.keys(value)) {
    if (!known.includes(k)) throw new ConfigError(`${key}.${k}`, value[k], 'unknown key');
  }
  return value;
}

function listenerTls(parent: JsonObject, key: string): ListenerTlsConfig | null {
  if (parent.tls === undefined || parent.tls === null) return null;
  const t = section(parent, key, ['cert', 'key', 'clientCa']);
  return {
    cert: scalar(t, key, 'cert', null) as string,
    key: scalar(t, key, 'key', null) as string,
    clientCa: scalar(t, key, 'clientCa', null) as string | null,
  };
}

/** Checks a node entry; shared with the admin API's AddNode. */
export function validateNode(value: unknown, key: string): NodeConfig {
  if (!isObject(value)) throw new ConfigError(key, value, 'must be an object');
  for (const k of Object.keys(value)) {
    if (!['id', 'address', 'zone'].includes(k)) {
      throw new ConfigError(`${key}.${k}`, value[k], 'unknown key');
    }
  }
  const { id, address, zone } = value;
  if (typeof id !== 'string' || id === '' || id.length > 256) {
    throw new ConfigError(`${key}.id`, id, 'must be a non-empty string of at most 256 characters');
  }
  const problem = addressProblem(address);
  if (problem !== undefined) throw new ConfigError(`${key}.address`, address, problem);
  if (zone !== undefined && (typeof zone !== 'string' || zone.length > 256)) {
    throw new ConfigError(`${key}.zone`, zone, 'must be a string of at most 256 characters');
  }
  return { id, address: address as string, zone: (zone as string | undefined) ?? '' };
}

function validate(root: JsonObject): RouterNodeConfig {
  for (const k of Object.keys(root)) {
    if (!TOP_KEYS.has(k)) throw new ConfigError(k, root[k], 'unknown key');
  }
  const d = CONFIG_DEFAULTS;
  const listen = section(root, 'listen', [
    'host',
    'port',
    'maxConcurrentStreams',
    'idleTimeoutMs',
    'maxHeaderListBytes',
  ]);
  const admin = section(root, 'admin', ['enabled', 'host', 'port', 'tls']);
  const metrics = section(root, 'metrics', ['enabled', 'host', 'port']);
  const router = section(root, 'router', Object.keys(d.router));
  const budget = section(root, 'retryBudget', Object.keys(d.retryBudget));
  const pool = section(root, 'pool', Object.keys(d.pool));
  const health = section(root, 'health', Object.keys(d.health));
  const local = section(root, 'localCluster', Object.keys(d.localCluster));
  const nodesRaw = root.nodes ?? [];
  if (!Array.isArray(nodesRaw)) throw new ConfigError('nodes', nodesRaw, 'must be an array');
  const nodes = nodesRaw.map((n, i) => validateNode(n, `nodes[${i}]`));
  const seen = new Set<string>();
  nodes.forEach((n, i) => {
    if (seen.has(n.id)) throw new ConfigError(`nodes[${i}].id`, n.id, 'duplicate node id');
    seen.add(n.id);
  });
  const assignRaw = root.assignments ?? [];
  if (!Array.isArray(assignRaw)) {
    throw new ConfigError('assignments', assignRaw, 'must be an array');
  }
  const assignments = assignRaw.map((a, i) =>
    validateAssignment(a, `assignments[${i}]`, seen, nodes.length === 0),
  );
  const localNodeId = scalar(root, '', 'localNodeId', d.localNodeId) as string | null;
  if (localNodeId !== null && nodes.length > 0 && !seen.has(localNodeId)) {
    throw new ConfigError('localNodeId', localNodeId, 'is not one of the configured nodes');
  }
  let poolTls: UpstreamTlsConfig | null = null;
  if (pool.tls !== undefined && pool.tls !== null) {
    const t = section(pool, 'pool.tls', ['ca', 'cert', 'key', 'serverName']);
    poolTls = {
      ca: scalar(t, 'pool.tls', 'ca', null) as string | null,
      cert: scalar(t, 'pool.tls', 'cert', null) as string | null,
      key: scalar(t, 'pool.tls', 'key', null) as string | null,
      serverName: scalar(t, 'pool.tls', 'serverName', null) as string | null,
    };
    if ((poolTls.cert === null) !== (poolTls.key === null)) {
      throw new ConfigError('pool.tls.cert', poolTls.cert, 'cert and key go together');
    }
  }
  const s = <T>(obj: JsonObject, prefix: string, name: string, fallback: T): T =>
    scalar(obj, prefix, name, fallback as Json) as T;
  const cfg: RouterNodeConfig = {
    listen: {
      host: s(listen, 'listen', 'host', d.listen.host),
      port: s(listen, 'listen', 'port', d.listen.port),
      maxConcurrentStreams: s(
        listen,
        'listen',
        'maxConcurrentStreams',
        d.listen.maxConcurrentStreams,
      ),
      idleTimeoutMs: s(listen, 'listen', 'idleTimeoutMs', d.listen.idleTimeoutMs),
      maxHeaderListBytes: s(listen, 'listen', 'maxHeaderListBytes', d.listen.maxHeaderListBytes),
    },
    tls: listenerTls(root, 'tls'),
    admin: {
      enabled: s(admin, 'admin', 'enabled', d.admin.enabled),
      host: s(admin, 'admin', 'host', d.admin.host),
      port: s(admin, 'admin', 'port', d.admin.port),
      tls: listenerTls(admin, 'admin.tls'),
    },
    metrics: {
      enabled: s(metrics, 'metrics', 'enabled', d.metrics.enabled),
      host: s(metrics, 'metrics', 'host', d.metrics.host),
      port: s(metrics, 'metrics', 'port', d.metrics.port),
    },
    workers: s(root, '', 'workers', d.workers),
    youngGenerationMb: s(root, '', 'youngGenerationMb', d.youngGenerationMb),
    nodes,
    assignments,
    localNodeId,
    replicationFactor: s(root, '', 'replicationFactor', d.replicationFactor),
    vnodesPerNode: s(root, '', 'vnodesPerNode', d.vnodesPerNode),
    router: {
      maxRetries: s(router, 'router', 'maxRetries', d.router.maxRetries),
      retryBaseDelayMs: s(router, 'router', 'retryBaseDelayMs', d.router.retryBaseDelayMs),
      retryMaxDelayMs: s(router, 'router', 'retryMaxDelayMs', d.router.retryMaxDelayMs),
      deadlineMs: s(router, 'router', 'deadlineMs', d.router.deadlineMs),
      attemptTimeoutMs: s(router, 'router', 'attemptTimeoutMs', d.router.attemptTimeoutMs),
      replicaFallback: s(router, 'router', 'replicaFallback', d.router.replicaFallback),
      storeFallback: s(router, 'router', 'storeFallback', d.router.storeFallback),
      breakerThreshold: s(router, 'router', 'breakerThreshold', d.router.breakerThreshold),
      breakerTimeoutMs: s(router, 'router', 'breakerTimeoutMs', d.router.breakerTimeoutMs),
      maxMessageBytes: s(router, 'router', 'maxMessageBytes', d.router.maxMessageBytes),
    },
    retryBudget: {
      ratio: s(budget, 'retryBudget', 'ratio', d.retryBudget.ratio),
      minRetriesPerSecond: s(
        budget,
        'retryBudget',
        'minRetriesPerSecond',
        d.retryBudget.minRetriesPerSecond,
      ),
      ttlMs: s(budget, 'retryBudget', 'ttlMs', d.retryBudget.ttlMs),
    },
    pool: {
      channelsPerNode: s(pool, 'pool', 'channelsPerNode', d.pool.channelsPerNode),
      connectTimeoutMs: s(pool, 'pool', 'connectTimeoutMs', d.pool.connectTimeoutMs),
      keepaliveIntervalMs: s(pool, 'pool', 'keepaliveIntervalMs', d.pool.keepaliveIntervalMs),
      keepaliveTimeoutMs: s(pool, 'pool', 'keepaliveTimeoutMs', d.pool.keepaliveTimeoutMs),
      tls: poolTls,
    },
    health: {
      intervalMs: s(health, 'health', 'intervalMs', d.health.intervalMs),
      timeoutMs: s(health, 'health', 'timeoutMs', d.health.timeoutMs),
      unhealthyThreshold: s(health, 'health', 'unhealthyThreshold', d.health.unhealthyThreshold),
      healthyThreshold: s(health, 'health', 'healthyThreshold', d.health.healthyThreshold),
    },
    shutdownGraceMs: s(root, '', 'shutdownGraceMs', d.shutdownGraceMs),
    logLevel: s(root, '', 'logLevel', d.logLevel),
    localCluster: {
      nodes: s(local, 'localCluster', 'nodes', d.localCluster.nodes),
      zones: s(local, 'localCluster', 'zones', d.localCluster.zones),
      dataDir: s(local, 'localCluster', 'dataDir', d.localCluster.dataDir),
    },
  };
  if (cfg.router.retryMaxDelayMs < cfg.router.retryBaseDelayMs) {
    throw new ConfigError(
      'router.retryMaxDelayMs',
      cfg.router.retryMaxDelayMs,
      `must be at least router.retryBaseDelayMs (${cfg.router.retryBaseDelayMs})`,
    );
  }
  if (cfg.health.timeoutMs > cfg.health.intervalMs) {
    throw new ConfigError(
      'health.timeoutMs',
      cfg.health.timeoutMs,
      `must not exceed health.intervalMs (${cfg.health.intervalMs})`,
    );
  }
  if (cfg.nodes.length === 0 && cfg.localCluster.nodes === 0) {
    throw new ConfigError('nodes', [], 'is empty and localCluster.nodes is 0: nothing to route to');
  }
  return cfg;
}

/** Checks an assignment against known node ids (skipped for a local cluster not yet started). */
export function validateAssignment(
  value: unknown,
  key: string,
  nodeIds: ReadonlySet<string>,
  skipNodeCheck = false,
): AssignmentConfig {
  if (!isObject(value)) throw new ConfigError(key, value, 'must be an object');
  for (const k of Object.keys(value)) {
    if (!['spaceId', 'primary', 'replicas'].includes(k)) {
      throw new ConfigError(`${key}.${k}`, value[k], 'unknown key');
    }
  }
  const { spaceId, primary } = value;
  const replicas = value.replicas ?? [];
  if (typeof spaceId !== 'string' || spaceId === '' || spaceId.length > 1024) {
    throw new ConfigError(`${key}.spaceId`, spaceId, 'must be a non-empty string (≤ 1024)');
  }
  if (typeof primary !== 'string' || (!skipNodeCheck && !nodeIds.has(primary))) {
    throw new ConfigError(`${key}.primary`, primary, 'must name a known node');
  }
  if (!Array.isArray(replicas))
    throw new ConfigError(`${key}.replicas`, replicas, 'must be an array');
  const seen = new Set([primary]);
  replicas.forEach((r, i) => {
    if (typeof r !== 'string' || (!skipNodeCheck && !nodeIds.has(r))) {
      throw new ConfigError(`${key}.replicas[${i}]`, r, 'must name a known node');
    }
    if (seen.has(r)) {
      throw new ConfigError(`${key}.replicas[${i}]`, r, 'repeats the primary or another replica');
    }
    seen.add(r);
  });
  return { spaceId, primary, replicas: replicas as string[] };
}
