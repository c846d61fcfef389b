import { parseAddress } from '@engram/common';
import {
  addressProblem,
  MAX_NODE_ID_LENGTH,
  MAX_SPACE_ID_LENGTH,
  MAX_ZONE_LENGTH,
} from '@engram/ring';
import type { AssignmentConfig, NodeConfig, RouterNodeConfig } from './config.js';
import { TABLE_MAX_TOKENS } from './config-caps.js';
import { CONFIG_SCHEMA } from './config-schema.js';
import {
  CONFIG_KEYS,
  isScalar,
  NULLABLE_SECTIONS,
  type ScalarSpec,
  specOf,
} from './config-spec.js';
import { ConfigError } from './errors.js';

// Validation of a merged config (file ← env ← flags) against CONFIG_SCHEMA: unknown keys at
// any depth, each key's type and range, the node and assignment lists, then the rules that
// tie keys together. Errors are ConfigErrors naming the dotted key (`field`).

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The nullable section (`tls`, `admin.tls`, `pool.tls`) holding `key`, if any. */
export function nullableSectionOf(key: string): string | undefined {
  return NULLABLE_SECTIONS.find((s) => key.startsWith(`${s}.`));
}

// Object keys that hold other keys (`listen`, `admin.tls`, …), derived from the table so a new
// section needs no list of its own.
const SECTIONS: ReadonlySet<string> = new Set(
  CONFIG_KEYS.flatMap((key) => {
    const parts = key.split('.');
    return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('.'));
  }),
);

export function getPath(obj: JsonObject, key: string): Json | undefined {
  let value: Json | undefined = obj;
  for (const part of key.split('.')) {
    if (!isObject(value) || !Object.hasOwn(value, part)) return undefined;
    value = value[part];
  }
  return value;
}

export function setPath(target: JsonObject, key: string, value: Json): void {
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

/**
 * Where validation problems go: `throw` stops at the first (what `resolveConfig` does), a
 * function collects every one (what `router-node check` reports); validation then goes on
 * with the default in place of each refused value.
 */
export type Report = 'throw' | ((problem: ConfigError) => void);

// Runs one check; a ConfigError it throws goes to `report`, and `fallback` stands in.
function attempt<T>(report: Report, check: () => T, fallback: T): T {
  if (report === 'throw') return check();
  try {
    return check();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    report(err);
    return fallback;
  }
}

// A problem found outside `attempt`: thrown, or reported with `fallback` standing in.
function refuse<T>(report: Report, problem: ConfigError, fallback: T): T {
  if (report === 'throw') throw problem;
  report(problem);
  return fallback;
}

// A misspelt key would otherwise be ignored and its default used without a word.
function refuseUnknown(obj: JsonObject, prefix: string, report: Report): void {
  for (const [name, value] of Object.entries(obj)) {
    const key = `${prefix}${name}`;
    if (specOf(key) !== undefined) continue;
    attempt(
      report,
      () => {
        if (!SECTIONS.has(key)) throw new ConfigError(key, value, 'unknown key');
        if (value === null && (NULLABLE_SECTIONS as readonly string[]).includes(key)) return;
        if (!isObject(value)) throw new ConfigError(key, value, 'must be an object');
        refuseUnknown(value, `${key}.`, report);
      },
      undefined,
    );
  }
}

// Absent means the default; a key without one (a TLS file of a section that was given) is
// taken as null, so it is refused as missing, as before the table existed.
function checkScalar(key: string, spec: ScalarSpec, raw: Json | undefined): Json {
  const value = raw === undefined ? (spec.default ?? null) : raw;
  switch (spec.type) {
    case 'int':
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        throw new ConfigError(key, value, 'must be a number');
      }
      if (spec.type === 'int' && !Number.isInteger(value)) {
        throw new ConfigError(key, value, 'must be an integer');
      }
      if (value < spec.min || value > spec.max) {
        throw new ConfigError(key, value, `must be from ${spec.min} to ${spec.max}`);
      }
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw new ConfigError(key, value, 'must be true or false');
      return value;
    case 'string':
    case 'enum':
      if (typeof value !== 'string' || value === '') {
        throw new ConfigError(key, value, 'must be a non-empty string');
      }
      if (spec.type === 'enum' && !spec.values.includes(value)) {
        throw new ConfigError(key, value, `must be one of ${spec.values.join(', ')}`);
      }
      return value;
    case 'string-or-null':
      if (value !== null && (typeof value !== 'string' || value === '')) {
        throw new ConfigError(key, value, 'must be a non-empty string or null');
      }
      return value;
    case 'addresses': {
      if (!Array.isArray(value) || value.length === 0) {
        throw new ConfigError(key, value, 'must be a non-empty array of "host:port"');
      }
      value.forEach((a, i) => {
        const problem = typeof a === 'string' ? addressProblem(a) : 'must be a "host:port" string';
        if (problem !== undefined) throw new ConfigError(`${key}[${i}]`, a, problem);
      });
      return value;
    }
  }
}

function checkNodes(raw: Json | undefined, report: Report): NodeConfig[] {
  const list = raw ?? [];
  if (!Array.isArray(list))
    return refuse(report, new ConfigError('nodes', list, 'must be an array'), []);
  // Indexes stay those of the file, also when an entry before was refused.
  const nodes = list.map((n, i) =>
    attempt<NodeConfig | null>(report, () => validateNode(n, `nodes[${i}]`), null),
  );
  const seen = new Set<string>();
  const owners = new Map<string, NodeConfig>();
  const out: NodeConfig[] = [];
  nodes.forEach((n, i) => {
    if (n === null) return;
    attempt(
      report,
      () => {
        if (seen.has(n.id)) throw new ConfigError(`nodes[${i}].id`, n.id, 'duplicate node id');
        seen.add(n.id);
        const key = addressKey(n.address);
        const owner = owners.get(key);
        if (owner !== undefined) {
          throw new ConfigError(
            `nodes[${i}].address`,
            n.address,
            `node "${n.id}" and node "${owner.id}" (${JSON.stringify(owner.address)}) are one address`,
          );
        }
        owners.set(key, n);
        out.push(n);
      },
      undefined,
    );
  });
  return out;
}

function checkAssignments(
  raw: Json | undefined,
  nodes: readonly NodeConfig[],
  report: Report,
): Json {
  const list = raw ?? [];
  if (!Array.isArray(list))
    return refuse(report, new ConfigError('assignments', list, 'must be an array'), []);
  const ids = new Set(nodes.map((n) => n.id));
  return list
    .map((a, i) =>
      attempt<AssignmentConfig | null>(
        report,
        () => validateAssignment(a, `assignments[${i}]`, ids, nodes.length === 0),
        null,
      ),
    )
    .filter((a) => a !== null) as unknown as Json;
}

/**
 * Checks a merged config object against the schema, filling in defaults. With `report` a
 * function, every problem is reported (not only the first) and the result, built with
 * defaults in place of the refused values, is only meaningful when nothing was reported.
 */
export function validateConfig(root: JsonObject, report: Report = 'throw'): RouterNodeConfig {
  refuseUnknown(root, '', report);
  const nodes = checkNodes(root.nodes, report);
  const assignments = checkAssignments(root.assignments, nodes, report);
  const out: JsonObject = {};
  for (const key of CONFIG_KEYS) {
    const spec = CONFIG_SCHEMA[key];
    const section = nullableSectionOf(key);
    if (section !== undefined && !isObject(getPath(root, section) ?? null)) {
      setPath(out, section, null);
    } else if (isScalar(spec)) {
      const fallback = spec.default ?? `<${key}>`;
      setPath(
        out,
        key,
        attempt(report, () => checkScalar(key, spec, getPath(root, key)), fallback),
      );
    } else {
      out[key] = spec.type === 'nodes' ? (nodes as unknown as Json) : assignments;
    }
  }
  const cfg = out as unknown as RouterNodeConfig;
  for (const rule of ACROSS_KEYS) attempt(report, () => rule(cfg), undefined);
  return cfg;
}

/**
 * The shared table holds `maxNodes × vnodesPerNode` ring tokens, at most TABLE_MAX_TOKENS
 * (also checked again in etcd mode, where vnodesPerNode is etcd's).
 */
export function checkTableTokens(
  cfg: Pick<RouterNodeConfig, 'maxNodes' | 'vnodesPerNode' | 'etcd'>,
): void {
  const perNode = ringTokensPerNode(cfg);
  const key = perNode === cfg.vnodesPerNode ? 'vnodesPerNode' : 'etcd.tokensPerNode';
  const tokens = cfg.maxNodes * perNode;
  if (tokens > TABLE_MAX_TOKENS) {
    throw new ConfigError(
      'maxNodes',
      cfg.maxNodes,
      `× ${key} ${perNode} = ${tokens} ring tokens, more than the shared table holds (${TABLE_MAX_TOKENS}): lower ${key} to at most ${Math.floor(TABLE_MAX_TOKENS / cfg.maxNodes)} or maxNodes to at most ${Math.floor(TABLE_MAX_TOKENS / perNode)}`,
    );
  }
}

/**
 * Ring tokens a node has: `etcd.tokensPerNode` in etcd's token mode, else `vnodesPerNode`.
 */
export function ringTokensPerNode(cfg: Pick<RouterNodeConfig, 'vnodesPerNode' | 'etcd'>): number {
  const t = cfg.etcd?.tokensPerNode ?? 0;
  return t > 0 ? t : cfg.vnodesPerNode;
}

// Rules between keys run after each key passed on its own, so their messages quote values
// already known to be well-formed.
const ACROSS_KEYS: readonly ((cfg: RouterNodeConfig) => void)[] = [
  (cfg) => {
    if (cfg.localNodeId !== null && cfg.nodes.length > 0) {
      if (!cfg.nodes.some((n) => n.id === cfg.localNodeId)) {
        throw new ConfigError('localNodeId', cfg.localNodeId, 'is not one of the configured nodes');
      }
    }
  },
  (cfg) => {
    if (cfg.admin.token !== null && cfg.admin.tokenFile !== null) {
      // The value quoted is the file, never the token.
      throw new ConfigError(
        'admin.tokenFile',
        cfg.admin.tokenFile,
        'admin.token is set too: set one',
      );
    }
  },
  (cfg) => {
    if (cfg.admin.token !== null && (cfg.admin.token === '' || /\s/.test(cfg.admin.token))) {
      // A token no bearer header can carry would lock every admin client out. Not quoted.
      throw new ConfigError('admin.token', '(hidden)', 'must be one token (no spaces)');
    }
  },
  (cfg) => {
    const e = cfg.etcd;
    if (e === null) return;
    if ((e.cert === null) !== (e.key === null)) {
      throw new ConfigError('etcd.cert', e.cert, 'etcd.cert and etcd.key go together');
    }
    if (e.cert !== null && e.ca === null) {
      throw new ConfigError(
        'etcd.ca',
        null,
        'a client certificate needs etcd over TLS: set etcd.ca',
      );
    }
  },
  (cfg) => {
    const poolTls = cfg.pool.tls;
    if (poolTls !== null && (poolTls.cert === null) !== (poolTls.key === null)) {
      throw new ConfigError('pool.tls.cert', poolTls.cert, 'cert and key go together');
    }
  },
  (cfg) => {
    if (cfg.router.retryMaxDelayMs < cfg.router.retryBaseDelayMs) {
      throw new ConfigError(
        'router.retryMaxDelayMs',
        cfg.router.retryMaxDelayMs,
        `must be at least router.retryBaseDelayMs (${cfg.router.retryBaseDelayMs})`,
      );
    }
  },
  (cfg) => {
    if (cfg.outlier.maxEjectionMs < cfg.outlier.baseEjectionMs) {
      throw new ConfigError(
        'outlier.maxEjectionMs',
        cfg.outlier.maxEjectionMs,
        `must be at least outlier.baseEjectionMs (${cfg.outlier.baseEjectionMs})`,
      );
    }
  },
  checkTableTokens,
  (cfg) => {
    if (cfg.nodes.length > cfg.maxNodes) {
      throw new ConfigError(
        'nodes',
        cfg.nodes.length,
        `nodes given, more than maxNodes (${cfg.maxNodes}) holds: raise maxNodes`,
      );
    }
    if (cfg.localCluster.nodes > cfg.maxNodes) {
      throw new ConfigError(
        'localCluster.nodes',
        cfg.localCluster.nodes,
        `more than maxNodes (${cfg.maxNodes}) holds: raise maxNodes`,
      );
    }
  },
  (cfg) => {
    // Whether a config may have no nodes at all is up to how it is run (see `nodesProblem`);
    // with no local nodes either, there is never anything to route to.
    if (cfg.nodes.length === 0 && cfg.localCluster.nodes === 0) {
      throw new ConfigError(
        'nodes',
        [],
        'is empty and localCluster.nodes is 0: nothing to route to',
      );
    }
  },
];

/**
 * What two node addresses are compared by: the same `host:port` written two ways gives the
 * same key. The port is compared as a number (`07000` = `7000`); the host as the WHATWG URL
 * parser canonicalises it, which is what the resolver would connect to for a literal IP:
 * IPv4 in any inet_aton form (`127.1`, `0x7f.0.0.1`, `2130706433`; a leading 0 is octal,
 * as getaddrinfo reads it) becomes dotted decimal, IPv6 its RFC 5952 form (`[::1]`), a name
 * lower case; a trailing dot is dropped. Names are not resolved (`localhost` and `127.0.0.1`
 * stay different): that needs I/O and the answer can change.
 */
export function addressKey(address: string): string {
  const { host, port } = parseAddress(address);
  return `${canonicalHost(host)}:${port}`;
}

function canonicalHost(host: string): string {
  if (host.includes(':')) {
    // IPv6; a zone id (`%eth0`) is not URL syntax: canonicalise the address, keep the zone.
    const at = host.indexOf('%');
    const ip = at < 0 ? host : host.slice(0, at);
    const zone = at < 0 ? '' : host.slice(at);
    const v6 = urlHost(`[${ip}]`, ip.toLowerCase()).replace(/^\[|\]$/g, '');
    // An IPv4-mapped address (::ffff:a.b.c.d, which the URL parser writes in hex) reaches
    // the IPv4 host: compare it as that.
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
    if (mapped !== null && zone === '') {
      const hi = Number.parseInt(mapped[1]!, 16);
      const lo = Number.parseInt(mapped[2]!, 16);
      return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
    }
    return `[${v6}${zone}]`;
  }
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  return urlHost(name, name.toLowerCase());
}

function urlHost(host: string, fallback: string): string {
  try {
    return new URL(`http://${host}/`).hostname;
  } catch {
    // Names the URL parser refuses (`node.123`: a last label of digits) are compared as written.
    return fallback;
  }
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
  if (typeof id !== 'string' || id === '' || id.length > MAX_NODE_ID_LENGTH) {
    throw new ConfigError(
      `${key}.id`,
      id,
      `must be a non-empty string of at most ${MAX_NODE_ID_LENGTH} characters`,
    );
  }
  const problem = addressProblem(address);
  if (problem !== undefined) throw new ConfigError(`${key}.address`, address, problem);
  if (zone !== undefined && (typeof zone !== 'string' || zone.length > MAX_ZONE_LENGTH)) {
    throw new ConfigError(
      `${key}.zone`,
      zone,
      `must be a string of at most ${MAX_ZONE_LENGTH} characters`,
    );
  }
  return { id, address: address as string, zone: (zone as string | undefined) ?? '' };
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
  if (typeof spaceId !== 'string' || spaceId === '' || spaceId.length > MAX_SPACE_ID_LENGTH) {
    throw new ConfigError(
      `${key}.spaceId`,
      spaceId,
      `must be a non-empty string (≤ ${MAX_SPACE_ID_LENGTH})`,
    );
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
