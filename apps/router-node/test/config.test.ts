import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_TIMEOUT_MS } from '@engram/breaker';
import { MAX_CHANNELS_PER_NODE } from '@engram/pool';
import { RetryBudget } from '@engram/retry';
import { MAX_REPLICATION_FACTOR, MAX_VNODES_PER_NODE, TableWriter } from '@engram/ring';
import { MAX_RETRIES } from '@engram/router';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_DEFAULTS,
  CONFIG_KEYS,
  CONFIG_SCHEMA,
  ConfigError,
  type ConfigKey,
  ConfigSyntaxError,
  checkConfig,
  envName,
  flagName,
  type KeySpec,
  NULLABLE_SECTIONS,
  REDACTED,
  type RouterNodeConfig,
  readConfigFile,
  redactConfig,
  resolveConfig,
  TABLE_MAX_REPLICATION_FACTOR,
} from '../src/index.js';
import { nodesProblem } from '../src/internal/config.js';
import {
  BUDGET_MAX_MIN_RETRIES_PER_SECOND,
  BUDGET_MAX_TTL_MS,
  BUDGET_MIN_TTL_MS,
} from '../src/internal/config-caps.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Sources = Parameters<typeof resolveConfig>[0];

const SCALAR_KEYS = CONFIG_KEYS.filter((k) => !['nodes', 'assignments'].includes(k));

function nested(flat: Readonly<Record<string, Json>>): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const [key, value] of Object.entries(flat)) {
    const parts = key.split('.');
    let obj = out;
    for (const part of parts.slice(0, -1)) {
      obj[part] ??= {};
      obj = obj[part] as Record<string, Json>;
    }
    obj[parts.at(-1)!] = value;
  }
  return out;
}

function valueAt(cfg: RouterNodeConfig, key: string): unknown {
  return key.split('.').reduce<unknown>((obj, part) => (obj as Record<string, unknown>)[part], cfg);
}

/** A valid value other than the default, with how an env var or flag spells it. */
function sample(spec: KeySpec): { value: Json; text: string } {
  switch (spec.type) {
    case 'int': {
      const value = spec.default + 1 <= spec.max ? spec.default + 1 : spec.default - 1;
      return { value, text: String(value) };
    }
    case 'number': {
      const value = (spec.default + spec.max) / 2;
      return { value, text: String(value) };
    }
    case 'bool':
      return { value: !spec.default, text: String(!spec.default) };
    case 'enum': {
      const value = spec.values.find((v) => v !== spec.default)!;
      return { value, text: value };
    }
    case 'addresses':
      return { value: ['127.0.0.1:2379', 'etcd-2:2379'], text: '127.0.0.1:2379,etcd-2:2379' };
    default:
      return { value: 'sample.pem', text: 'sample.pem' };
  }
}

/** A value as an env var or flag gives it (a list comma-separated). */
function asText(v: Json): string {
  return Array.isArray(v) ? v.join(',') : String(v);
}

/**
 * Keys a key cannot be given without: the required keys of its section (TLS files, etcd's
 * endpoints), cert ↔ key.
 */
function companions(key: ConfigKey): Record<string, Json> {
  const section = NULLABLE_SECTIONS.find((s) => key.startsWith(`${s}.`));
  if (section === undefined) return {};
  const out: Record<string, Json> = {};
  for (const other of CONFIG_KEYS) {
    if (other === key || !other.startsWith(`${section}.`)) continue;
    const spec = CONFIG_SCHEMA[other];
    if (spec.type === 'string' && spec.default === undefined) out[other] = 'companion.pem';
    if (spec.type === 'addresses') out[other] = ['127.0.0.1:2379'];
  }
  if (key === 'etcd.cert' || key === 'etcd.key') {
    out[key === 'etcd.cert' ? 'etcd.key' : 'etcd.cert'] = 'companion.pem';
    out['etcd.ca'] = 'companion.pem';
  }
  if (key === 'pool.tls.cert') out['pool.tls.key'] = 'companion.pem';
  if (key === 'pool.tls.key') out['pool.tls.cert'] = 'companion.pem';
  return out;
}

function refusal(sources: Sources): ConfigError {
  try {
    resolveConfig(sources);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('InvalidConfig');
    return err as ConfigError;
  }
  return expect.unreachable('accepted');
}

describe('config schema', () => {
  it('builds the same defaults as the hand-written table it replaced', () => {
    expect(CONFIG_DEFAULTS).toEqual({
      listen: {
        host: '127.0.0.1',
        port: 50051,
        maxConcurrentStreams: 1000,
        idleTimeoutMs: 300_000,
        maxHeaderListBytes: 65_536,
        maxConnectionsPerWorker: 10_000,
        headerTimeoutMs: 10_000,
        bodyTimeoutMs: 30_000,
        bodyMinBytesPerSecond: 16_384,
        sendTimeoutMs: 30_000,
      },
      tls: null,
      admin: {
        enabled: true,
        host: '127.0.0.1',
        port: 50052,
        token: null,
        tokenFile: null,
        tls: null,
      },
      metrics: { enabled: true, host: '127.0.0.1', port: 9464 },
      workers: 1,
      youngGenerationMb: 0,
      nodes: [],
      assignments: [],
      localNodeId: null,
      replicationFactor: 3,
      vnodesPerNode: 8192,
      maxNodes: 64,
      router: {
        maxRetries: 3,
        retryBaseDelayMs: 100,
        retryMaxDelayMs: 5000,
        deadlineMs: 10_000,
        attemptTimeoutMs: 2000,
        replicaFallback: true,
        storeFallback: true,
        replicateWrites: true,
        writeConsistency: 'quorum',
        readConsistency: 'one',
        readBalancing: 'placement',
        readBalancingThreshold: 2,
        breakerThreshold: 5,
        breakerTimeoutMs: 30_000,
        maxMessageBytes: 4 * 1024 * 1024,
      },
      retryBudget: { ratio: 0.2, minRetriesPerSecond: 10, ttlMs: 10_000 },
      pool: {
        channelsPerNode: 1,
        connectTimeoutMs: 5000,
        keepaliveIntervalMs: 30_000,
        keepaliveTimeoutMs: 10_000,
        tls: null,
      },
      health: {
        intervalMs: 1000,
        timeoutMs: 500,
        unhealthyIntervalMs: 250,
        healthyEdgeIntervalMs: 100,
        unhealthyThreshold: 2,
        healthyThreshold: 2,
        panicThreshold: 0.3,
        slowStartMs: 3000,
      },
      outlier: {
        enabled: true,
        intervalMs: 250,
        windowMs: 10_000,
        consecutiveFailures: 5,
        failureRate: 0.5,
        minRequests: 100,
        latencyFactor: 5,
        latencyFloorMs: 5,
        stallMs: 500,
        baseEjectionMs: 30_000,
        maxEjectionMs: 300_000,
        maxEjectedShare: 0.3,
      },
      dataDir: null,
      hints: {
        maxBytesPerNode: 64 * 1024 * 1024,
        maxAgeMs: 3 * 60 * 60 * 1000,
        replayPerSecond: 1000,
      },
      streaming: { concurrency: 4 },
      repair: { intervalMs: 0, spacesPerSecond: 10 },
      shutdownGraceMs: 10_000,
      shutdownDrainMs: 5000,
      logLevel: 'info',
      localCluster: { nodes: 3, zones: 2, dataDir: null },
      etcd: null,
    });
    expect(Object.isFrozen(CONFIG_DEFAULTS)).toBe(true);
    expect(resolveConfig({})).toEqual(CONFIG_DEFAULTS);
  });

  it('keeps every default inside its own range, and names every env var and flag once', () => {
    for (const key of SCALAR_KEYS) {
      const spec = CONFIG_SCHEMA[key];
      if (spec.type === 'int' || spec.type === 'number') {
        expect(spec.min, key).toBeLessThanOrEqual(spec.default);
        expect(spec.default, key).toBeLessThanOrEqual(spec.max);
        if (spec.type === 'int') expect(Number.isInteger(spec.default), key).toBe(true);
      }
      if (spec.type === 'enum') expect(spec.values, key).toContain(spec.default);
      expect(spec.description.length, key).toBeGreaterThan(0);
      expect(spec.description, key).not.toMatch(/[\n|]/);
    }
    expect(new Set(SCALAR_KEYS.map(envName)).size).toBe(SCALAR_KEYS.length);
    expect(new Set(SCALAR_KEYS.map(flagName)).size).toBe(SCALAR_KEYS.length);
    expect(Object.isFrozen(CONFIG_SCHEMA['listen.port'])).toBe(true);
  });

  it('marks as reloaded by SIGHUP exactly the keys RouterNode.reload applies live', () => {
    expect(CONFIG_KEYS.filter((k) => CONFIG_SCHEMA[k].reloadable)).toEqual([
      'admin.token',
      'admin.tokenFile',
      'nodes',
      'assignments',
      'router.maxRetries',
      'router.retryBaseDelayMs',
      'router.retryMaxDelayMs',
      'router.deadlineMs',
      'router.attemptTimeoutMs',
      'router.replicaFallback',
      'router.storeFallback',
      'router.writeConsistency',
      'router.readConsistency',
      'router.readBalancing',
      'router.readBalancingThreshold',
      'router.maxMessageBytes',
      'retryBudget.ratio',
      'retryBudget.minRetriesPerSecond',
      'retryBudget.ttlMs',
      'health.intervalMs',
      'health.timeoutMs',
      'health.unhealthyIntervalMs',
      'health.healthyEdgeIntervalMs',
      'health.unhealthyThreshold',
      'health.healthyThreshold',
      'health.panicThreshold',
      'health.slowStartMs',
      'outlier.enabled',
      'outlier.intervalMs',
      'outlier.windowMs',
      'outlier.consecutiveFailures',
      'outlier.failureRate',
      'outlier.minRequests',
      'outlier.latencyFactor',
      'outlier.latencyFloorMs',
      'outlier.stallMs',
      'outlier.baseEjectionMs',
      'outlier.maxEjectionMs',
      'outlier.maxEjectedShare',
      'hints.replayPerSecond',
      'streaming.concurrency',
      'repair.intervalMs',
      'repair.spacesPerSecond',
      'logLevel',
    ]);
  });

  it('refuses admin.token with admin.tokenFile, quoting the file and never the token', () => {
    const err = refusal({
      file: { admin: { token: 'do-not-print-me', tokenFile: '/etc/engram/admin.token' } },
    });
    expect(err.field).toBe('admin.tokenFile');
    expect(err.message).not.toContain('do-not-print-me');
  });

  it('refuses an inline admin.token no bearer header could carry, without quoting it', () => {
    for (const token of ['has space', ' lead', '']) {
      const err = refusal({ file: { admin: { token } } });
      expect(err.field).toBe('admin.token');
      if (token !== '') expect(err.message).not.toContain(token);
    }
  });

  it("takes its caps from the libraries' own constants", () => {
    expect(CONFIG_SCHEMA['router.maxRetries'].max).toBe(MAX_RETRIES);
    expect(CONFIG_SCHEMA.vnodesPerNode.max).toBe(MAX_VNODES_PER_NODE);
    expect(CONFIG_SCHEMA['router.breakerTimeoutMs'].max).toBe(MAX_TIMEOUT_MS);
    expect(CONFIG_SCHEMA['pool.channelsPerNode'].max).toBe(MAX_CHANNELS_PER_NODE);
    expect(CONFIG_SCHEMA['retryBudget.ttlMs']).toMatchObject({
      min: BUDGET_MIN_TTL_MS,
      max: BUDGET_MAX_TTL_MS,
    });
    expect(CONFIG_SCHEMA['retryBudget.minRetriesPerSecond'].max).toBe(
      BUDGET_MAX_MIN_RETRIES_PER_SECOND,
    );
  });

  it('caps replicationFactor at what the placement table is sized for, below the ring cap', () => {
    expect(CONFIG_SCHEMA.replicationFactor.max).toBe(TABLE_MAX_REPLICATION_FACTOR);
    expect(TABLE_MAX_REPLICATION_FACTOR).toBeLessThanOrEqual(MAX_REPLICATION_FACTOR);
    const writer = new TableWriter({
      maxNodes: 8,
      maxTokens: 64,
      maxReplicationFactor: TABLE_MAX_REPLICATION_FACTOR,
    });
    expect(writer.capacity.maxReplicationFactor).toBe(TABLE_MAX_REPLICATION_FACTOR);
  });

  it("agrees with @engram/retry's unexported budget bounds at both ends", () => {
    const budget = (options: ConstructorParameters<typeof RetryBudget>[0]) => () =>
      new RetryBudget(options);
    expect(budget({ ttlMs: BUDGET_MIN_TTL_MS })).not.toThrow();
    expect(budget({ ttlMs: BUDGET_MAX_TTL_MS })).not.toThrow();
    expect(budget({ ttlMs: BUDGET_MIN_TTL_MS - 1 })).toThrow(RangeError);
    expect(budget({ ttlMs: BUDGET_MAX_TTL_MS + 1 })).toThrow(RangeError);
    expect(budget({ minRetriesPerSecond: BUDGET_MAX_MIN_RETRIES_PER_SECOND })).not.toThrow();
    expect(budget({ minRetriesPerSecond: BUDGET_MAX_MIN_RETRIES_PER_SECOND + 1 })).toThrow(
      RangeError,
    );
  });
});

describe('config keys', () => {
  it.each(SCALAR_KEYS)('%s round-trips through the file, its env var and its flag', (key) => {
    const { value, text } = sample(CONFIG_SCHEMA[key]);
    const others = companions(key);
    const fromFile = resolveConfig({ file: nested({ ...others, [key]: value }) });
    expect(valueAt(fromFile, key)).toEqual(value);
    const env = Object.fromEntries(Object.entries(others).map(([k, v]) => [envName(k), asText(v)]));
    const fromEnv = resolveConfig({ env: { ...env, [envName(key)]: text } });
    expect(valueAt(fromEnv, key)).toEqual(value);
    const flagged = Object.fromEntries(Object.entries(others).map(([k, v]) => [k, asText(v)]));
    const fromFlag = resolveConfig({ flags: { ...flagged, [key]: text } });
    expect(valueAt(fromFlag, key)).toEqual(value);
    // The env var wins over the file (the order of all three: units.test.ts).
    const fileValue = (CONFIG_SCHEMA[key].default ?? 'file.pem') as Json;
    const layered = resolveConfig({
      file: nested({ ...others, [key]: fileValue }),
      env: { ...env, [envName(key)]: text },
    });
    expect(valueAt(layered, key)).toEqual(value);
  });

  it('reads 1 and 0 from an env var or flag as true and false', () => {
    const cfg = resolveConfig({
      env: { [envName('admin.enabled')]: '0' },
      flags: { 'router.storeFallback': '0', 'metrics.enabled': '1' },
    });
    expect([cfg.admin.enabled, cfg.router.storeFallback, cfg.metrics.enabled]).toEqual([
      false,
      false,
      true,
    ]);
  });

  it('reads "" and "null" from an env var or flag as null where null is allowed', () => {
    const cfg = resolveConfig({
      env: { [envName('localNodeId')]: '' },
      flags: { 'localCluster.dataDir': 'null' },
    });
    expect(cfg.localNodeId).toBeNull();
    expect(cfg.localCluster.dataDir).toBeNull();
  });

  const badValues = (spec: KeySpec): { file: Json[]; text: string[] } => {
    switch (spec.type) {
      case 'int':
      case 'number':
        return {
          file: [
            spec.min - 1,
            spec.max + 1,
            ...(spec.type === 'int' ? [spec.min + 0.5] : []),
            String(spec.default),
            null,
            true,
          ],
          text: ['', 'x', '1O', String(spec.max + 1)],
        };
      case 'bool':
        return { file: ['true', 1, null], text: ['yes', '', 'TRUE'] };
      case 'string':
        return { file: ['', 5, null, ['a']], text: [''] };
      case 'enum':
        return { file: ['loud', '', 5], text: ['loud', 'INFO'] };
      case 'string-or-null':
        return { file: ['', 5, false], text: [] };
      case 'addresses':
        // Entries that are refused name themselves (`etcd.endpoints[1]`): tested apart.
        return { file: [[], '127.0.0.1:2379', null, 5], text: [] };
      default:
        return { file: [], text: [] };
    }
  };

  it.each(SCALAR_KEYS)('%s: each bad value is refused, naming the key', (key) => {
    const { file, text } = badValues(CONFIG_SCHEMA[key]);
    const others = companions(key);
    const env = Object.fromEntries(Object.entries(others).map(([k, v]) => [envName(k), asText(v)]));
    const flagged = Object.fromEntries(Object.entries(others).map(([k, v]) => [k, asText(v)]));
    for (const value of file) {
      expect(refusal({ file: nested({ ...others, [key]: value }) }).field, String(value)).toBe(key);
    }
    for (const raw of text) {
      expect(refusal({ env: { ...env, [envName(key)]: raw } }).field, raw).toBe(key);
      expect(refusal({ flags: { ...flagged, [key]: raw } }).field, raw).toBe(key);
    }
  });

  it('refuses an etcd endpoint that is not host:port, naming its index and value', () => {
    const fromFile = refusal({
      file: { etcd: { endpoints: ['127.0.0.1:2379', 'nowhere', 7] } },
    });
    expect([fromFile.field, fromFile.value]).toEqual(['etcd.endpoints[1]', 'nowhere']);
    const fromEnv = refusal({ env: { [envName('etcd.endpoints')]: '127.0.0.1:2379,,x:1' } });
    expect([fromEnv.field, fromEnv.value]).toEqual(['etcd.endpoints[1]', '']);
    const fromFlag = refusal({ flags: { 'etcd.endpoints': 'etcd:99999' } });
    expect(fromFlag.field).toBe('etcd.endpoints[0]');
  });

  it('refuses the lists when they are not lists', () => {
    expect(refusal({ file: { nodes: {} } }).field).toBe('nodes');
    expect(refusal({ file: { assignments: 'a' } }).field).toBe('assignments');
    expect(refusal({ file: { nodes: [{ id: 'a', address: 'x' }] } }).field).toBe(
      'nodes[0].address',
    );
  });

  it('keeps the rules between keys', () => {
    const cases: [Record<string, Json>, string][] = [
      [{ 'router.retryBaseDelayMs': 500, 'router.retryMaxDelayMs': 100 }, 'router.retryMaxDelayMs'],
      [{ 'outlier.baseEjectionMs': 5000, 'outlier.maxEjectionMs': 1000 }, 'outlier.maxEjectionMs'],
      [{ 'localCluster.nodes': 0 }, 'nodes'],
      [{ 'etcd.endpoints': ['127.0.0.1:2379'], 'etcd.cert': 'c.pem' }, 'etcd.cert'],
      [
        { 'etcd.endpoints': ['127.0.0.1:2379'], 'etcd.cert': 'c.pem', 'etcd.key': 'k.pem' },
        'etcd.ca',
      ],
      [{ 'pool.tls.cert': 'c.pem' }, 'pool.tls.cert'],
      [{ 'pool.tls.key': 'k.pem' }, 'pool.tls.cert'],
      [{ 'tls.cert': 'c.pem' }, 'tls.key'],
      [{ 'admin.tls.key': 'k.pem' }, 'admin.tls.cert'],
    ];
    for (const [flat, field] of cases) expect(refusal({ file: nested(flat) }).field).toBe(field);
    // A probe timeout longer than the interval is fine: a node is never probed twice at once.
    expect(
      resolveConfig({ file: nested({ 'health.intervalMs': 100, 'health.timeoutMs': 2000 }) }).health
        .timeoutMs,
    ).toBe(2000);
    expect(
      refusal({ file: { localNodeId: 'zz', nodes: [{ id: 'a', address: '127.0.0.1:1' }] } }).field,
    ).toBe('localNodeId');
  });

  it('refuses two nodes on one address, naming both (addresses compared normalised)', () => {
    const err = refusal({
      file: {
        nodes: [
          { id: 'a', address: 'Memory-1.local:7000' },
          { id: 'b', address: '127.0.0.1:7001' },
          { id: 'c', address: 'memory-1.LOCAL:07000' },
        ],
      },
    });
    expect(err.field).toBe('nodes[2].address');
    expect(err.value).toBe('memory-1.LOCAL:07000');
    expect(err.message).toContain('"c"');
    expect(err.message).toContain('"a"');
  });
});

describe('unknown config keys', () => {
  const sections = [
    'listen',
    'tls',
    'admin',
    'admin.tls',
    'metrics',
    'router',
    'retryBudget',
    'pool',
    'pool.tls',
    'health',
    'localCluster',
  ];

  it.each(['', ...sections.map((s) => `${s}.`)])(
    'refuses an unknown key under "%s", naming its dotted path',
    (prefix) => {
      expect(refusal({ file: nested({ [`${prefix}bogusKey`]: 1 }) }).field).toBe(
        `${prefix}bogusKey`,
      );
    },
  );

  it('refuses unknown keys inside list entries, env vars and flags', () => {
    const node = { id: 'a', address: '127.0.0.1:1' };
    expect(refusal({ file: { nodes: [{ ...node, weight: 2 }] } }).field).toBe('nodes[0].weight');
    expect(
      refusal({ file: { nodes: [node], assignments: [{ spaceId: 's', primary: 'a', x: 1 }] } })
        .field,
    ).toBe('assignments[0].x');
    expect(refusal({ env: { ENGRAM_ROUTER_NOPE: '1' } }).field).toBe('ENGRAM_ROUTER_NOPE');
    expect(refusal({ env: { ENGRAM_ROUTER_NODES: '[]' } }).field).toBe('ENGRAM_ROUTER_NODES');
    expect(refusal({ flags: { nope: '1' } }).field).toBe('nope');
    expect(refusal({ flags: { nodes: '[]' } }).field).toBe('nodes');
    expect(refusal({ flags: { listen: '1' } }).field).toBe('listen');
  });

  it("ignores the admin CLI's own variables (engram-router's --admin and --router), and only those", () => {
    const nodes = [{ id: 'a', address: '127.0.0.1:1' }];
    const cfg = resolveConfig({
      file: { nodes },
      env: { ENGRAM_ROUTER_ADMIN: '127.0.0.1:9', ENGRAM_ROUTER_ADDRESS: '127.0.0.1:8' },
    });
    expect(cfg.admin.port).toBe(resolveConfig({ file: { nodes } }).admin.port);
    expect(refusal({ env: { ENGRAM_ROUTER_ADMINS: '1' } }).field).toBe('ENGRAM_ROUTER_ADMINS');
    expect(refusal({ env: { ENGRAM_ROUTER_ADDRES: '1' } }).field).toBe('ENGRAM_ROUTER_ADDRES');
  });

  it('refuses names inherited from Object.prototype and a JSON "__proto__"', () => {
    expect(refusal({ flags: { toString: '1' } }).field).toBe('toString');
    expect(refusal({ file: JSON.parse('{"__proto__": {"workers": 0}}') }).field).toBe('__proto__');
    expect(refusal({ file: { listen: { constructor: 1 } } }).field).toBe('listen.constructor');
  });

  it('refuses a section that is not an object (the TLS ones may be null)', () => {
    expect(refusal({ file: { listen: 5 } }).field).toBe('listen');
    expect(refusal({ file: { router: null } }).field).toBe('router');
    expect(refusal({ file: { tls: 'on' } }).field).toBe('tls');
    expect(
      resolveConfig({ file: { tls: null, admin: { tls: null }, pool: { tls: null } } }),
    ).toEqual(CONFIG_DEFAULTS);
  });
});

/** What `readConfigFile` throws for a file holding `text` (it must throw), and the file's path. */
function readFailure(text: string): { err: unknown; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'engram-rn-config-'));
  const file = join(dir, 'router.json');
  try {
    writeFileSync(file, text);
    readConfigFile(file);
  } catch (err) {
    return { err, file };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return expect.unreachable('parsed');
}

describe('config file', () => {
  function readError(text: string): ConfigError {
    const { err, file } = readFailure(text);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('InvalidConfig');
    expect((err as ConfigError).field).toBe('config');
    expect((err as ConfigError).value).toBe(file);
    return err as ConfigError;
  }

  it.each([
    ['an unquoted key', '{\n  "workers": 1,\n  nodes: []\n}\n', 3, 3],
    ['a trailing comma', '{\n  "workers": 1,\n}', 3, 1],
    ['CRLF line ends', '{\r\n  "workers": 1\r\n  "logLevel": "info"\r\n}', 3, 3],
    ['input ending early', '{\n  "workers": ', 2, 14],
    ['a first-line error', '{"workers": 1 x}', 1, 15],
  ])('reports malformed JSON (%s) with its line and column', (_name, text, line, column) => {
    const err = readError(text);
    expect(err.message).toContain(`not valid JSON at line ${line}, column ${column}:`);
    expect(err.message).not.toMatch(/at position/);
    expect(err.cause).toBeInstanceOf(SyntaxError);
  });

  it('refuses a file that holds JSON but not an object', () => {
    expect(readError('[1, 2]').message).toContain('must hold a JSON object');
  });
});

describe('checkConfig (router-node check)', () => {
  const NODE = { id: 'a', address: '127.0.0.1:1' };

  it('reports every problem, each with the source of its value', () => {
    const { config, problems } = checkConfig({
      file: {
        nodes: [NODE, { id: 'b', address: 'nope' }],
        health: { timeoutMs: 0 },
        router: { retryBaseDelayMs: 500, retryMaxDelayMs: 100 },
        bogus: true,
      },
      filePath: 'router.json',
      env: { ENGRAM_ROUTER_WORKERS: 'many', ENGRAM_ROUTER_NOPE: '1', PATH: '/bin' },
      flags: { 'listen.port': '70000', 'admin.port': '1' },
    });
    expect(config).toBeNull();
    expect(problems.map((p) => [p.error.field, p.source])).toEqual([
      ['workers', 'env ENGRAM_ROUTER_WORKERS'],
      ['ENGRAM_ROUTER_NOPE', 'env ENGRAM_ROUTER_NOPE'],
      ['bogus', 'file router.json'],
      ['nodes[1].address', 'file router.json'],
      ['listen.port', 'flag --listen.port'],
      ['health.timeoutMs', 'file router.json'],
      ['router.retryMaxDelayMs', 'file router.json'],
    ]);
    for (const p of problems) expect(p.error.code).toBe('InvalidConfig');
  });

  it('finds first the problem resolveConfig throws, and none where it resolves', () => {
    const cases: Parameters<typeof resolveConfig>[0][] = [
      { file: { listen: { port: -1 }, workers: 99 } },
      { file: { nodes: [NODE, NODE] } },
      { file: { tls: { cert: 'c.pem' } } },
      { file: { listen: 5, workers: -1 } },
      { env: { ENGRAM_ROUTER_LOG_LEVEL: 'loud' }, flags: { workers: 'x' } },
      { file: { nodes: [NODE], assignments: [{ spaceId: 's', primary: 'zz' }] } },
      { file: { nodes: [NODE], admin: { token: 't' } }, flags: { 'admin.tokenFile': 'f' } },
    ];
    for (const sources of cases) {
      const { problems } = checkConfig(sources);
      expect(problems.length, JSON.stringify(sources)).toBeGreaterThan(0);
      expect(problems[0]!.error.message).toBe(refusal(sources).message);
    }
    const ok = { file: { nodes: [NODE] }, flags: { workers: '2' } };
    expect(checkConfig(ok)).toMatchObject({ config: resolveConfig(ok), problems: [] });
  });

  it('names a value nobody set as the default', () => {
    const { problems } = checkConfig({ file: { localCluster: { nodes: 0 } } });
    expect(problems.map((p) => [p.error.field, p.source])).toEqual([['nodes', 'default']]);
  });

  it('redacts the inline admin token, and nothing else', () => {
    const cfg = resolveConfig({ file: { admin: { token: 'sekrit' } } });
    const shown = redactConfig(cfg);
    expect(shown.admin.token).toBe(REDACTED);
    expect(JSON.stringify(shown)).not.toContain('sekrit');
    expect({ ...shown, admin: { ...shown.admin, token: 'sekrit' } }).toEqual(cfg);
    expect(redactConfig(CONFIG_DEFAULTS).admin.token).toBeNull();
  });
});

describe('where the nodes come from', () => {
  const listed = resolveConfig({ file: { nodes: [{ id: 'a', address: '127.0.0.1:1' }] } });
  const none = resolveConfig({});

  it('takes nodes, or a local cluster asked for, never neither nor both', () => {
    expect(nodesProblem(listed, false)).toBeNull();
    expect(nodesProblem(none, true)).toBeNull();
    const missing = nodesProblem(none, false);
    expect(missing?.field).toBe('nodes');
    expect(missing?.message).toContain('--local-cluster');
    expect(nodesProblem(listed, true)?.field).toBe('nodes');
  });

  it('refuses --local-cluster with localCluster.nodes 0', () => {
    const zero = { ...none, localCluster: { ...none.localCluster, nodes: 0 } };
    expect(nodesProblem(zero, true)?.field).toBe('localCluster.nodes');
  });
});

describe('a malformed config file, shown', () => {
  function syntaxError(text: string): ConfigSyntaxError {
    const { err } = readFailure(text);
    expect(err).toBeInstanceOf(ConfigSyntaxError);
    return err as ConfigSyntaxError;
  }

  it('puts a caret under the column of the offending line', () => {
    const err = syntaxError('{\r\n  "workers": 1\r\n  "logLevel": "info"\r\n}');
    expect([err.line, err.column]).toEqual([3, 3]);
    expect(err.excerpt).toBe('3 |   "logLevel": "info"\n      ^');
  });

  it('shows a window of a long line around the column', () => {
    const text = `{"nodes": [${'{"id": "a", "address": "127.0.0.1:1"}, '.repeat(10)}x]}`;
    const err = syntaxError(text);
    const [shown, caret] = err.excerpt.split('\n') as [string, string];
    expect(shown.length).toBeLessThan(90);
    expect(shown).toMatch(/^1 \| …/);
    expect(shown[caret.length - 1]).toBe('x');
  });
});
